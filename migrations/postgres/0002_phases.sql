-- Phases, MTTR summaries and escalations (PostgreSQL). Instants are epoch milliseconds; flags are 0/1.

-- The outbox: Slack and pager side effects of a phase change (card refresh, timeline line, MTTR summary,
-- escalation page), written in the same transaction as the change and carried out by a worker that claims each
-- row with a lease, so a crash between the commit and the Slack call still ends in exactly one effect.
-- Rows of one incident and lane run in `seq` order. A coalesced row (`card:<incident>`) is re-requested by
-- bumping `generation`; the worker finishes it only when the generation it rendered is still the latest.
CREATE TABLE outbox (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    incident_id     TEXT NOT NULL REFERENCES incidents (id),
    lane            TEXT NOT NULL,          -- card | slack | page
    kind            TEXT NOT NULL,          -- card | post | summary | summary_refresh | page
    payload         TEXT NOT NULL,          -- JSON
    state           TEXT NOT NULL,          -- pending | running | done | failed
    generation      BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    result          TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_lane ON outbox (incident_id, lane, state);

-- Timers: P1 acknowledgement escalation, unresolved escalation, end of the monitoring window.
-- A timer is fired by flipping `fired` 0 → 1 in the same transaction that stores its effects.
CREATE TABLE timers (
    id          TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    kind        TEXT NOT NULL,              -- p1_ack | unresolved | close
    due_at      BIGINT NOT NULL,
    fired       BIGINT NOT NULL DEFAULT 0,
    fired_at    BIGINT,
    outcome     TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX timers_due ON timers (fired, due_at);
CREATE INDEX timers_incident ON timers (incident_id);

CREATE INDEX incidents_declared ON incidents (declared_at);
CREATE INDEX incidents_severity_resolved ON incidents (severity, resolved_at);
