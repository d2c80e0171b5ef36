//! Untrusted text (SPEC §10): hostile titles, service names and deploy fields reach Slack escaped, a title far
//! over Slack's limits still gets a whole war room, and a start of impact in the future is refused.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{declared_number, spawn_app, TestApp, SETUP_LIMIT};
use incident_bot::domain::text::is_invisible;
use incident_bot::standins::slack::{blocks_to_text, INCIDENTS_CHANNEL_ID};

const TOKEN: &str = "harness-deploy-token";

/// What Slack does to slash-command text before sending it: `&`, `<`, `>` escaped.
fn as_slack_sends(typed: &str) -> String {
    typed
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Raw control sequences that would ping or link if they reached Slack unescaped.
const RAW: &[&str] = &[
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam",
    "<@U0EVIL",
    "<#C0EVIL",
    "<https://evil.example",
    "<mailto:",
];

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Every string the bot sent to Slack (Web API calls and response URLs), with the method it went to.
fn everything_sent(app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let calls = app
        .slack
        .calls()
        .into_iter()
        .chain(app.slack.non_api_calls());
    for c in calls {
        let mut all = Vec::new();
        strings(&Value::Object(c.params.clone()), &mut all);
        out.extend(all.into_iter().map(|s| (c.method.clone(), s)));
    }
    out
}

fn assert_nothing_raw(app: &TestApp, replies: &[Value]) -> usize {
    let mut sent = everything_sent(app);
    for r in replies {
        let mut all = Vec::new();
        strings(r, &mut all);
        sent.extend(all.into_iter().map(|s| ("reply".to_string(), s)));
    }
    for (method, s) in &sent {
        for raw in RAW {
            assert!(!s.contains(raw), "{method} carries {raw}: {s:?}");
        }
        assert!(
            !s.chars().any(|c| is_invisible(c) && c != '\u{200d}'),
            "{method} carries an invisible character: {s:?}"
        );
    }
    sent.len()
}

async fn post_deploy(app: &TestApp, body: Value) {
    let resp = app
        .http
        .post(format!("{}/api/v1/deploys", app.base_url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
}

async fn submit_modal(app: &TestApp, title: &str, started: &str) -> Value {
    let payload = json!({
        "type": "view_submission",
        "team": { "id": "T0001", "domain": "acme" },
        "user": { "id": "U0MODAL", "team_id": "T0001" },
        "view": {
            "callback_id": "incident_start",
            "private_metadata": "CGENERAL",
            "state": { "values": {
                "title": { "value": { "type": "plain_text_input", "value": title } },
                "severity": { "value": { "type": "static_select", "selected_option": { "value": "P2" } } },
                "service": { "value": { "type": "static_select", "selected_option": { "value": "payments" } } },
                "via": { "value": { "type": "static_select", "selected_option": { "value": "alert" } } },
                "started": { "value": { "type": "plain_text_input", "value": started } }
            } }
        }
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let resp = app
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap_or(Value::Null)
}

async fn wait_for_answer(app: &TestApp, thread_ts: &str) -> String {
    for _ in 0..500 {
        let found = app
            .slack
            .calls_to("chat.postMessage")
            .into_iter()
            .find(|c| c.params.get("thread_ts").and_then(Value::as_str) == Some(thread_ts));
        if let Some(c) = found {
            return c.params["text"].as_str().unwrap_or_default().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no answer in thread {thread_ts}");
}

#[tokio::test]
async fn a_3100_character_title_gets_a_whole_war_room() {
    let app = spawn_app().await;
    let title = format!("Checkout down {}", "x".repeat(3_100));
    let (status, reply) = app
        .slash(&format!("start {title} sev:P1 service:payments"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    assert!(
        steps.iter().all(|s| s.state == "done"),
        "every step done: {steps:?}"
    );

    let ch = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-1-"))
        .expect("the war-room channel");
    assert!(ch.name.len() <= 80, "{}", ch.name);
    assert!(
        ch.topic.starts_with("🔴 P1 · payments · Checkout down xxx"),
        "{}",
        ch.topic
    );
    assert!(ch.topic.ends_with("… | INC-1"), "{}", ch.topic);
    assert_eq!(ch.pins.len(), 1, "card pinned");
    let card = ch
        .messages
        .iter()
        .find(|m| ch.pins.contains(&m.ts))
        .unwrap();
    let header = card.blocks.as_ref().unwrap()[0]["text"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        header.starts_with("🔴 INC-1 · Checkout down x") && header.ends_with('…'),
        "{header}"
    );
    assert_eq!(header.chars().count(), 150);

    let broadcast = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .unwrap();
    assert_eq!(broadcast.messages.len(), 1, "announced");
    let announced = blocks_to_text(broadcast.messages[0].blocks.as_ref().unwrap());
    assert!(
        announced.contains("INC-1") && announced.contains('…'),
        "{announced}"
    );
    assert_eq!(app.pager.pagerduty_alerts().len(), 1, "paged");
    // Each posted once: the card and the announcement, and the topic set once (a refusal would have failed
    // its step; a retry would show as a second call).
    assert_eq!(app.slack.count("chat.postMessage"), 2);
    assert_eq!(app.slack.count("conversations.setTopic"), 1);
}

#[tokio::test]
async fn the_stand_in_refuses_what_slack_refuses() {
    let app = spawn_app().await;
    let long_section =
        json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "x".repeat(3_001) } }]);
    let r = app
        .state
        .slack
        .call(
            "chat.postMessage",
            json!({ "channel": "CGENERAL", "text": "t", "blocks": long_section }),
        )
        .await;
    assert_eq!(r.unwrap_err().code(), Some("invalid_blocks"));
    let r = app
        .state
        .slack
        .call(
            "chat.postMessage",
            json!({ "channel": "CGENERAL", "text": "t".repeat(40_001) }),
        )
        .await;
    assert_eq!(r.unwrap_err().code(), Some("msg_too_long"));
    let r = app
        .state
        .slack
        .call(
            "conversations.setTopic",
            json!({ "channel": "CGENERAL", "topic": "t".repeat(251) }),
        )
        .await;
    assert_eq!(r.unwrap_err().code(), Some("too_long"));
}

#[tokio::test]
async fn hostile_titles_services_and_deploys_ping_and_link_nobody() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    // Deploys with hostile fields, just before impact.
    post_deploy(
        &app,
        json!({ "service": "payments", "version": "<!here>v2.14", "author": "<!channel>",
                "url": "https://evil.example|Join-the-war-room", "commit_sha": "f95f852bd8",
                "deployed_at": (now - chrono::Duration::minutes(10)).to_rfc3339() }),
    )
    .await;
    post_deploy(
        &app,
        json!({ "service": "payments", "version": "\u{202e}1.2v", "author": "<@U0EVIL|boss>",
                "url": "https://ci.example/<!everyone>", "deployed_at": (now - chrono::Duration::minutes(5)).to_rfc3339() }),
    )
    .await;

    let mut replies = Vec::new();
    // Slash command, as Slack sends what was typed (escaped) …
    let typed = "DB &lt;down&gt; & <!channel> <@U0EVIL> <#C0EVIL> <https://evil.example|Join war room> \u{202e}gnp.exe";
    let (status, reply) = app
        .slash(&format!(
            "start {} sev:P1 service:payments",
            as_slack_sends(typed)
        ))
        .await
        .unwrap();
    assert_eq!(status, 200);
    replies.push(reply.clone());
    let first = app.incident_id(declared_number(&reply)).await.unwrap();
    // … and raw, as a workspace with `should_escape: true` or a forged-looking text would carry it.
    let (status, reply) = app
        .slash("start Checkout <!here> <!subteam^S123|@oncall> slow sev:P2 service:<!channel>")
        .await
        .unwrap();
    assert_eq!(status, 200);
    replies.push(reply.clone());
    let second = app.incident_id(declared_number(&reply)).await.unwrap();
    // The declare form: text arrives raw.
    replies.push(
        submit_modal(
            &app,
            "<!everyone> \u{2066}login\u{2069} <mailto:x@evil.example|mail> \u{200b}",
            "",
        )
        .await,
    );
    let third = app.incident_id(3).await.unwrap();
    for id in [&first, &second, &third] {
        let steps = app.wait_for_setup(id, SETUP_LIMIT).await.unwrap();
        assert!(
            steps
                .iter()
                .all(|s| s.state == "done" || s.state == "skipped"),
            "{steps:?}"
        );
    }

    // Stored as typed (decoded once), minus invisible characters.
    let inc = incident_bot::incidents::load(&app.state.db, &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        inc.title,
        "DB &lt;down&gt; & <!channel> <@U0EVIL> <#C0EVIL> <https://evil.example|Join war room> gnp.exe"
    );
    let modal = incident_bot::incidents::load(&app.state.db, &third)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        modal.title,
        "<!everyone> login <mailto:x@evil.example|mail>"
    );

    // Shown as typed: escaped once (no `&amp;amp;`), in the topic.
    let topic = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-1-"))
        .unwrap()
        .topic;
    assert!(
        topic.contains("DB &amp;lt;down&amp;gt; &amp; &lt;!channel&gt; &lt;@U0EVIL&gt;"),
        "{topic}"
    );

    // Phases, the summary, status, list, deploy answers and a mention question echo the same text.
    for action in ["phase_ack", "phase_resolved"] {
        assert_eq!(app.click("U0RESPOND1", action, &first).await.unwrap(), 200);
    }
    app.wait_for_effects(&first, SETUP_LIMIT).await.unwrap();
    let ch1 = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-1-"))
        .unwrap();
    for text in [
        "status",
        "list",
        "deploys payments",
        "deploys <!channel>",
        "start x started:<!here>",
    ] {
        let (_, reply) = app
            .slash_as("U0DECLARER", &ch1.id, &as_slack_sends(text))
            .await
            .unwrap();
        replies.push(reply);
    }
    let (_, reply) = app.slash("deploys <!channel>").await.unwrap();
    assert!(
        reply["text"].as_str().unwrap().contains("&lt;!channel&gt;"),
        "the name is echoed, escaped: {reply}"
    );
    replies.push(reply);
    let body = json!({
        "type": "event_callback", "team_id": "T0001", "event_id": "EvHostile1", "event_time": 1,
        "event": { "type": "app_mention", "user": "U0ASKER", "channel": "CGENERAL", "ts": "1700000000.000100",
                   "text": "<@UBOT0001> was there a deploy to payments recently?" }
    });
    let resp = app
        .post_signed("/slack/events", "application/json", body.to_string())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let answer = wait_for_answer(&app, "1700000000.000100").await;
    assert!(
        answer.contains("&lt;!channel&gt;") && answer.contains("&lt;!here&gt;v2.14"),
        "{answer}"
    );
    assert!(
        !answer.contains("<http"),
        "neither URL passes the check, so neither is a link: {answer}"
    );
    assert!(
        answer.contains("`https://evil.example|Join-the-war-room`"),
        "shown as text: {answer}"
    );

    let checked = assert_nothing_raw(&app, &replies);
    assert!(checked > 100, "{checked} strings checked");
    // The page's summary: cleaned, not escaped (it is not Slack text).
    let alerts = app.pager.pagerduty_alerts();
    assert!(
        alerts.iter().all(|a| !a.summary.chars().any(is_invisible)),
        "{alerts:?}"
    );
}

#[tokio::test]
async fn a_start_of_impact_in_the_future_is_refused_with_usage() {
    let app = spawn_app().await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%MZ");
    let (status, reply) = app
        .slash(&format!("start Future outage started:{tomorrow} sev:P2"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = reply["text"].as_str().unwrap();
    assert!(text.contains("is in the future"), "{text}");
    assert!(!text.contains("Declaring"), "{text}");
    // A few seconds ahead (clock skew) is still now.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(20)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, reply) = app
        .slash(&format!("start Skewed outage started:{soon}"))
        .await
        .unwrap();
    assert!(
        reply["text"].as_str().unwrap().contains("Declaring"),
        "{reply}"
    );
    // The form says so on its field.
    let day_after = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d %H:%M");
    let v = submit_modal(&app, "Future from the form", &day_after.to_string()).await;
    assert_eq!(v["response_action"], "errors", "{v}");
    assert!(
        v["errors"]["started"].as_str().unwrap().contains("future"),
        "{v}"
    );
    // Declarations become incident rows a few milliseconds after the answer: wait for the one there is.
    app.incident_id(1).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the skewed one is declared");
}

#[tokio::test]
async fn a_date_in_the_future_in_the_declarers_own_zone_is_refused_once_slack_says_the_zone() {
    let app = spawn_app().await;
    // Two hours ago as a UTC wall clock (the default zone) is eight hours ahead in Honolulu (UTC−10).
    app.slack.set_user_tz("U0DECLARER", "Pacific/Honolulu");
    let typed = (chrono::Utc::now() - chrono::Duration::hours(2)).format("%Y-%m-%d %H:%M");
    let (status, reply) = app
        .slash(&format!("start Checkout errors started:{typed}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let ack = reply["text"].as_str().unwrap();
    assert!(ack.contains("checking your Slack time zone"), "{ack}");
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let told = crate::helpers::response_containing(&app, "Pacific/Honolulu", SETUP_LIMIT).await;
    assert!(told.contains("is in the future"), "{told}");
    app.wait_for_effects(&id, SETUP_LIMIT).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    let lead = inc.timeline.declared_at - inc.timeline.started_at;
    assert!(
        lead.num_seconds().abs() <= 5,
        "impact taken to start at the declaration, not two hours before: {lead:?}; told {told}"
    );
}
