//! The war-room steps of SPEC §3 and what each one does.
//!
//! Every step is safe to run again after a crash: a retry (`attempt > 1`) first looks for the effect of an
//! earlier attempt whose answer was lost (the channel it created, the card or announcement it posted, the
//! bookmarks it added) and adopts it instead of doing the work twice. Pins and invites are idempotent in Slack
//! itself, and pages carry a dedup key so the pager collapses repeats.

use std::time::Duration;

use serde_json::json;

use super::Incident;
use crate::deploys;
use crate::domain::slug;
use crate::domain::text;
use crate::pager::{Page, PagerError};
use crate::slack::blocks;
use crate::slack::client::{is_already_done, Channel, Post, Reply};
use crate::slack::SlackError;
use crate::state::AppState;

/// One war-room step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Channel,
    Topic,
    Invite,
    Card,
    Pin,
    Bookmarks,
    Page,
    Announce,
    Notify,
}

/// How a step depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The other step must have succeeded; if it failed, this one is skipped.
    Done,
    /// The other step must have finished, either way (e.g. page even when no channel could be made).
    Settled,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Channel,
        Step::Topic,
        Step::Invite,
        Step::Card,
        Step::Pin,
        Step::Bookmarks,
        Step::Page,
        Step::Announce,
        Step::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Channel => "channel",
            Step::Topic => "topic",
            Step::Invite => "invite",
            Step::Card => "card",
            Step::Pin => "pin",
            Step::Bookmarks => "bookmarks",
            Step::Page => "page",
            Step::Announce => "announce",
            Step::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// What must happen first. Everything else runs concurrently once the channel exists.
    pub fn dependencies(self) -> &'static [(Step, Need)] {
        match self {
            Step::Channel => &[],
            Step::Topic | Step::Invite | Step::Card | Step::Bookmarks => {
                &[(Step::Channel, Need::Done)]
            }
            Step::Pin => &[(Step::Card, Need::Done)],
            Step::Page | Step::Announce | Step::Notify => &[(Step::Channel, Need::Settled)],
        }
    }
}

/// Why a step did not succeed this time.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Worth trying again, after `after` if the service said so.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Will not work however often it is tried.
    Permanent(String),
}

