//! The deploy prompt: Every new production deploy, whatever its source, is stored with a mark
//! ([`crate::store::deploys`]); the timer worker takes marked deploys ([`match_deploys`]), and for each open
//! incident in triage or remediation whose service (or a dependency) it deployed, after that phase began, queues
//! one post `deploy_prompt:<incident>:<deploy>` (outbox): "payments v2.14.1 deployed at 14:32 by alice — was this
//! the fix?" with a button that records `Fix deployed` at the deploy's time through the phase-change path
//! ([`fix_click`]). The deploy API answers before any of this happens.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::nudges::phase_start;
use super::outbox;
use super::Incident;
use crate::domain::deploy::Deploy;
use crate::domain::mttr::{self, PhaseKind};
use crate::domain::phase::Milestone;
use crate::domain::text::{self, escape_cut};
use crate::state::AppState;
use crate::store::{deploys, incidents};

/// `action_id` of a deploy prompt's "Fix deployed at 14:32" button; its value is `<incident id>|<deploy id>`.
pub const FIX_ACTION_ID: &str = "deploy_prompt_fixed";

/// Most marked deploys taken in one tick.
const MATCH_BATCH: i64 = 500;

/// The phases during which a deploy asks "was this the fix?".
const PROMPT_PHASES: [PhaseKind; 2] = [PhaseKind::Triage, PhaseKind::Remediation];

/// Whether `d` asks "was this the fix?" in `inc` now: production, to the service or a dependency (`watched`),
/// while the incident is in triage or remediation, deployed after that phase began.
pub fn prompts(inc: &Incident, watched: &[String], d: &Deploy, now: DateTime<Utc>) -> bool {
    if d.environment != deploys::PRODUCTION
        || !watched.iter().any(|w| w.eq_ignore_ascii_case(&d.service))
        || !inc.timeline.status().is_active()
    {
        return false;
    }
    let Some(phase) = mttr::breakdown(&inc.timeline, now).current() else {
        return false;
    };
    PROMPT_PHASES.contains(&phase)
        && phase_start(&inc.timeline, phase).is_some_and(|s| d.deployed_at >= s)
}

/// `14:32` in `tz`.
fn local_time(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%H:%M").to_string()
}

/// "payments v2.14.1 deployed at 14:32 by alice — was this the fix?" and its button (every deploy field escaped).
pub fn prompt_message(incident_id: &str, d: &Deploy, tz: chrono_tz::Tz) -> (String, Value) {
    let at = local_time(d.deployed_at, tz);
    let mut what = format!("*{}*", escape_cut(&d.service, 80));
    if let Some(v) = &d.version {
        what.push_str(&format!(" {}", escape_cut(v, 60)));
    }
    let by = d
        .author
        .as_deref()
        .map(|a| format!(" by {}", escape_cut(a, 60)))
        .unwrap_or_default();
    let question = format!("🚀 {what} deployed at {at}{by} — was this the fix?");
    let blocks = json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&question, text::SECTION_TEXT) } },
        { "type": "actions", "block_id": "deploy_prompt", "elements": [{
            "type": "button", "style": "primary", "action_id": FIX_ACTION_ID,
            "value": format!("{incident_id}|{}", d.id),
            "text": { "type": "plain_text", "text": format!("Fix deployed at {at}") }
        }] }
    ]);
    (question, blocks)
}

/// Takes the deploys stored since the last tick and queues a prompt in every open incident they may have fixed
/// (one transaction: the marks are cleared with the prompts queued, so each deploy is matched once across
/// replicas). Every read inside it goes through the transaction (SQLite has one pooled connection).
pub async fn match_deploys(state: &AppState, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    if !deploys::any_prompt_pending(&state.db).await? {
        return Ok(());
    }
    let mut tx = state.db.begin_write().await?;
    let taken = deploys::take_prompt_pending(&mut tx, MATCH_BATCH).await?;
    if taken.is_empty() || !state.settings.incidents.deploy_prompt {
        tx.commit().await?;
        return Ok(());
    }
    let open = incidents::open_with_service(&mut tx).await?;
    let tz = state.default_tz();
    for inc in &open {
        let Some(service) = inc.service.as_deref() else {
            continue;
        };
        let watched = super::steps::watched_services(state, service);
        for d in taken.iter().filter(|d| prompts(inc, &watched, d, now)) {
            let (text, blocks) = prompt_message(&inc.id, d, tz);
            let phases: Vec<&str> = PROMPT_PHASES.iter().map(|p| p.as_str()).collect();
            outbox::post_message(
                &mut tx,
                &format!("deploy_prompt:{}:{}", inc.id, d.id),
                &inc.id,
                &text,
                &blocks,
                &phases,
                now,
            )
            .await?;
            tracing::info!(incident = %inc.key(), deploy = %d.id, "deploy prompt queued");
        }
    }
    tx.commit().await
}

/// A click on "Fix deployed at 14:32": records `Fix deployed` at the deploy's time, through the phase-change
/// path (card, timeline line, figures), if the incident is still in triage or remediation. Returns what to tell
/// the clicker (ephemerally), `None` when it was recorded (the timeline line says so).
pub async fn fix_click(
    state: &Arc<AppState>,
    team: Option<&str>,
    value: &str,
    user: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some((incident_id, deploy_id)) = value.split_once('|') else {
        return Ok(Some("That button is broken; use `/incident fixed`.".into()));
    };
    let Some(inc) = super::load(&state.db, incident_id).await? else {
        return Ok(Some("That incident does not exist (any more).".into()));
    };
    if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
        return Ok(Some("That incident belongs to another workspace.".into()));
    }
    let Some(d) = deploys::get(&state.db, deploy_id).await? else {
        return Ok(Some(
            "That deploy is no longer stored; use `/incident set fixed <time>`.".into(),
        ));
    };
    let watched = inc
        .service
        .as_deref()
        .map(|s| super::steps::watched_services(state, s))
        .unwrap_or_default();
    if !prompts(&inc, &watched, &d, state.clock.now()) {
        return Ok(Some(format!(
            "Nothing changed: *{}* has moved on (it is at *{}*).",
            inc.key(),
            inc.timeline.status().label()
        )));
    }
    let change = super::phases::Change::Record(Milestone::Fixed);
    match super::phases::apply_at(state, &inc.id, change, Some(user), Some(d.deployed_at)).await? {
        super::phases::Outcome::Applied { .. } => Ok(None),
        super::phases::Outcome::Refused { reason } => {
            Ok(Some(format!("Nothing changed: {reason}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
    }

    #[test]
    fn the_prompt_escapes_every_deploy_field_and_says_the_local_time() {
        let d = Deploy {
            id: "d1".into(),
            service: "pay<ments>".into(),
            environment: "production".into(),
            version: Some("v2.14.1 <!channel>".into()),
            commit_sha: None,
            url: None,
            author: Some("alice & bob".into()),
            deployed_at: t(14, 32),
            source: "api".into(),
        };
        let (text, blocks) = prompt_message("inc-1", &d, chrono_tz::Europe::Berlin);
        assert_eq!(
            text,
            "🚀 *pay&lt;ments&gt;* v2.14.1 &lt;!channel&gt; deployed at 15:32 by alice &amp; bob — was this the fix?"
        );
        assert_eq!(
            blocks[1]["elements"][0]["text"]["text"],
            "Fix deployed at 15:32"
        );
        assert_eq!(blocks[1]["elements"][0]["value"], "inc-1|d1");
    }
}
