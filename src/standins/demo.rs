//! `incident-bot demo`: a whole incident on an embedded SQLite database against the built-in Slack and pager
//! stand-ins, told as a story: a heading per scene, then what the channels show — each Slack message once,
//! an edited message as the lines that changed, mrkdwn rendered for the terminal ([`super::story`]).
//!
//! The incident runs on a manual clock, so 45 minutes of incident take a few seconds, and every time shown —
//! Slack's message timestamps included — is that clock's: seven past P1 incidents are seeded (the team's
//! history, 20–26 days back), deploys land, the incident is declared and run (SPEC §12: upgraded to P1, a
//! commander named and handed off, a status update posted in the channel and the announcement's thread, a
//! message 📌 captured), responders click the phase buttons (signed `block_actions` requests, exactly as Slack
//! sends them), triage runs past the history's p90 and the bot nudges (SPEC 13), the unresolved escalation
//! fires, the fix's deploy arrives through the deploy API and its prompt's button records the fix at the
//! deploy's time, someone corrects a timestamp, the MTTR summary goes to both channels, the monitoring window
//! closes the incident and a digest is asked for.
//! Then an Alertmanager webhook opens a second incident by itself (impact from the alert's `startsAt`,
//! detection `alert`, the card linking the alert), and its resolution asks "Alert resolved … — mark Resolved?".
//!
//! `--keep DIR` keeps the database and the digest chart in DIR and prints the `report` command that reads them;
//! `--html FILE` writes the whole conversation as one Slack-like page ([`super::slack_page`]).
//!
//! Adding a scene: write `async fn my_scene(d: &mut Demo) -> anyhow::Result<()>` that starts with
//! `d.story.scene(…)`, drives the bot through `d.h` (slash commands, clicks, webhooks), moves `d.clock`, and
//! ends with `d.settle(&id).await` (which prints what changed in Slack); then call it from [`run_on`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, DurationRound, Utc};

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::deploys::{self, NewDeploy};
use crate::standins::harness::{settings_for, Harness};
use crate::standins::pager::PagerStandin;
use crate::standins::slack::{SlackStandin, UploadedFile, INCIDENTS_CHANNEL_ID};
use crate::standins::slack_page::{self, Anchor};
use crate::standins::story::Story;

/// How long updates may take before the demo gives up.
const LIMIT: Duration = Duration::from_secs(30);

/// The demo's people: Slack user ids of the catalog and their names in the stand-in's `users.info`.
const PEOPLE: [(&str, &str); 6] = [
    ("U0DECLARER", "dana"),
    ("U0PAYONC1", "priya"),
    ("U0PAYOWN1", "omar"),
    ("U0PAYOWN2", "lena"),
    ("U0SRCOWN1", "sam"),
    ("U0SRCONC1", "kim"),
];

/// `incident-bot demo`'s flags.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Keep the database (`demo.db`) and the digest chart (`digest-chart.png`) in this directory.
    pub keep: Option<PathBuf>,
    /// Write the whole conversation as one self-contained HTML page here.
    pub html: Option<PathBuf>,
}

/// The file names `--keep` writes in its directory.
pub const KEPT_DATABASE: &str = "demo.db";
pub const KEPT_CHART: &str = "digest-chart.png";

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let (dir, temporary) = match &opts.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (std::fs::canonicalize(d)?, false)
        }
        None => {
            let d =
                std::env::temp_dir().join(format!("incident-bot-demo-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&d)?;
            (d, true)
        }
    };
    // A fresh database each run: a kept one from an earlier run would already hold INC-1.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{KEPT_DATABASE}{suffix}")));
    }
    let db_url = format!("sqlite://{}", dir.join(KEPT_DATABASE).display());
    let result = run_on(&db_url, &dir, &opts).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The running demo: the bot, its clock, the narrator, and what later scenes need.
pub struct Demo {
    pub h: Harness,
    pub clock: Arc<ManualClock>,
    pub story: Story,
    /// The broadcast channel's name (`incidents`).
    pub broadcast: String,
    /// Messages the HTML page can show alone (`?only=card` …).
    pub anchors: Vec<Anchor>,
    start: DateTime<Utc>,
}

