//! The store layer: SQL that several features share. Today it holds the one durable lease queue ([`lease`])
//! behind war-room setup steps, the outbox and digest runs, with the heartbeats that let a replica take over the
//! work of a process that died; and the requests already seen ([`replays`]), so that a replay has no second
//! effect.

pub mod deploys;
pub mod digests;
pub mod imports;
pub mod lease;
pub mod replays;
