-- Private incidents (SPEC section 12): declared with `private:yes` or the declare form's checkbox. Their war-room
-- channel is private, the broadcast channel learns only that one was declared and by whom, digests count them
-- without their title or channel, and pages carry only the number and link.
ALTER TABLE incidents ADD COLUMN is_private BIGINT NOT NULL DEFAULT 0;
