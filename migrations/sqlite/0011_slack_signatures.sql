-- Signed Slack requests already handled: a SHA-256 digest of each request's timestamp and signature (never the
-- secret or the body), with the request's timestamp (epoch ms). A byte-identical replay inside the 5-minute
-- window finds its row and has no second effect. Rows older than the window are pruned (src/store/replays.rs).
CREATE TABLE slack_signatures (
    digest TEXT PRIMARY KEY,
    at     BIGINT NOT NULL
);
CREATE INDEX slack_signatures_at ON slack_signatures (at);

-- Event ids are pruned after an hour: by time.
CREATE INDEX processed_events_at ON processed_events (at);

-- When the first attempt at a setup step or outbox row began (wall-clock epoch ms, set by the claim that made
-- attempt 1): a retry looks for that attempt's post in conversations.history back to then.
ALTER TABLE setup_steps ADD COLUMN first_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN first_attempt_at BIGINT;
