-- The declaration log: a declaration is acknowledged once it is here — one narrow row per batch of declarations
-- stored together, with the workspace numbers they took — and becomes an incident row (with its first war-room
-- step) right after, once the burst of commands it came in has been answered. Writing the log costs SQLite a
-- fraction of what the incident rows and their nine indexes cost, which is what keeps a burst of slash commands
-- acknowledged within milliseconds. Rows live for milliseconds; a row left by a process that died is turned into
-- incidents by any replica's sweeper. An identity is never reused, so a stale copy of a taken-over row can
-- never match a newer one.
CREATE TABLE declaration_log (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner        TEXT NOT NULL,         -- the process that acknowledged the declarations
    received_at  BIGINT NOT NULL,       -- epoch ms
    last_numbers TEXT NOT NULL,         -- JSON {team_id: the workspace's last incident number after this batch}
    declarations TEXT NOT NULL          -- JSON array of declarations (see src/incidents/declare.rs)
);
