//! The incident timeline people read and add to (SPEC §12): capturing a message of the incident's channel (a 📌
//! reaction or the "Add to incident timeline" message shortcut; once per message), following its edits and
//! deletion, `/incident timeline`, and `incident-bot export`. Rows in [`crate::store::incidents`], rendering in
//! [`crate::domain::timeline`].

use crate::db::Db;
use crate::domain::timeline::{self, ts_instant};
use crate::state::AppState;
use crate::store::incidents::{self, Captured};

/// A message as the front door got it (the shortcut carries the whole message; a reaction does not).
pub struct Known {
    pub author: Option<String>,
    pub text: String,
}

/// What capturing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in the timeline of the incident (its key, e.g. `INC-4`).
    Added(String),
    /// The timeline already held it.
    Already(String),
    /// The channel is not an incident's.
    NotIncident,
    /// Slack no longer has the message.
    Gone,
}

/// Captures message `ts` of `channel` into its incident's timeline: author, the message's own time, text as
/// Slack gave it, and Slack's permalink. `known` is the message when the caller has it; otherwise it is read
/// from Slack. A message already captured is not read or stored again.
pub async fn capture(
    state: &AppState,
    channel: &str,
    ts: &str,
    known: Option<Known>,
) -> anyhow::Result<Outcome> {
    let Some(inc) = incidents::by_channel(&state.db, channel).await? else {
        return Ok(Outcome::NotIncident);
    };
    if incidents::is_captured(&state.db, &inc.id, ts).await? {
        return Ok(Outcome::Already(inc.key()));
    }
    let known = match known {
        Some(k) => k,
        None => match state.slack.message_at(channel, ts).await? {
            Some(m) => Known {
                author: m.user.or(m.bot_id),
                text: m.text.unwrap_or_default(),
            },
            None => return Ok(Outcome::Gone),
        },
    };
    let permalink = match state.slack.permalink(channel, ts).await {
        Ok(p) => p.filter(|p| crate::domain::text::checked_url(p).is_some()),
        Err(e) => {
            tracing::warn!(error = %e, "no permalink for a captured message");
            None
        }
    };
    let at = ts_instant(ts).unwrap_or_else(|| state.clock.now());
    let added = incidents::capture_message(
        &state.db,
        &Captured {
            incident_id: &inc.id,
            message_ts: ts,
            at,
            author: known.author.as_deref(),
            text: &known.text,
            permalink: permalink.as_deref(),
        },
    )
    .await?;
    tracing::info!(incident_id = %inc.id, added, "message captured");
    Ok(if added {
        Outcome::Added(inc.key())
    } else {
        Outcome::Already(inc.key())
    })
}

/// The confirmation for a capture.
pub fn added_line(key: &str) -> String {
    format!("📌 Added to {key}'s timeline")
}

/// A message of `channel` was edited: a captured copy takes its new text.
pub async fn edited(state: &AppState, channel: &str, ts: &str, text: &str) -> anyhow::Result<()> {
    if let Some(inc) = incidents::by_channel(&state.db, channel).await? {
        if incidents::edit_captured(&state.db, &inc.id, ts, text).await? {
            tracing::info!(incident_id = %inc.id, "captured message edited");
        }
    }
    Ok(())
}

/// A message of `channel` was deleted: a captured copy is marked deleted.
pub async fn deleted(state: &AppState, channel: &str, ts: &str) -> anyhow::Result<()> {
    if let Some(inc) = incidents::by_channel(&state.db, channel).await? {
        if incidents::delete_captured(&state.db, &inc.id, ts).await? {
            tracing::info!(incident_id = %inc.id, "captured message deleted");
        }
    }
    Ok(())
}

/// `/incident timeline` typed by `user` in `channel`: the reply (Slack text, times in the user's zone).
pub async fn for_command(state: &AppState, channel: &str, user: &str) -> anyhow::Result<String> {
    let Some(inc) = incidents::by_channel(&state.db, channel).await? else {
        return Ok(
            "`/incident timeline` works in an incident's channel — run it there (`/incident list` shows them)."
                .into(),
        );
    };
    let entries = incidents::timeline_entries(&state.db, &inc.id).await?;
    let tz = state.user_tz(user).await;
    Ok(timeline::slack_reply(&inc.key(), &entries, tz))
}

/// The one incident called `key` (`INC-42`), for the read-only exports.
pub async fn find_by_key(db: &Db, key: &str) -> anyhow::Result<crate::incidents::Incident> {
    let number: i64 = key
        .trim()
        .trim_start_matches("INC-")
        .trim_start_matches("inc-")
        .parse()
        .map_err(|_| anyhow::anyhow!("`{key}` is not an incident key (e.g. INC-42)"))?;
    let mut found = incidents::by_number(db, number).await?;
    match found.len() {
        0 => anyhow::bail!("no incident INC-{number}"),
        1 => Ok(found.remove(0)),
        _ => anyhow::bail!(
            "INC-{number} exists in several workspaces; this export cannot tell them apart"
        ),
    }
}

/// `incident-bot export <INC-n> --format md|json`: the whole timeline, read without writing (the database is
/// opened read-only and never migrated).
pub async fn export_cli(
    database_url: &str,
    key: &str,
    format: &str,
    tz: &str,
) -> anyhow::Result<String> {
    let tz: chrono_tz::Tz = tz
        .parse()
        .map_err(|_| anyhow::anyhow!("--tz `{tz}` is not an IANA time zone"))?;
    if !matches!(format, "md" | "json") {
        anyhow::bail!(
            "--format `{format}`: use md or json (or postmortem for the postmortem draft)"
        );
    }
    let db = Db::connect_read_only(database_url).await?;
    let inc = find_by_key(&db, key).await?;
    let entries = incidents::timeline_entries(&db, &inc.id).await?;
    Ok(match format {
        "md" => timeline::markdown(&inc.key(), &inc.title, &entries, tz),
        _ => format!(
            "{}\n",
            serde_json::to_string_pretty(&timeline::json(&entries, tz))?
        ),
    })
}