impl Demo {
    /// Waits until the incident's queued Slack/pager work is done, then prints what changed in Slack.
    pub async fn settle(&mut self, id: &str) -> anyhow::Result<()> {
        settle(&self.h, id).await?;
        self.story.catch_up();
        Ok(())
    }

    /// Moves the simulated clock on.
    pub fn advance(&self, by: Span) {
        self.clock.advance(by);
    }

    /// The simulated time as `HH:MM`.
    pub fn now(&self) -> String {
        self.h.state.clock.now().format("%H:%M").to_string()
    }

    /// A slash command typed by `user` in `channel`; prints the reply only they see.
    pub async fn type_command(
        &mut self,
        user: &str,
        channel: &str,
        text: &str,
    ) -> anyhow::Result<()> {
        let name = self.h.slack.user_name(user);
        self.story.say(&format!(
            "{} · @{name} types `/incident {text}`",
            self.now()
        ));
        let (_, reply) = self.h.slash_as(user, channel, text).await?;
        if let Some(t) = reply["text"].as_str().filter(|t| !t.is_empty()) {
            self.story.say(&format!("(only @{name} sees) {t}"));
        }
        Ok(())
    }

    async fn incident(&self, id: &str) -> anyhow::Result<crate::incidents::Incident> {
        crate::incidents::load(&self.h.state.db, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("incident vanished"))
    }
}

async fn run_on(db_url: &str, dir: &Path, opts: &Options) -> anyhow::Result<()> {
    let slack = SlackStandin::start().await?;
    let pager = PagerStandin::start().await?;
    let mut settings = settings_for(&slack, &pager, db_url);
    // Timers are checked often: the scenes move the simulated clock a minute at a time.
    settings.incidents.timer_tick_ms = 20;
    // A whole minute, so that the figures below come out round.
    let start = SystemClock
        .now()
        .duration_trunc(Span::minutes(1))
        .unwrap_or_else(|_| SystemClock.now());
    let clock = Arc::new(ManualClock::new(start));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    // One clock: Slack's message timestamps are the simulated time too.
    slack.set_clock(dyn_clock.clone());
    for (id, name) in PEOPLE {
        slack.set_user_name(id, name);
    }
    let h = Harness::start_with(settings, slack, pager, dyn_clock).await?;
    h.slack.set_latency(Duration::from_millis(40));
    let broadcast = h
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .map(|c| c.name)
        .unwrap_or_else(|| INCIDENTS_CHANNEL_ID.to_string());
    // ANSI styles only on a terminal, and not when NO_COLOR is set (no-color.org).
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let story = Story::new(h.slack.clone(), ansi);
    println!(
        "incident-bot demo — the real bot against built-in Slack and pager stand-ins, on an embedded database.\n\
         Times are simulated (UTC): the incident's hour passes in seconds. Slack answers every call after 40 ms."
    );
    let mut d = Demo {
        h,
        clock,
        story,
        broadcast,
        anchors: Vec::new(),
        start,
    };

    history(&mut d).await?;
    deploys_land(&mut d).await?;
    let id = declare(&mut d).await?;
    severity_up(&mut d, &id).await?;
    roles(&mut d, &id).await?;
    status_update(&mut d, &id).await?;
    capture(&mut d, &id).await?;
    phase(&mut d, &id, 3, "U0PAYONC1", "phase_ack", "Acknowledge").await?;
    // Triage runs 18 minutes: past the team's p90 (12 minutes) the bot nudges.
    triage_stalls(&mut d, &id).await?;
    phase(
        &mut d,
        &id,
        18 - STALL_SHOWN_AFTER,
        "U0PAYOWN1",
        "phase_identified",
        "Root cause identified",
    )
    .await?;
    // Remediation runs 12 minutes: the fix's deploy lands, the bot asks, a click records it at its time.
    deploy_prompt(&mut d, &id).await?;
    phase(&mut d, &id, 8, "U0PAYONC1", "phase_resolved", "Resolved").await?;
    correction(&mut d, &id).await?;
    timeline(&mut d, &id).await?;
    monitoring_closes(&mut d, &id).await?;
    postmortem(&mut d, &id).await?;
    digest(&mut d).await?;
    alert_declares(&mut d).await?;
    finish(&mut d, dir, opts).await
}

