//! Everything that speaks Slack: the Web API client ([`client`]), request signature checks ([`verify`]),
//! Block Kit rendering of the incident card and messages ([`blocks`]), Slack's size limits ([`limits`]), and the built-in Slack stand-in
//! ([`standin`], with its Socket Mode side in [`standin_socket`]) that `incident-bot demo` and the tests run
//! against.

pub mod blocks;
pub mod client;
pub mod limits;
pub mod standin;
pub mod standin_socket;
pub mod verify;

#[cfg(test)]
mod rendering_tests;

pub use client::{SlackClient, SlackError};
