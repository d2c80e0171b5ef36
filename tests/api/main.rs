//! Integration tests: the real HTTP server on port 0, signed Slack requests, the Slack and pager stand-ins.
//! One test binary; run on SQLite by default and on PostgreSQL with `TEST_DATABASE_URL=postgres://…`.

mod declare;
mod front_door;
mod helpers;
mod openapi;
mod recovery;
