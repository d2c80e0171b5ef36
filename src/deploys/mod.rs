//! Deploy events: what the bot knows about deploys and how it learns of them. Storage and the "what landed on X
//! recently" query ([`recent`]) that the incident card, the deploy questions, the MTTR summary and the digest all
//! share live in the store ([`crate::store::deploys`]); they are re-exported here.
//!
//! - [`input`]: reading and validating deploy events sent to the API (pure);
//! - [`sources`]: GitHub, GitLab and Argo CD webhook payloads as deploy events (pure);
//! - [`answer`]: answering deploy questions in Slack (mentions and `/incident deploys`);
//! - [`record`]: `incident-bot deploy record`, the CI client of the API.

pub mod answer;
pub mod input;
pub mod record;
pub mod sources;

pub use crate::store::deploys::{
    history_services, insert, insert_batch, list, production_times, recent, recent_all,
    BatchOutcome, Deploy, ListFilter, NewDeploy, PRODUCTION,
};
