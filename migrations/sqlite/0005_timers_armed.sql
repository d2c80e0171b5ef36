-- Which incidents have had their escalation timers armed. The timer worker arms only incidents not yet armed,
-- found through a partial index, instead of re-checking every incident of the last day on each tick: with many
-- open incidents that re-check held the database for milliseconds every tick, in the way of declarations.
ALTER TABLE incidents ADD COLUMN timers_armed BIGINT NOT NULL DEFAULT 0;
-- Resolved or closed incidents never get escalation timers; existing open ones are armed on the first ticks
-- (the timers they already have are kept: arming skips existing timer ids).
UPDATE incidents SET timers_armed = 1 WHERE resolved_at IS NOT NULL OR closed_at IS NOT NULL;
CREATE INDEX incidents_unarmed ON incidents (declared_at) WHERE timers_armed = 0;