impl From<SlackError> for Failure {
    fn from(e: SlackError) -> Self {
        if e.is_retryable() {
            Failure::Retry {
                after: e.retry_after(),
                error: e.to_string(),
            }
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Retry {
            after: None,
            error: format!("database: {e}"),
        }
    }
}

impl From<PagerError> for Failure {
    fn from(e: PagerError) -> Self {
        match e {
            PagerError::Retry { after, message } => Failure::Retry {
                after,
                error: format!("pager: {message}"),
            },
            other => Failure::Permanent(other.to_string()),
        }
    }
}

/// Runs `step` for `inc`. `attempt` counts from 1; above 1 an earlier attempt may have had an effect.
#[tracing::instrument(skip(state, inc), fields(incident = %inc.key(), step = step.as_str()))]
pub async fn run(
    state: &AppState,
    step: Step,
    inc: &Incident,
    attempt: i64,
) -> Result<String, Failure> {
    match step {
        Step::Channel => channel(state, inc, attempt).await,
        Step::Topic => topic(state, inc).await,
        Step::Invite => invite(state, inc).await,
        Step::Card => card(state, inc, attempt).await,
        Step::Pin => pin(state, inc).await,
        Step::Bookmarks => bookmarks(state, inc, attempt).await,
        Step::Page => page(state, inc).await,
        Step::Announce => announce(state, inc, attempt).await,
        Step::Notify => notify(state, inc).await,
    }
}

fn channel_of(inc: &Incident) -> Result<&str, Failure> {
    inc.channel_id
        .as_deref()
        .ok_or_else(|| Failure::Permanent("the incident has no channel".into()))
}

async fn save_channel(
    state: &AppState,
    inc: &Incident,
    id: &str,
    name: &str,
) -> Result<(), Failure> {
    crate::store::incidents::set_channel(&state.db, &inc.id, id, name).await?;
    Ok(())
}

async fn channel(state: &AppState, inc: &Incident, attempt: i64) -> Result<String, Failure> {
    let base = slug::channel_name(&state.settings.slack.channel_prefix, inc.number, &inc.title);
    if attempt > 1 {
        if let Some((id, name)) = find_own_channel(state, inc, &base).await? {
            save_channel(state, inc, &id, &name).await?;
            return Ok(format!("#{name} (found after an interrupted attempt)"));
        }
    }
    for n in 1..=20u32 {
        let name = if n == 1 {
            base.clone()
        } else {
            slug::with_suffix(&base, n)
        };
        match state.slack.create_channel(&name, inc.private).await {
            Ok(created) => {
                let Channel { id, name } = created.ok_or_else(|| {
                    Failure::Permanent("conversations.create returned no channel id".into())
                })?;
                save_channel(state, inc, &id, &name).await?;
                return Ok(format!("#{name}"));
            }
            Err(e) if e.code() == Some("name_taken") => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::Permanent(format!(
        "every name from #{base} to #{base}-20 is taken"
    )))
}

/// A channel this bot created for this incident in an attempt whose answer was lost.
async fn find_own_channel(
    state: &AppState,
    inc: &Incident,
    base: &str,
) -> Result<Option<(String, String)>, Failure> {
    let me = state.slack.identity().await?;
    let not_before = inc.timeline.declared_at.timestamp() - 60;
    let found = state
        .slack
        .find_channel(|c| {
            let name = c.name.as_deref().unwrap_or_default();
            c.creator.as_deref() == Some(me.user_id.as_str())
                && c.created >= not_before
                && (name == base
                    || name
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.starts_with('-')))
        })
        .await?;
    Ok(found.and_then(|c| Some((c.id?, c.name?))))
}

async fn topic(state: &AppState, inc: &Incident) -> Result<String, Failure> {
    let channel = channel_of(inc)?;
    let topic = blocks::topic(inc);
    state.slack.set_topic(channel, &topic).await?;
    Ok(topic)
}

async fn invite(state: &AppState, inc: &Incident) -> Result<String, Failure> {
    let channel = channel_of(inc)?;
    let me = state.slack.identity().await?;
    let mut users: Vec<String> = vec![inc.declared_by.clone()];
    if let Some(svc) = inc.service.as_deref().and_then(|s| state.catalog.get(s)) {
        users.extend(svc.slack_owners.iter().cloned());
        users.extend(svc.oncall_users.iter().cloned());
    }
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| !u.is_empty() && *u != me.user_id && seen.insert(u.clone()));
    if users.is_empty() {
        return Ok("nobody to invite".into());
    }
    let all = users.join(",");
    match state.slack.invite(channel, &all).await {
        Ok(_) => return Ok(format!("invited {all}")),
        Err(e) if e.code().is_some_and(is_already_done) => return Ok(format!("{all} already in")),
        Err(e) if e.is_retryable() || users.len() == 1 => return Err(e.into()),
        Err(_) => {}
    }
    // One bad user fails the whole call: invite one by one and report who could not be added.
    let mut failed = Vec::new();
    for u in &users {
        match state.slack.invite(channel, u).await {
            Ok(_) => {}
            Err(e) if e.code().is_some_and(is_already_done) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => failed.push(format!("{u} ({})", e.code().unwrap_or("error"))),
        }
    }
    if failed.is_empty() {
        Ok(format!("invited {all}"))
    } else {
        Ok(format!("invited {all} except {}", failed.join(", ")))
    }
}

/// The service (its catalog name when it is in the catalog) and what it depends on: whose deploys concern an
/// incident of `service` (the card, stalled-phase nudges, deploy prompts).
pub fn watched_services(state: &AppState, service: &str) -> Vec<String> {
    let mut names = vec![state
        .catalog
        .get(service)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| service.to_string())];
    names.extend(state.catalog.dependency_names(service));
    names
}

