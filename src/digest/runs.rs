//! Digest runs: one per scheduled digest (channel, scope, period start), so that with several replicas on one
//! database each digest is posted exactly once. They are rows of the lease queue, stored by
//! [`crate::store::digests`] and re-exported here.

pub use crate::store::digests::{
    claim, finish, list, save, Claim, Claimed, Progress, RunKey, RunRow,
};
pub use crate::store::lease::Outcome;
