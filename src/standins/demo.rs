//! `incident-bot demo`: a whole incident on an embedded SQLite database against the built-in Slack and pager
//! stand-ins, printed as the channels would show it. Needs no Slack account and no network.
//!
//! The incident runs on a manual clock, so 45 minutes of incident take a few seconds: deploys land, the incident is
//! declared, responders click every phase button (signed `block_actions` requests, exactly as Slack sends them),
//! the unresolved escalation fires, someone corrects a timestamp, the MTTR summary goes to both channels, and the
//! monitoring window closes the incident. Along the way it is run (SPEC §12): upgraded to P1, a commander named
//! and handed off, a status update posted in the channel and the announcement's thread, and a message 📌 captured. Then an Alertmanager webhook opens a second incident by itself (impact
//! from the alert's `startsAt`, detection `alert`, the card linking the alert), and its resolution asks "Alert
//! resolved … — mark Resolved?".

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Span, DurationRound};

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::deploys::{self, NewDeploy};
use crate::standins::harness::{settings_for, Harness};
use crate::standins::pager::PagerStandin;
use crate::standins::slack::{blocks_to_text, Channel, SlackStandin, INCIDENTS_CHANNEL_ID};

/// How long updates may take before the demo gives up.
const LIMIT: Duration = Duration::from_secs(30);

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("incident-bot-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}", dir.join("demo.db").display());
    let result = run_on(&db_url).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_on(db_url: &str) -> anyhow::Result<()> {
    let slack = SlackStandin::start().await?;
    let pager = PagerStandin::start().await?;
    let settings = settings_for(&slack, &pager, db_url);
    // A whole minute, so that the figures below come out round.
    let start = SystemClock
        .now()
        .duration_trunc(Span::minutes(1))
        .unwrap_or_else(|_| SystemClock.now());
    let clock = Arc::new(ManualClock::new(start));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let h = Harness::start_with(settings, slack, pager, dyn_clock).await?;
    h.slack.set_latency(Duration::from_millis(40));
    println!(
        "incident-bot demo — embedded database {db_url}, Slack stand-in at {}\n\
         (the clock is simulated: the incident's 45 minutes pass in seconds)\n",
        h.slack.base_url()
    );

    let now = h.state.clock.now();
    for (service, version, author, minutes_ago) in [
        ("payments", "v2.14.0", "alice", 25),
        ("auth", "v7.2.1", "bob", 70),
        ("search", "v1.9.3", "carol", 40),
    ] {
        deploys::insert(
            &h.state.db,
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
    }
    println!("── 3 deploys recorded (payments 25 min ago, its dependency auth 70 min ago, search 40 min ago)\n");

    let typed = "start Card payments failing at checkout sev:P2 service:payments started:-10m";
    println!("── U0DECLARER types: /incident {typed}");
    let t0 = Instant::now();
    let (status, reply) = h.slash(typed).await?;
    let ack = t0.elapsed();
    println!(
        "   HTTP {status} in {} ms, ephemeral reply: {}\n",
        ack.as_millis(),
        reply["text"].as_str().unwrap_or_default()
    );

    let id = h.incident_id(1).await?;
    let steps = h.wait_for_setup(&id, LIMIT).await?;
    println!(
        "── war room ready {} ms after the command (Slack answering every call after 40 ms)",
        t0.elapsed().as_millis()
    );
    for s in &steps {
        println!(
            "   {:<10} {:<8} {}",
            s.step,
            s.state,
            s.result
                .as_deref()
                .or(s.last_error.as_deref())
                .unwrap_or_default()
        );
    }
    let inc = crate::incidents::load(&h.state.db, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    let name = inc.channel_name.clone().unwrap_or_default();
    println!("\n{}", plain(&h.slack.render_channel(&name)));
    let broadcast = h
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .map(|c| c.name)
        .unwrap_or_else(|| INCIDENTS_CHANNEL_ID.to_string());
    println!("{}", plain(&h.slack.render_channel(&broadcast)));
    for r in h.slack.responses() {
        println!(
            "── reply to the declarer (response_url): {}\n",
            r.1["text"].as_str().unwrap_or_default()
        );
    }

    run_the_incident(&h, &clock, &id, &broadcast).await?;

    // The responders drive the incident through its phases. Minutes since declaration: 5, 23, 35, 44.
    let clicks = [
        (3, "U0PAYONC1", "phase_ack", "Acknowledge"),
        (18, "U0PAYOWN1", "phase_identified", "Root cause identified"),
        (12, "U0PAYOWN1", "phase_fixed", "Fix deployed"),
        (9, "U0PAYONC1", "phase_resolved", "Resolved"),
    ];
    let mut posted = print_new_lines(&h, &id, 0).await?;
    for (after, user, action, label) in clicks {
        clock.advance(Span::minutes(after));
        settle(&h, &id).await?;
        posted = print_new_lines(&h, &id, posted).await?;
        let elapsed = (h.state.clock.now() - inc.timeline.declared_at).num_minutes();
        println!("── +{elapsed} min: {user} clicks [{label}] on the card");
        let t = Instant::now();
        let status = h.click(user, action, &id).await?;
        println!("   HTTP {status} in {} ms", t.elapsed().as_millis());
        settle(&h, &id).await?;
        if action == "phase_ack" {
            // Someone else clicks the same button on a card that has not refreshed yet.
            h.click("U0PAYOWN2", action, &id).await?;
            settle(&h, &id).await?;
            if let Some((_, v)) = h.slack.responses().last() {
                println!(
                    "── U0PAYOWN2 clicks [{label}] a moment later; only they see: {}",
                    v["text"].as_str().unwrap_or_default()
                );
            }
        }
        posted = print_new_lines(&h, &id, posted).await?;
        println!("   the pinned card now reads:\n{}", indent(&card(&h, &id)?));
    }

    // A correction: the root cause was really found five minutes earlier.
    let inc = crate::incidents::load(&h.state.db, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    if let Some(identified) = &inc.timeline.identified {
        let tz = h.state.user_tz("U0PAYOWN1").await;
        let local = (identified.at - Span::minutes(5))
            .with_timezone(&tz)
            .format("%H:%M")
            .to_string();
        let text = format!("set identified {local}");
        println!(
            "── U0PAYOWN1 (Slack time zone {}) types: /incident {text}",
            tz.name()
        );
        let (_, reply) = h
            .slash_as(
                "U0PAYOWN1",
                inc.channel_id.as_deref().unwrap_or_default(),
                &text,
            )
            .await?;
        settle(&h, &id).await?;
        println!(
            "   only they see: {}",
            plain(reply["text"].as_str().unwrap_or_default())
        );
        posted = print_new_lines(&h, &id, posted).await?;
    }

    println!("\n── the incident channel after resolution:\n");
    println!("{}", plain(&h.slack.render_channel(&name)));
    println!("── the broadcast channel:\n");
    println!("{}", plain(&h.slack.render_channel(&broadcast)));

    println!("── 31 minutes of monitoring pass without a reopen …");
    clock.advance(Span::minutes(31));
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let inc = crate::incidents::load(&h.state.db, &id).await?;
        if inc.is_some_and(|i| i.timeline.closed_at.is_some()) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the incident was not closed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(&h, &id).await?;
    print_new_lines(&h, &id, posted).await?;
    println!("   the pinned card now reads:\n{}", indent(&card(&h, &id)?));

    println!("── pages sent");
    for a in h.pager.pagerduty_alerts() {
        println!(
            "   PagerDuty alert dedup_key={} severity={} summary={:?} ({} trigger event(s))",
            a.dedup_key, a.severity, a.summary, a.trigger_count
        );
    }

    println!("\n── U0DECLARER types /incident digest in #incidents");
    let before = h
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name == broadcast)
        .map_or(0, |c| c.messages.len());
    let (status, reply) = h
        .slash_as(
            "U0DECLARER",
            crate::standins::slack::INCIDENTS_CHANNEL_ID,
            "digest",
        )
        .await?;
    println!(
        "   HTTP {status}, only they see: {}",
        plain(reply["text"].as_str().unwrap_or_default())
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    while h.slack.uploaded_files().is_empty() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the digest was not posted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(ch) = h.slack.channels().into_iter().find(|c| c.name == broadcast) {
        for m in ch.messages.iter().skip(before) {
            let text = match &m.blocks {
                Some(b) => crate::standins::slack::blocks_to_text(b),
                None => m.text.clone(),
            };
            println!("{}", indent(&plain(&text)));
        }
    }
    for f in h.slack.uploaded_files() {
        println!(
            "   📎 {} — {} ({} bytes PNG: MTTR per phase, minutes)",
            f.filename,
            f.title,
            f.bytes.len()
        );
    }
    alert_declares(&h, &clock, &broadcast).await
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
async fn alert_declares(h: &Harness, clock: &ManualClock, broadcast: &str) -> anyhow::Result<()> {
    let post = |body: String| async move {
        h.http
            .post(format!("{}/api/v1/alerts/alertmanager", h.base_url))
            .bearer_auth(crate::standins::harness::ALERT_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    };
    println!("\n── Alertmanager fires: SearchLatencyHigh (service=search, severity=critical), started 7 min ago");
    let t = Instant::now();
    let starts = h.state.clock.now() - Span::minutes(7);
    let resp = post(alertmanager_body(starts, h.state.clock.now(), "firing")).await?;
    println!(
        "   POST /api/v1/alerts/alertmanager → HTTP {} in {} ms (stored before the answer)",
        resp.status().as_u16(),
        t.elapsed().as_millis()
    );
    let id = h.incident_id(2).await?;
    tick_until_settled(h, clock, &id).await?;
    let inc = crate::incidents::load(&h.state.db, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    println!(
        "── {} declared by the alert, war room ready {} ms after the webhook; impact started at the alert's \
         startsAt ({}), detected via {}",
        inc.key(),
        t.elapsed().as_millis(),
        inc.timeline.started_at.format("%H:%M UTC"),
        inc.detection.as_str()
    );
    println!("   the pinned card reads:\n{}", indent(&card(h, &id)?));
    println!("── Alertmanager re-sends the same group (repeat_interval): nothing new");
    let resp = post(alertmanager_body(starts, h.state.clock.now(), "firing")).await?;
    println!(
        "   HTTP {} {}",
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default()
    );
    println!("── the alert resolves");
    post(alertmanager_body(starts, h.state.clock.now(), "resolved")).await?;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE state IN ('pending', 'running')")
                .fetch_one(&h.state.db.pool)
                .await?;
        if left == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the alerts were not processed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tick_until_settled(h, clock, &id).await?;
    let name = inc.channel_name.clone().unwrap_or_default();
    println!("\n{}", plain(&h.slack.render_channel(&name)));
    println!("── the broadcast channel's newest message:");
    if let Some(m) = h
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name == broadcast)
        .and_then(|c| c.messages.last().cloned())
    {
        let text = m.blocks.as_ref().map(blocks_to_text).unwrap_or(m.text);
        println!("{}", indent(&plain(&text)));
    }
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

/// SPEC §12 in two minutes: the severity goes up to P1, a commander is named and hands off, a status update goes
/// to the channel and the announcement's thread, and a message is captured with a 📌.
async fn run_the_incident(
    h: &Harness,
    clock: &ManualClock,
    id: &str,
    broadcast: &str,
) -> anyhow::Result<()> {
    let inc = crate::incidents::load(&h.state.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    let chan = inc.channel_id.clone().unwrap_or_default();
    clock.advance(Span::minutes(1));
    for (user, text) in [
        ("U0PAYONC1", "sev P1"),
        ("U0PAYONC1", "role ic me"),
        ("U0PAYONC1", "role ic <@U0PAYOWN1|payowner>"),
    ] {
        println!("── +1 min: {user} types in the incident channel: /incident {text}");
        let (_, reply) = h.slash_as(user, &chan, text).await?;
        settle(h, id).await?;
        println!(
            "   only they see: {}",
            plain(reply["text"].as_str().unwrap_or_default())
        );
    }
    clock.advance(Span::minutes(1));
    println!("── +2 min: U0PAYOWN1 types /incident update and fills in the form");
    h.slash_as("U0PAYOWN1", &chan, "update").await?;
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
    h.post_signed(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        body,
    )
    .await?;
    settle(h, id).await?;
    if let Some(ch) = h.slack.channels().into_iter().find(|c| c.name == broadcast) {
        for m in ch
            .messages
            .iter()
            .filter(|m| m.thread_ts.as_ref().is_some_and(|t| *t != m.ts))
        {
            let text = m
                .blocks
                .as_ref()
                .map(blocks_to_text)
                .unwrap_or_else(|| m.text.clone());
            println!(
                "   reply in the thread of the announcement in #{broadcast}:\n{}",
                indent(&plain(&text))
            );
        }
    }
    let said = "Gateway returns 502 for every Visa card since 09:12";
    if let Some(ts) = h.slack.say(&chan, "U0PAYOWN2", said) {
        println!("── U0PAYOWN2 writes “{said}” and reacts with 📌");
        let event = serde_json::json!({
            "token": "demo", "team_id": crate::standins::harness::TEAM_ID, "api_app_id": "A0001",
            "type": "event_callback", "event_id": "Ev0DEMOPIN1", "event_time": h.state.clock.now().timestamp(),
            "authed_users": [],
            "event": { "type": "reaction_added", "user": "U0PAYOWN2", "reaction": "pushpin", "item_user": "U0PAYOWN2",
                       "item": { "type": "message", "channel": chan, "ts": ts }, "event_ts": ts }
        });
        h.post_signed("/slack/events", "application/json", event.to_string())
            .await?;
        let deadline = tokio::time::Instant::now() + LIMIT;
        while crate::store::incidents::count_events(&h.state.db, id, "message").await? == 0 {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the 📌 message was not captured");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("   captured on the timeline (`/incident timeline` lists it)");
    }
    settle(h, id).await
}

/// Lets the timer tick and waits until every queued Slack/pager update of the incident is done.
async fn settle(h: &Harness, id: &str) -> anyhow::Result<()> {
    let tick = h.state.settings.incidents.timer_tick_ms;
    tokio::time::sleep(Duration::from_millis(2 * tick + 50)).await;
    h.wait_for_effects(id, LIMIT).await
}

fn incident_channel(h: &Harness, id_channel: &str) -> Option<Channel> {
    h.slack.channel_by_name(id_channel)
}

/// Prints the timeline lines posted since the first `seen`; returns how many there are now.
async fn print_new_lines(h: &Harness, id: &str, seen: usize) -> anyhow::Result<usize> {
    let inc = crate::incidents::load(&h.state.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    let Some(ch) = inc
        .channel_id
        .as_deref()
        .and_then(|c| incident_channel(h, c))
    else {
        return Ok(seen);
    };
    let lines: Vec<String> = ch
        .messages
        .iter()
        .filter_map(|m| m.blocks.as_ref())
        .filter(|b| {
            b[0]["block_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("ob:post:"))
        })
        .map(|b| plain(&blocks_to_text(b)))
        .collect();
    for l in lines.iter().skip(seen) {
        println!("   timeline line in #{}: {l}", ch.name);
    }
    Ok(lines.len())
}

/// The pinned card as text.
fn card(h: &Harness, id: &str) -> anyhow::Result<String> {
    let ch = h
        .slack
        .channels()
        .into_iter()
        .find(|c| {
            c.messages.iter().any(|m| {
                m.blocks.as_ref().is_some_and(|b| {
                    b[0]["block_id"].as_str()
                        == Some(crate::slack::blocks::card_block_id(id).as_str())
                })
            })
        })
        .ok_or_else(|| anyhow::anyhow!("no card"))?;
    let m = ch
        .messages
        .iter()
        .find(|m| ch.pins.contains(&m.ts))
        .ok_or_else(|| anyhow::anyhow!("no pinned card"))?;
    Ok(plain(
        &m.blocks.as_ref().map(blocks_to_text).unwrap_or_default(),
    ))
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("   │ {l}"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Slack's `<!date^…|fallback>` shown as its fallback, as a reader in UTC would see it.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("<!date^") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find('>') else {
            out.push_str(tail);
            return out;
        };
        out.push_str(tail[..end].rsplit('|').next().unwrap_or_default());
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A stable fake commit hash for the demo's deploys.
fn md5ish(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_dates_print_as_their_fallback() {
        assert_eq!(
            plain("at <!date^1764081240^{time}|14:34 UTC> — ok <@U1>"),
            "at 14:34 UTC — ok <@U1>"
        );
        assert_eq!(plain("no dates"), "no dates");
        assert_eq!(plain("broken <!date^1"), "broken <!date^1");
    }
}
