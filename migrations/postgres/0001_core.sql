-- Core schema (PostgreSQL). Instants are epoch milliseconds; flags are 0/1.

-- Per-workspace incident numbers.
CREATE TABLE workspace_counters (
    team_id     TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

CREATE TABLE incidents (
    id              TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL,
    number          BIGINT NOT NULL,
    title           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    service         TEXT,
    detection       TEXT NOT NULL,
    declared_by     TEXT NOT NULL,
    origin_channel  TEXT,
    response_url    TEXT,
    channel_id      TEXT,
    channel_name    TEXT,
    card_ts         TEXT,
    started_at      BIGINT NOT NULL,
    declared_at     BIGINT NOT NULL,
    acknowledged_at BIGINT, acknowledged_by TEXT, acknowledged_implicit BIGINT NOT NULL DEFAULT 0,
    identified_at   BIGINT, identified_by TEXT,   identified_implicit BIGINT NOT NULL DEFAULT 0,
    fixed_at        BIGINT, fixed_by TEXT,        fixed_implicit BIGINT NOT NULL DEFAULT 0,
    resolved_at     BIGINT, resolved_by TEXT,     resolved_implicit BIGINT NOT NULL DEFAULT 0,
    closed_at       BIGINT,
    version         BIGINT NOT NULL DEFAULT 0,
    UNIQUE (team_id, number)
);
CREATE INDEX incidents_channel ON incidents (channel_id);
CREATE INDEX incidents_started ON incidents (started_at);

-- One row per war-room step; a step is claimed with a lease so that exactly one process runs it.
CREATE TABLE setup_steps (
    incident_id     TEXT NOT NULL REFERENCES incidents (id),
    step            TEXT NOT NULL,
    state           TEXT NOT NULL,          -- waiting | pending | running | done | failed | skipped
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    result          TEXT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (incident_id, step)
);
CREATE INDEX setup_steps_due ON setup_steps (state, next_attempt_at);

-- What happened to an incident, in order (one timeline line each).
CREATE TABLE timeline_events (
    id          TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX timeline_events_incident ON timeline_events (incident_id, at);

-- Deploy events reported by CI/CD.
CREATE TABLE deploys (
    id           TEXT PRIMARY KEY,
    service      TEXT NOT NULL,
    environment  TEXT NOT NULL,
    version      TEXT,
    commit_sha   TEXT,
    url          TEXT,
    author       TEXT,
    deployed_at  BIGINT NOT NULL,
    source       TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX deploys_service_time ON deploys (service, deployed_at);

-- Slack Events API deliveries already handled (Slack retries with the same event_id).
CREATE TABLE processed_events (
    event_id TEXT PRIMARY KEY,
    at       BIGINT NOT NULL
);
