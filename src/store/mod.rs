//! The store layer: the SQL, one file per table family, behind typed functions that take and return plain
//! structs (never rows). Use cases (`incidents/`, `deploys/`, `digest/`, `import/`) call it; it calls only
//! [`crate::db`] and pure [`crate::domain`] types.
//!
//! - [`lease`]: the one durable lease queue behind war-room setup steps (`setup_steps`), the outbox (`outbox`) and
//!   digest runs (`digest_runs`) — the claim condition, the claim and release statements, backoff with jitter and
//!   `Retry-After` — with the heartbeats (`process_heartbeats`) that let a replica take over the work of a process
//!   that died;
//! - [`alerts`]: alerts received (`alerts`, also a lease queue), the storm keys (`alert_links`) and the notices of
//!   unmatched alerts (`alert_notices`);
//! - [`declarations`]: a declaration's one transaction (its number, row, first war-room step and the signed
//!   request's digest), with group commit for declarations that arrive together;
//! - [`deploys`]: deploy events (`deploys`) and the "recent deploys" query;
//! - [`digests`]: the digest's reads of `incidents`, and `digest_runs`;
//! - [`incidents`]: incident rows (`incidents`) and their timeline lines (`timeline_events`);
//! - [`followups`]: follow-ups of incidents (`followups`);
//! - [`imports`]: incidents imported from other tools (their rows of `incidents`);
//! - [`setup_steps`]: the war-room setup steps (`setup_steps`);
//! - [`outbox`]: the Slack and pager effects queued with the change that caused them (`outbox`);
//! - [`timers`]: escalation and close timers (`timers`);
//! - [`replays`]: the requests already seen (`slack_signatures`, `processed_events`), so that a replay has no second effect.

pub mod alerts;
pub mod declarations;
pub mod deploys;
pub mod digests;
pub mod followups;
pub mod imports;
pub mod incidents;
pub mod lease;
pub mod outbox;
pub mod replays;
pub mod setup_steps;
pub mod timers;