/// Production deploys to the incident's service and its dependencies in the 2 hours before impact.
pub async fn deploys_before_impact(
    state: &AppState,
    inc: &Incident,
) -> Result<Vec<deploys::Deploy>, sqlx::Error> {
    let Some(service) = inc.service.as_deref() else {
        return Ok(Vec::new());
    };
    let names = watched_services(state, service);
    let until = inc.timeline.started_at;
    deploys::recent(
        &state.db,
        &names,
        until - crate::domain::deploy::BEFORE_IMPACT,
        until,
        10,
    )
    .await
}

/// When the step's first attempt began (wall-clock epoch ms), for [`crate::slack::SlackClient::find_message`].
async fn first_attempt_at(
    state: &AppState,
    inc: &Incident,
    step: Step,
) -> Result<Option<i64>, sqlx::Error> {
    crate::store::setup_steps::first_attempt_at(&state.db, &inc.id, step.as_str()).await
}

async fn card(state: &AppState, inc: &Incident, attempt: i64) -> Result<String, Failure> {
    let channel = channel_of(inc)?.to_string();
    let block_id = blocks::card_block_id(&inc.id);
    let ts = match if attempt > 1 {
        let since = first_attempt_at(state, inc, Step::Card).await?;
        state.slack.find_message(&channel, &block_id, since).await?
    } else {
        None
    } {
        Some(ts) => ts,
        None => {
            let deploys = deploys_before_impact(state, inc).await?;
            let alerts = crate::store::alerts::counts(&state.db, &inc.id).await?;
            let view = super::card_view(state, inc, deploys).with_alerts(alerts);
            let text = view.fallback_text();
            state
                .slack
                .post_message(&Post::blocks(&channel, &text, view.blocks()))
                .await?
                .ok_or_else(|| Failure::Permanent("chat.postMessage returned no ts".into()))?
        }
    };
    crate::store::incidents::set_card_ts(&state.db, &inc.id, &ts).await?;
    Ok(format!("card {ts}"))
}

async fn pin(state: &AppState, inc: &Incident) -> Result<String, Failure> {
    let channel = channel_of(inc)?;
    let ts = inc
        .card_ts
        .as_deref()
        .ok_or_else(|| Failure::Permanent("no card to pin".into()))?;
    match state.slack.pin(channel, ts).await {
        Ok(_) => Ok("pinned".into()),
        Err(e) if e.code().is_some_and(is_already_done) => Ok("already pinned".into()),
        Err(e) => Err(e.into()),
    }
}

async fn bookmarks(state: &AppState, inc: &Incident, attempt: i64) -> Result<String, Failure> {
    let channel = channel_of(inc)?;
    let Some(svc) = inc.service.as_deref().and_then(|s| state.catalog.get(s)) else {
        return Ok("no catalog service: nothing to bookmark".into());
    };
    let wanted: Vec<(&str, &str)> = [
        ("Runbook", svc.runbook_url.as_deref()),
        ("Dashboard", svc.dashboard_url.as_deref()),
    ]
    .into_iter()
    .filter_map(|(t, l)| l.map(|l| (t, l)))
    .collect();
    // Only links the bot checked (`http`/`https`, no `|<>`) become bookmarks.
    let (wanted, refused): (Vec<_>, Vec<_>) = wanted
        .into_iter()
        .partition(|(_, l)| text::checked_url(l).is_some());
    if !refused.is_empty() {
        tracing::warn!(service = %svc.name, "catalog links that are not http(s) URLs are not bookmarked");
    }
    if wanted.is_empty() {
        return Ok(format!(
            "{} has no runbook or dashboard in the catalog",
            svc.name
        ));
    }
    let existing: Vec<String> = if attempt > 1 {
        state.slack.bookmark_links(channel).await?
    } else {
        Vec::new()
    };
    let calls = wanted
        .iter()
        .filter(|(_, link)| !existing.iter().any(|e| e == link))
        .map(|(title, link)| state.slack.add_bookmark(channel, title, link));
    for r in futures::future::join_all(calls).await {
        r?;
    }
    Ok(wanted
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(" + "))
}