/// Triage minutes of the seeded history: p90 = 12 min (rank 0.9·6 = 5.4, between 12 and 12), n = 7.
const PAST_TRIAGE: [i64; 7] = [5, 6, 8, 9, 10, 12, 12];
/// Minutes into triage when the demo looks for the nudge (it is due at 12; the clock moves a minute at a time).
const STALL_SHOWN_AFTER: i64 = 14;

/// The team's past: seven resolved P1 incidents, 20–26 days ago (outside the week's digest and the `report`
/// the demo prints), whose triage durations give the figure a stalled triage is measured against. Their
/// detection (30 min), remediation (60 min) and verification (20 min) are longer than the demo's, so only
/// triage is nudged.
async fn history(d: &mut Demo) -> anyhow::Result<()> {
    use crate::domain::phase::{Milestone, Timeline};
    use crate::domain::severity::{DetectionMethod, Severity};
    use crate::store::incidents::{insert, save_timeline, NewIncident};
    d.story.scene("The team's history");
    let now = d.h.state.clock.now();
    for (i, triage) in PAST_TRIAGE.into_iter().enumerate() {
        let id = format!("demo-past-{i}");
        let started = now - Span::days(20 + i as i64);
        let mut tl = Timeline::new(started, started);
        let ack = started + Span::minutes(30);
        let identified = ack + Span::minutes(triage);
        let fixed = identified + Span::minutes(60);
        for (m, at) in [
            (Milestone::Acknowledged, ack),
            (Milestone::Identified, identified),
            (Milestone::Fixed, fixed),
            (Milestone::Resolved, fixed + Span::minutes(20)),
        ] {
            tl.record(m, at, Some("U0PAYONC1".into()))
                .map_err(|e| anyhow::anyhow!("history: {e:?}"))?;
        }
        let mut tx = d.h.state.db.begin_write().await?;
        insert(
            &d.h.state.db,
            &mut tx,
            &[NewIncident {
                id: &id,
                team_id: "T0DEMOPAST",
                // Numbers no demo incident takes (`export INC-1` must find one).
                number: 901 + i as i64,
                title: "past incident",
                severity: Severity::P1,
                service: Some("payments"),
                detection: DetectionMethod::Alert,
                declared_by: "U0PAYONC1",
                origin_channel: None,
                response_url: None,
                started_at: started,
                declared_at: started,
                private: false,
            }],
        )
        .await?;
        save_timeline(&mut tx, &id, 0, &tl).await?;
        tx.commit().await?;
    }
    let listed: Vec<String> = PAST_TRIAGE.iter().map(|m| format!("{m}m")).collect();
    d.story.say(&format!(
        "{} resolved P1 incidents in the last month (seeded): triage took {} — the team's p90 for triage is 12m",
        PAST_TRIAGE.len(),
        listed.join(", ")
    ));
    Ok(())
}

/// Triage runs past the team's p90: the bot posts one nudge in the channel (figure, n, suspect deploys, a
/// page button).
async fn triage_stalls(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story
        .scene("Triage stalls: the bot nudges with the team's own figures");
    for _ in 0..STALL_SHOWN_AFTER {
        d.advance(Span::minutes(1));
        settle(&d.h, id).await?;
    }
    d.story.catch_up();
    Ok(())
}

