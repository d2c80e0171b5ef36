//! What the bot asks Slack once and remembers, as typed methods of [`SlackClient`]: who the bot is
//! (`auth.test`), the IDs of configured channels (`conversations.list`), users' time zones (`users.info`, for
//! [`TZ_CACHE_HOURS`]), and whether Slack accepts the bot token (for `/readyz`).
//!
//! The token verdict is asked at most once per [`RECHECK_REJECTED`] while Slack rejects the token
//! (`invalid_auth`, `account_inactive`, `token_revoked`, …) and once per [`RECHECK_ACCEPTED`] while it accepts
//! it, whatever the probe rate; probes arriving together share one call. A Slack that cannot be reached, or
//! answers with an error unrelated to the token, leaves the last verdict as it is: a Slack outage is not this
//! replica's fault, and taking every replica out would not help.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{SlackClient, SlackError};

/// How long a user's Slack time zone is remembered.
pub const TZ_CACHE_HOURS: i64 = 12;
/// How long an accepted token is trusted before `auth.test` is asked again.
pub const RECHECK_ACCEPTED: Duration = Duration::from_secs(60);
/// How long a rejected token stays rejected before `auth.test` is asked again.
pub const RECHECK_REJECTED: Duration = Duration::from_secs(5);
/// How long the token check waits for Slack.
const VERDICT_DEADLINE: Duration = Duration::from_secs(2);

/// Who the bot is in Slack (from `auth.test`, asked once).
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub user_id: String,
    pub team_id: String,
    /// Workspace URL, e.g. `https://acme.slack.com/`.
    pub url: String,
}

/// The remembered answers, shared by every clone of a client.
#[derive(Debug, Default)]
pub(super) struct Memory {
    identity: OnceCell<BotIdentity>,
    channel_ids: Mutex<HashMap<String, String>>,
    time_zones: Mutex<HashMap<String, (chrono_tz::Tz, DateTime<Utc>)>>,
    verdict: tokio::sync::Mutex<Option<Checked>>,
}

#[derive(Debug, Clone)]
struct Checked {
    at: Instant,
    /// `Some(code)` while Slack rejects the token.
    rejected: Option<String>,
}

impl SlackClient {
    /// The bot's own identity, asked of Slack once.
    pub async fn identity(&self) -> Result<BotIdentity, SlackError> {
        self.memory
            .identity
            .get_or_try_init(|| async {
                let v = self.call("auth.test", json!({})).await?;
                Ok(BotIdentity {
                    user_id: v["user_id"].as_str().unwrap_or_default().to_string(),
                    team_id: v["team_id"].as_str().unwrap_or_default().to_string(),
                    url: v["url"]
                        .as_str()
                        .unwrap_or("https://slack.com/")
                        .to_string(),
                })
            })
            .await
            .cloned()
    }

    /// A link to a channel that opens it in Slack (the workspace URL from [`SlackClient::identity`]).
    pub async fn channel_link(&self, channel_id: &str) -> String {
        match self.identity().await {
            Ok(me) if me.url.starts_with("http") => {
                format!("{}/archives/{channel_id}", me.url.trim_end_matches('/'))
            }
            _ => format!("https://slack.com/app_redirect?channel={channel_id}"),
        }
    }

    /// A configured channel's ID: an ID as it is, a name (with or without `#`) looked up with
    /// `conversations.list` once and remembered.
    pub async fn channel_id(&self, configured: &str) -> Result<String, SlackError> {
        let name = configured.trim().trim_start_matches('#').to_string();
        if looks_like_channel_id(&name) {
            return Ok(name);
        }
        if let Some(id) = lock(&self.memory.channel_ids).get(&name) {
            return Ok(id.clone());
        }
        let found = self
            .find_channel(|c| c.name.as_deref() == Some(name.as_str()))
            .await?;
        match found.as_ref().and_then(|c| c.id.as_deref()) {
            Some(id) => {
                lock(&self.memory.channel_ids).insert(name, id.to_string());
                Ok(id.to_string())
            }
            None => Err(SlackError::Api {
                method: "conversations.list".into(),
                code: format!("channel #{name} not found"),
            }),
        }
    }

