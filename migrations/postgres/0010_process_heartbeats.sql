-- Liveness: each running process writes its heartbeat (wall-clock epoch ms) every half second. Work leased by an
-- owner whose heartbeat is stale is taken over by another process (see src/store/lease.rs).
CREATE TABLE process_heartbeats (
    owner   TEXT PRIMARY KEY,
    beat_at BIGINT NOT NULL
);
