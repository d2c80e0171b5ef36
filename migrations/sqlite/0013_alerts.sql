-- Alerts declare incidents (SPEC section 11). Instants are epoch milliseconds.

-- Every alert received, stored before the sender gets its 202: one row per (source, fingerprint, status, start),
-- so a re-sent payload (a retry, Alertmanager's repeat_interval, a second replica) inserts nothing. Each row is
-- also an item of the lease queue (src/store/lease.rs): a worker claims it, decides what it does (declare,
-- attach, notify, resolve, acknowledge) and marks it done in the transaction that does it.
CREATE TABLE alerts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT NOT NULL,          -- alertmanager | grafana | datadog | generic | pagerduty
    fingerprint     TEXT NOT NULL,
    group_key       TEXT,
    status          TEXT NOT NULL,          -- firing | resolved | acknowledged
    title           TEXT NOT NULL,
    labels          TEXT NOT NULL,          -- JSON object
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT,
    link            TEXT,                   -- checked http(s) URL only
    received_at     BIGINT NOT NULL,
    state           TEXT NOT NULL,          -- pending | running | done | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    incident_id     TEXT REFERENCES incidents (id),
    outcome         TEXT,                   -- declared | attached | notified | resolved | acknowledged | ignored
    UNIQUE (source, fingerprint, status, starts_at)
);
CREATE INDEX alerts_due ON alerts (state, next_attempt_at);
CREATE INDEX alerts_incident ON alerts (incident_id, status);
CREATE INDEX alerts_fingerprint ON alerts (source, fingerprint);

-- One incident per storm: the keys an incident took when it was declared from an alert (`group:<source>:<key>`,
-- `fp:<source>:<fingerprint>`, `service:<name>`). Taken inside the declaration's transaction, so of two replicas
-- declaring for one storm the second finds the key taken and attaches instead. A key whose incident is resolved
-- is free again (the next declaration takes it over).
CREATE TABLE alert_links (
    key         TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX alert_links_incident ON alert_links (incident_id);

-- Alerts that matched no service, summarised in the broadcast channel: one pending notice gathers every such
-- alert until it is posted (at most one post per second), so a storm of unmatched alerts is a few posts.
CREATE TABLE alert_notices (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    count           BIGINT NOT NULL,
    sample          TEXT NOT NULL,          -- JSON list of the first few lines, already escaped
    state           TEXT NOT NULL,          -- pending | running | done | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    first_attempt_at BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    result          TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX alert_notices_due ON alert_notices (state, next_attempt_at);