    /// The remembered Slack time zone of `user`, if asked within [`TZ_CACHE_HOURS`] of `now`. Never calls Slack.
    pub fn known_time_zone(&self, user: &str, now: DateTime<Utc>) -> Option<chrono_tz::Tz> {
        lock(&self.memory.time_zones)
            .get(user)
            .filter(|(_, at)| now - *at < chrono::Duration::hours(TZ_CACHE_HOURS))
            .map(|(tz, _)| *tz)
    }

    /// The user's Slack time zone (`users.info`, remembered for [`TZ_CACHE_HOURS`]), or `None` when Slack does
    /// not say (not remembered, so asked again next time).
    pub async fn time_zone(&self, user: &str, now: DateTime<Utc>) -> Option<chrono_tz::Tz> {
        if let Some(tz) = self.known_time_zone(user, now) {
            return Some(tz);
        }
        match self.call("users.info", json!({ "user": user })).await {
            Ok(v) => {
                let tz = v["user"]["tz"].as_str().and_then(|s| s.parse().ok())?;
                lock(&self.memory.time_zones).insert(user.to_string(), (tz, now));
                Some(tz)
            }
            Err(e) => {
                tracing::warn!(user, error = %e, "users.info failed; using the default time zone");
                None
            }
        }
    }

    /// `Err(reason)` while Slack rejects the bot token; asks Slack when the last verdict is due for a recheck.
    pub async fn token_verdict(&self) -> Result<(), String> {
        let mut last = self.memory.verdict.lock().await;
        let due = match &*last {
            None => true,
            Some(c) if c.rejected.is_some() => c.at.elapsed() >= RECHECK_REJECTED,
            Some(c) => c.at.elapsed() >= RECHECK_ACCEPTED,
        };
        if due {
            let before = last.as_ref().and_then(|c| c.rejected.clone());
            let rejected = match self.ask_about_token().await {
                Answer::Accepted => None,
                Answer::Rejected(code) => Some(code),
                Answer::Unknown => before,
            };
            *last = Some(Checked {
                at: Instant::now(),
                rejected,
            });
        }
        match last.as_ref().and_then(|c| c.rejected.as_deref()) {
            Some(code) => Err(format!("slack rejects the bot token: {code}")),
            None => Ok(()),
        }
    }

    /// What `auth.test` says about the token, within [`VERDICT_DEADLINE`].
    async fn ask_about_token(&self) -> Answer {
        match tokio::time::timeout(VERDICT_DEADLINE, self.call("auth.test", json!({}))).await {
            Ok(Ok(_)) => Answer::Accepted,
            Ok(Err(SlackError::NoToken)) => Answer::Rejected("SLACK_BOT_TOKEN is not set".into()),
            Ok(Err(SlackError::Api { code, .. })) if token_rejected(&code) => {
                Answer::Rejected(code)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "auth.test for readiness said nothing about the token");
                Answer::Unknown
            }
            Err(_) => Answer::Unknown,
        }
    }
}

enum Answer {
    Accepted,
    Rejected(String),
    /// No answer, or an answer that says nothing about the token.
    Unknown,
}

/// Slack's error codes that mean the token itself is not accepted (`auth.test` and every method).
fn token_rejected(code: &str) -> bool {
    matches!(
        code,
        "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "team_access_not_granted"
            | "org_login_required"
            | "ekm_access_denied"
    )
}

/// Whether a configured channel is already an ID (`C…`, `G…`, `D…`) rather than a name.
pub fn looks_like_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_zones_are_remembered_for_a_while() {
        let slack = SlackClient::new("http://127.0.0.1:9", None, Duration::from_secs(1)).unwrap();
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
        assert_eq!(slack.known_time_zone("U1", at(10, 0)), None);
        lock(&slack.memory.time_zones).insert("U1".into(), (chrono_tz::Europe::Berlin, at(10, 0)));
        let clone = slack.clone();
        assert_eq!(
            clone.known_time_zone("U1", at(21, 59)),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(slack.known_time_zone("U1", at(22, 0)), None);
    }

    #[test]
    fn channel_ids_are_told_from_names() {
        assert!(looks_like_channel_id("C0123ABCD"));
        assert!(!looks_like_channel_id("incidents"));
        assert!(!looks_like_channel_id("C0123"));
    }
}
