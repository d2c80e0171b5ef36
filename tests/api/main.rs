//! Integration tests: the real HTTP server on port 0, signed Slack requests, the Slack and pager stand-ins.
//! One test binary; run on SQLite by default and on PostgreSQL with `TEST_DATABASE_URL=postgres://…`.

mod alerts;
mod bounds;
mod declare;
mod deploys;
mod digest;
mod escalation;
mod faults;
mod followups;
mod front_door;
mod helpers;
mod import;
mod late_answers;
mod manifest;
mod mentions;
mod openapi;
mod ops;
mod phases;
mod postmortem;
mod private;
mod recovery;
mod replays;
mod replicas;
mod report;
mod roles;
mod self_contained;
mod severity;
mod socket_mode;
mod startup_checks;
mod timeline;
mod untrusted;
mod updates;
mod upgrade;