async fn page(state: &AppState, inc: &Incident) -> Result<String, Failure> {
    let Some(service) = inc.service.as_deref() else {
        return Ok("no service given: nobody to page".into());
    };
    let Some(svc) = state.catalog.get(service) else {
        return Ok(format!("{service} is not in the catalog: nobody to page"));
    };
    let Some(route) = &svc.pager else {
        return Ok(format!("{} has no pager route in the catalog", svc.name));
    };
    let link = match &inc.channel_id {
        Some(c) => Some(state.slack.channel_link(c).await),
        None => None,
    };
    let page = Page {
        dedup_key: format!("incident-bot-{}", inc.id),
        summary: format!(
            "[{}] {} {} ({})",
            inc.severity.as_str(),
            inc.key(),
            crate::pager::title_of(inc),
            svc.name
        ),
        severity: inc.severity,
        source: svc.name.clone(),
        link,
        details: json!({ "incident": inc.key(), "title": crate::pager::title_of(inc), "declared_by": inc.declared_by, "role": "secondary on-call" }),
    };
    Ok(state.pager.page(route, &state.secrets, &page).await?)
}

async fn announce(state: &AppState, inc: &Incident, attempt: i64) -> Result<String, Failure> {
    if inc.private && !state.settings.incidents.private_announce {
        return Ok("not announced: a private incident (incidents.private_announce = false)".into());
    }
    let channel = state.broadcast_channel().await?;
    let block_id = blocks::announce_block_id(&inc.id);
    if attempt > 1 {
        let since = first_attempt_at(state, inc, Step::Announce).await?;
        if let Some(ts) = state.slack.find_message(&channel, &block_id, since).await? {
            return Ok(format!(
                "announced {ts} (found after an interrupted attempt)"
            ));
        }
    }
    let link = match &inc.channel_id {
        Some(c) => Some(state.slack.channel_link(c).await),
        None => None,
    };
    let text = blocks::announcement_text(inc);
    let post = Post::blocks(&channel, &text, blocks::announcement(inc, link.as_deref()));
    let ts = state.slack.post_message_joining(&post).await?;
    Ok(format!("announced {}", ts.as_deref().unwrap_or("?")))
}

/// Tells the declarer where the war room is, or why there is none.
async fn notify(state: &AppState, inc: &Incident) -> Result<String, Failure> {
    let failure = crate::store::setup_steps::channel_failure(&state.db, &inc.id).await?;
    let text = match (&inc.channel_id, failure) {
        (Some(c), _) => format!(
            ":rotating_light: *{}* is declared — war room {}.",
            inc.key(),
            text::channel(c)
        ),
        (None, err) => format!(
            ":warning: Slack refused to create the war-room channel for *{}* ({}). The incident is stored and the \
             secondary on-call is paged; ask a workspace admin to allow the bot to create channels, or run the \
             incident in an existing channel.",
            inc.key(),
            text::escape_cut(err.as_deref().map(slack_reason).unwrap_or("unknown reason"), 200),
        ),
    };
    if inc.response_url.is_none() && inc.declared_by == state.slack.identity().await?.user_id {
        return Ok("declared by an alert: nobody to tell".into());
    }
    if let Some(url) = &inc.response_url {
        let status = state
            .slack
            .respond(url, &Reply::ephemeral_beside(&text))
            .await
            .map_err(|_| Failure::Retry {
                after: None,
                error: "response_url unreachable".into(),
            })?;
        if status.is_server_error() {
            return Err(Failure::Retry {
                after: None,
                error: format!("response_url HTTP {status}"),
            });
        }
        return Ok("told the declarer (response_url)".into());
    }
    state
        .slack
        .post_message(&Post::text(&inc.declared_by, &text))
        .await?;
    Ok("told the declarer (DM)".into())
}

/// The Slack error code inside a stored step error (`conversations.create: Slack error `restricted_action``).
fn slack_reason(err: &str) -> &str {
    err.split('`').nth(1).unwrap_or(err)
}