/// During remediation the fix is deployed (the CI calls the deploy API); the bot asks whether it was the fix,
/// and one click records `Fix deployed` at the deploy's time.
async fn deploy_prompt(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story
        .scene("The fix is deployed: the bot asks if that was it");
    for _ in 0..12 {
        d.advance(Span::minutes(1));
        settle(&d.h, id).await?;
    }
    d.story.catch_up();
    let body = serde_json::json!({
        "id": "demo-payments-v2.14.1", "service": "payments", "environment": "production",
        "version": "v2.14.1", "author": "omar",
        "url": "https://github.com/acme/payments/releases/tag/v2.14.1",
        "deployed_at": d.h.state.clock.now().to_rfc3339(),
    });
    let resp =
        d.h.http
            .post(format!("{}/api/v1/deploys", d.h.base_url))
            .bearer_auth(crate::standins::harness::DEPLOY_TOKEN)
            .json(&body)
            .send()
            .await?;
    d.story.say(&format!(
        "{} · CI deploys *payments* `v2.14.1` to production: POST /api/v1/deploys → HTTP {}",
        d.now(),
        resp.status().as_u16()
    ));
    // The timer worker matches the deploy to the incident and posts the prompt.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let value = loop {
        let chan = d.incident(id).await?.channel_id.unwrap_or_default();
        let found =
            d.h.slack
                .channels()
                .into_iter()
                .find(|c| c.id == chan)
                .and_then(|c| {
                    c.messages.iter().find_map(|m| {
                        m.blocks.as_ref()?.as_array()?.iter().find_map(|b| {
                            b["elements"].as_array()?.iter().find_map(|e| {
                                (e["action_id"] == crate::incidents::deploy_prompt::FIX_ACTION_ID)
                                    .then(|| e["value"].as_str().map(str::to_string))
                                    .flatten()
                            })
                        })
                    })
                });
        if let Some(v) = found {
            break v;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the deploy prompt was not posted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    d.settle(id).await?;
    d.advance(Span::minutes(1));
    settle(&d.h, id).await?;
    d.story.catch_up();
    d.story
        .say(&format!("{} · @omar clicks the prompt's button", d.now()));
    let inc = d.incident(id).await?;
    let body = crate::standins::harness::block_actions_body(
        &inc,
        "U0PAYOWN1",
        crate::incidents::deploy_prompt::FIX_ACTION_ID,
        &d.h.slack.response_url(),
        d.h.state.clock.now(),
    )?;
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body)?;
    let mut payload: serde_json::Value = serde_json::from_str(&form[0].1)?;
    payload["actions"][0]["value"] = serde_json::json!(value);
    payload["actions"][0]["block_id"] = serde_json::json!("deploy_prompt");
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
    d.h.post_signed(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        body,
    )
    .await?;
    d.settle(id).await?;
    if let Some(fixed) = d.incident(id).await?.timeline.fixed {
        d.story.say(&format!(
            "the card shows the fix at {} — the deploy's time, not the click's",
            fixed.at.format("%H:%M")
        ));
    }
    Ok(())
}

/// Three deploys land before anything breaks.
async fn deploys_land(d: &mut Demo) -> anyhow::Result<()> {
    d.story.scene("Deploys land");
    let now = d.h.state.clock.now();
    for (service, version, author, minutes_ago) in [
        ("auth", "v7.2.1", "bob", 70),
        ("search", "v1.9.3", "carol", 40),
        ("payments", "v2.14.0", "alice", 25),
    ] {
        deploys::insert(
            &d.h.state.db,
            &NewDeploy {
                id: None,
                service: service.into(),
                environment: "production".into(),
                version: Some(version.into()),
                commit_sha: Some(format!("{:x}", md5ish(service))),
                url: Some(format!(
                    "https://github.com/acme/{service}/releases/tag/{version}"
                )),
                author: Some(author.into()),
                deployed_at: now - Span::minutes(minutes_ago),
                source: "demo".into(),
            },
            now,
        )
        .await?;
        let at = (now - Span::minutes(minutes_ago)).format("%H:%M");
        d.story.say(&format!(
            "{at} · {author} deploys *{service}* `{version}` to production (the bot records it)"
        ));
    }
    Ok(())
}

