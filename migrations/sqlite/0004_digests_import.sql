-- Weekly digests and imported incident history (issue 6). Instants are epoch milliseconds.

-- Where an incident record came from: 'slack' (declared with /incident) or 'pagerduty' (imported baseline
-- history, `external_id` = the PagerDuty incident ID). Importing the same incident again updates it.
ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT 'slack';
ALTER TABLE incidents ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX incidents_external ON incidents (source, external_id);
CREATE INDEX incidents_resolved ON incidents (resolved_at);

-- One row per digest to post: claimed atomically (conditional UPDATE ... RETURNING) under a lease, so that with
-- several replicas each digest is posted once; a crashed poster's run is taken over when its lease runs out and
-- resumes after the last step it stored (message, then chart).
CREATE TABLE digest_runs (
    channel         TEXT NOT NULL,          -- as configured (ID or name without '#')
    scope           TEXT NOT NULL,          -- team/service filter, '' for none
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    state           TEXT NOT NULL,          -- pending | running | done | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    message_ts      TEXT,                   -- the digest message, once posted
    chart_file_id   TEXT,                   -- the chart, once shared
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (channel, scope, period_start)
);
