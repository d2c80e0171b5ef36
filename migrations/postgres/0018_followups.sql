-- Follow-ups (SPEC section 13): actions people note on an incident (`/incident followup`, the summary's "Add
-- follow-up" form). `id` is the short number people type in `/incident followup done <id>`; `owner` a Slack user
-- id the bot got from Slack (a mention or the form's user select); `due_on` a calendar date `YYYY-MM-DD` (the
-- owner is reminded on that day, by a `timers` row of kind `followup_due`); `done_at`/`done_by` are set once.
CREATE TABLE followups (
    id          BIGSERIAL PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    text        TEXT NOT NULL,
    owner       TEXT,
    due_on      TEXT,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    done_at     BIGINT,
    done_by     TEXT
);
CREATE INDEX followups_incident ON followups (incident_id);
CREATE INDEX followups_open ON followups (done_at, due_on);