/// Someone declares; the bot builds the war room.
async fn declare(d: &mut Demo) -> anyhow::Result<String> {
    d.story.scene("An incident is declared");
    let typed = "start Card payments failing at checkout sev:P2 service:payments started:-10m";
    let t0 = Instant::now();
    d.type_command("U0DECLARER", INCIDENTS_CHANNEL_ID, typed)
        .await?;
    let id = d.h.incident_id(1).await?;
    let steps = d.h.wait_for_setup(&id, LIMIT).await?;
    let done: Vec<&str> = steps
        .iter()
        .filter(|s| s.state == "done")
        .map(|s| s.step.as_str())
        .collect();
    d.story.say(&format!(
        "the war room is ready {} ms (real time) after the command: {}",
        t0.elapsed().as_millis(),
        done.join(", ")
    ));
    for s in steps.iter().filter(|s| s.state != "done") {
        d.story.say(&format!(
            "step {} {}: {}",
            s.step,
            s.state,
            s.last_error.as_deref().unwrap_or_default()
        ));
    }
    d.settle(&id).await?;
    // The pinned card, for `demo --html …?only=card`.
    if let Some(ch) = d.incident(&id).await?.channel_id {
        let block = crate::slack::blocks::card_block_id(&id);
        if let Some(m) =
            d.h.slack
                .channels()
                .into_iter()
                .find(|c| c.id == ch)
                .and_then(|c| {
                    c.messages.into_iter().find(|m| {
                        m.blocks
                            .as_ref()
                            .is_some_and(|b| b[0]["block_id"].as_str() == Some(block.as_str()))
                    })
                })
        {
            d.anchors.push(Anchor {
                channel_id: ch,
                ts: m.ts,
                name: "card".into(),
            });
        }
    }
    Ok(id)
}

/// The on-call engineer raises the severity.
async fn severity_up(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("It is worse than it looked: P2 → P1");
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    d.advance(Span::minutes(1));
    d.type_command("U0PAYONC1", &chan, "sev P1").await?;
    d.settle(id).await
}

/// A commander is named, then hands off.
async fn roles(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("A commander takes over, then hands off");
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    for text in ["role ic me", "role ic <@U0PAYOWN1|omar>"] {
        d.type_command("U0PAYONC1", &chan, text).await?;
        d.settle(id).await?;
    }
    Ok(())
}

