//! Everything that speaks Slack: the Web API client ([`client`]), request signature checks ([`verify`]),
//! Block Kit rendering of the incident card and messages ([`blocks`]), and the built-in Slack stand-in
//! ([`standin`], with its Socket Mode side in [`standin_socket`]) that `incident-bot demo` and the tests run
//! against.

pub mod blocks;
pub mod client;
pub mod standin;
pub mod standin_socket;
pub mod verify;

pub use client::{SlackClient, SlackError};
