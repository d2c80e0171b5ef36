//! Everything that speaks Slack: the Web API client ([`client`]) with what it remembers ([`memory`]: the bot's
//! identity, channel IDs, users' time zones, the token's verdict), request signature checks ([`verify`]),
//! Block Kit rendering of the incident card and messages ([`blocks`]) and Slack's size limits ([`limits`]).
//! The Slack stand-in that `incident-bot demo` and the tests run against lives in [`crate::standins::slack`].

pub mod blocks;
pub mod client;
pub mod limits;
pub mod memory;
pub mod verify;

pub use client::{SlackClient, SlackError};
pub use memory::BotIdentity;