/// A status update from the modal goes to the channel and the announcement's thread.
async fn status_update(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("A status update for the company");
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    d.advance(Span::minutes(1));
    d.type_command("U0PAYOWN1", &chan, "update").await?;
    d.story.say("@omar fills in the form: investigating · About 30% of card payments fail at checkout · next update in 15 min");
    let payload = serde_json::json!({
        "type": "view_submission",
        "team": { "id": crate::standins::harness::TEAM_ID },
        "user": { "id": "U0PAYOWN1", "team_id": crate::standins::harness::TEAM_ID },
        "view": { "callback_id": crate::slack::blocks::UPDATE_CALLBACK_ID, "private_metadata": id,
                  "state": { "values": {
            "status": { "value": { "type": "static_select", "selected_option": { "value": "investigating" } } },
            "impact": { "value": { "type": "plain_text_input", "value": "About 30% of card payments fail at checkout" } },
            "next": { "value": { "type": "number_input", "value": "15" } }
        } } }
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
    d.h.post_signed(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        body,
    )
    .await?;
    d.settle(id).await
}

/// A message in the channel is captured on the timeline with a 📌.
async fn capture(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("A finding is pinned to the timeline");
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    let said = "Gateway returns 502 for every Visa card since 09:12";
    if let Some(ts) = d.h.slack.say(&chan, "U0PAYOWN2", said) {
        d.story.catch_up();
        d.story.say("@lena reacts with 📌");
        let event = serde_json::json!({
            "token": "demo", "team_id": crate::standins::harness::TEAM_ID, "api_app_id": "A0001",
            "type": "event_callback", "event_id": "Ev0DEMOPIN1", "event_time": d.h.state.clock.now().timestamp(),
            "authed_users": [],
            "event": { "type": "reaction_added", "user": "U0PAYOWN2", "reaction": "pushpin", "item_user": "U0PAYOWN2",
                       "item": { "type": "message", "channel": chan, "ts": ts }, "event_ts": ts }
        });
        d.h.post_signed("/slack/events", "application/json", event.to_string())
            .await?;
        let deadline = tokio::time::Instant::now() + LIMIT;
        while crate::store::incidents::count_events(&d.h.state.db, id, "message").await? == 0 {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the 📌 message was not captured");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        d.story.say("captured on the incident's timeline");
    }
    d.settle(id).await
}

/// `after` minutes later, `user` clicks a phase button on the card.
async fn phase(
    d: &mut Demo,
    id: &str,
    after: i64,
    user: &str,
    action: &str,
    label: &str,
) -> anyhow::Result<()> {
    d.story.scene(&format!("[{label}]"));
    // Time passes; timers (the unresolved escalation) may fire on the way.
    for _ in 0..after {
        d.advance(Span::minutes(1));
        settle(&d.h, id).await?;
    }
    d.story.catch_up();
    let name = d.h.slack.user_name(user);
    d.story.say(&format!(
        "{} · @{name} clicks [{label}] on the card",
        d.now()
    ));
    d.h.click(user, action, id).await?;
    d.settle(id).await?;
    if action == "phase_ack" {
        // Someone else clicks the same button on a card that has not refreshed yet.
        d.story.say(&format!(
            "{} · @lena clicks [{label}] a moment later, on a stale card",
            d.now()
        ));
        d.h.click("U0PAYOWN2", action, id).await?;
        d.settle(id).await?;
    }
    Ok(())
}

/// The root cause was really found five minutes earlier: someone corrects the timestamp in their time zone.
async fn correction(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story
        .scene("A correction: the root cause was found earlier");
    let inc = d.incident(id).await?;
    if let Some(identified) = &inc.timeline.identified {
        let tz = d.h.state.user_tz("U0PAYOWN1").await;
        let local = (identified.at - Span::minutes(5))
            .with_timezone(&tz)
            .format("%H:%M")
            .to_string();
        d.story
            .say(&format!("(@omar's Slack time zone is {})", tz.name()));
        let chan = inc.channel_id.clone().unwrap_or_default();
        d.type_command("U0PAYOWN1", &chan, &format!("set identified {local}"))
            .await?;
        d.settle(id).await?;
        // The MTTR summary in the broadcast channel, for `demo --html …?only=summary`.
        if let Some(ch) = d.h.slack.channel_by_name(&d.broadcast) {
            if let Some(m) = ch.messages.iter().find(|m| {
                m.blocks
                    .as_ref()
                    .is_some_and(|b| b[0]["type"] == "header" && b.to_string().contains("MTTR"))
            }) {
                d.anchors.push(Anchor {
                    channel_id: ch.id.clone(),
                    ts: m.ts.clone(),
                    name: "summary".into(),
                });
            }
        }
    }
    Ok(())
}

/// `/incident timeline` lists what happened.
async fn timeline(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("The timeline so far");
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    d.type_command("U0PAYOWN1", &chan, "timeline").await?;
    d.settle(id).await
}

/// 31 minutes of monitoring pass without a reopen: the incident closes.
async fn monitoring_closes(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("Monitoring passes without a reopen");
    d.advance(Span::minutes(31));
    let deadline = tokio::time::Instant::now() + LIMIT;
    while d.incident(id).await?.timeline.closed_at.is_none() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the incident was not closed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.settle(id).await?;
    for a in d.h.pager.pagerduty_alerts() {
        d.story.say(&format!(
            "PagerDuty got: {} (severity {}, {} trigger event(s))",
            a.summary, a.severity, a.trigger_count
        ));
    }
    Ok(())
}

/// The draft the bot uploaded at resolution, and two follow-ups from it.
async fn postmortem(d: &mut Demo, id: &str) -> anyhow::Result<()> {
    d.story.scene("The postmortem draft and its follow-ups");
    let draft =
        d.h.slack
            .uploaded_files()
            .into_iter()
            .find(|f| f.bytes.starts_with(b"# Postmortem draft"))
            .ok_or_else(|| anyhow::anyhow!("no postmortem draft was uploaded at resolution"))?;
    let text = String::from_utf8_lossy(&draft.bytes);
    d.story.say(&format!(
        "📎 {} ({} lines of Markdown, uploaded to the channel at resolution; `incident-bot export {} --format postmortem` writes the same file). Its sections:",
        draft.filename,
        text.lines().count(),
        d.incident(id).await?.key()
    ));
    for line in text.lines().filter(|l| l.starts_with("## ")) {
        d.story
            .say(&format!("  {}", line.trim_start_matches("## ")));
    }
    let chan = d.incident(id).await?.channel_id.unwrap_or_default();
    let due = (d.h.state.clock.now() + Span::days(3)).format("%Y-%m-%d");
    for text in [
        format!(
            "followup Alert on Visa declines before customers notice <@U0PAYOWN1|omar> due:{due}"
        ),
        "followup Add the gateway's error rate to the payments dashboard".to_string(),
    ] {
        d.type_command("U0PAYOWN2", &chan, &text).await?;
        d.settle(id).await?;
    }
    d.type_command("U0PAYOWN2", &chan, "followups").await?;
    d.settle(id).await
}

/// Someone asks for this week's digest in #incidents; it comes with a chart.
async fn digest(d: &mut Demo) -> anyhow::Result<()> {
    d.story.scene("The weekly digest, on demand");
    d.type_command("U0DECLARER", INCIDENTS_CHANNEL_ID, "digest")
        .await?;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !d.h.slack.uploaded_files().iter().any(is_png) {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the digest was not posted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.story.catch_up();
    for f in d.h.slack.uploaded_files().iter().filter(|f| is_png(f)) {
        d.story.say(&format!(
            "📎 {} is a {} KB PNG (MTTR per phase, minutes)",
            f.filename,
            f.bytes.len() / 1024
        ));
    }
    if let Some(ch) = d.h.slack.channel_by_name(&d.broadcast) {
        if let Some(m) = ch.messages.iter().find(|m| !m.files.is_empty()) {
            d.anchors.push(Anchor {
                channel_id: ch.id.clone(),
                ts: m.ts.clone(),
                name: "digest".into(),
            });
        }
    }
    Ok(())
}

/// The digest's chart, among the uploads (the postmortem drafts are Markdown).
fn is_png(f: &UploadedFile) -> bool {
    f.bytes.starts_with(b"\x89PNG")
}

/// `--keep` and `--html`: what the demo leaves behind.
async fn finish(d: &mut Demo, dir: &Path, opts: &Options) -> anyhow::Result<()> {
    let files = d.h.slack.uploaded_files();
    if let Some(path) = &opts.html {
        let names = |id: &str| d.story.name_of(id);
        let html = slack_page::page(
            "incident-bot demo",
            "What Slack showed during `incident-bot demo`: the real bot against the built-in stand-ins, on a simulated clock (UTC).",
            &d.h.slack.channels(),
            &files,
            &d.anchors,
            &names,
        );
        std::fs::write(path, html)?;
        d.story.scene("The conversation as a page");
        d.story.say(&format!(
            "written to {} (open it in a browser)",
            path.display()
        ));
    }
    if opts.keep.is_some() {
        if let Some(f) = files.iter().find(|f| is_png(f)) {
            std::fs::write(dir.join(KEPT_CHART), &f.bytes)?;
        }
        let since = (d.start - Span::hours(3)).format("%Y-%m-%dT%H:%M:%SZ");
        let until = (d.h.state.clock.now() + Span::minutes(1))
            .duration_trunc(Span::minutes(1))
            .unwrap_or_else(|_| d.h.state.clock.now())
            .format("%Y-%m-%dT%H:%M:%SZ");
        d.story.scene("Kept");
        d.story
            .say(&format!("database: {}", dir.join(KEPT_DATABASE).display()));
        d.story
            .say(&format!("digest chart: {}", dir.join(KEPT_CHART).display()));
        d.story.say("the figures of these incidents (the simulated times lie in the future, hence --until):");
        println!(
            "DATABASE_URL=sqlite://{} incident-bot report --since {since} --until {until}",
            dir.join(KEPT_DATABASE).display()
        );
    }
    Ok(())
}

/// Alertmanager's webhook (version 4) for a search alert that began at `starts`.
fn alertmanager_body(
    starts: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    status: &str,
) -> String {
    let ends = if status == "resolved" {
        now.to_rfc3339()
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"SearchLatencyHigh\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incident-bot",
        "groupLabels": { "alertname": "SearchLatencyHigh" },
        "commonLabels": { "alertname": "SearchLatencyHigh", "service": "search", "severity": "critical" },
        "commonAnnotations": { "summary": "search p99 latency above 2 s" },
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": [{
            "status": status,
            "labels": { "alertname": "SearchLatencyHigh", "service": "search", "severity": "critical",
                        "instance": "search-7f9c:9090" },
            "annotations": { "summary": "search p99 latency above 2 s" },
            "startsAt": starts.to_rfc3339(),
            "endsAt": ends,
            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=search_p99_seconds+%3E+2",
            "fingerprint": "5e1a2b3c4d5e6f70",
        }],
    })
    .to_string()
}

/// Part two: an Alertmanager alert opens an incident by itself, and its resolution asks to mark it Resolved.
async fn alert_declares(d: &mut Demo) -> anyhow::Result<()> {
    d.story.scene("An alert declares an incident by itself");
    let post = |h: &Harness, body: String| {
        h.http
            .post(format!("{}/api/v1/alerts/alertmanager", h.base_url))
            .bearer_auth(crate::standins::harness::ALERT_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let now = d.h.state.clock.now();
    let starts = now - Span::minutes(7);
    d.story.say(&format!(
        "{} · Alertmanager fires *SearchLatencyHigh* (service=search, severity=critical), started {}",
        d.now(),
        starts.format("%H:%M")
    ));
    let resp = post(&d.h, alertmanager_body(starts, now, "firing")).await?;
    d.story.say(&format!(
        "POST /api/v1/alerts/alertmanager → HTTP {} (stored before the answer)",
        resp.status().as_u16()
    ));
    let id = d.h.incident_id(2).await?;
    tick_until_settled(&d.h, &d.clock, &id).await?;
    d.story.catch_up();
    let inc = d.incident(&id).await?;
    d.story.say(&format!(
        "{} was declared by the alert: impact from the alert's startsAt ({}), detected via {}",
        inc.key(),
        inc.timeline.started_at.format("%H:%M"),
        inc.detection.as_str()
    ));

    d.story.scene("Alertmanager re-sends the same group");
    let resp = post(
        &d.h,
        alertmanager_body(starts, d.h.state.clock.now(), "firing"),
    )
    .await?;
    d.story.say(&format!(
        "HTTP {} {} — nothing new in Slack",
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default()
    ));

    d.story.scene("The alert resolves");
    post(
        &d.h,
        alertmanager_body(starts, d.h.state.clock.now(), "resolved"),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE state IN ('pending', 'running')")
                .fetch_one(&d.h.state.db.pool)
                .await?;
        if left == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the alerts were not processed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tick_until_settled(&d.h, &d.clock, &id).await?;
    d.story.catch_up();
    Ok(())
}

/// Moves the simulated clock on a second at a time until the incident's war room and updates are done (the
/// alert's war room retries its timeline line until the channel exists, on the bot's clock).
async fn tick_until_settled(h: &Harness, clock: &ManualClock, id: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let steps = crate::incidents::setup::step_report(&h.state.db, id).await?;
        let setup_done = !steps.is_empty()
            && steps
                .iter()
                .all(|s| matches!(s.state.as_str(), "done" | "failed" | "skipped"));
        let left = crate::incidents::outbox::unfinished(&h.state.db, id).await?;
        if setup_done && left == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the alert's incident did not settle");
        }
        clock.advance(Span::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the timer tick and waits until every queued Slack/pager update of the incident is done.
async fn settle(h: &Harness, id: &str) -> anyhow::Result<()> {
    let tick = h.state.settings.incidents.timer_tick_ms;
    tokio::time::sleep(Duration::from_millis(2 * tick + 50)).await;
    h.wait_for_effects(id, LIMIT).await
}

/// A stable fake commit hash for the demo's deploys.
fn md5ish(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
