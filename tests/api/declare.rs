//! `/incident start` and the war room it sets up.

use std::time::Duration;

use crate::helpers::{declared_number, response_containing, spawn_app, TestApp, SETUP_LIMIT};
use incident_bot::standins::slack::{blocks_to_text, Channel, Fault, INCIDENTS_CHANNEL_ID};

async fn declare(
    app: &TestApp,
    text: &str,
) -> (String, Vec<incident_bot::incidents::setup::StepReport>) {
    let (status, reply) = app.slash(text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    (id, steps)
}

fn only_incident_channel(app: &TestApp) -> Channel {
    let chans: Vec<Channel> = app
        .slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .collect();
    assert_eq!(
        chans.len(),
        1,
        "exactly one incident channel: {:?}",
        chans.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    chans.into_iter().next().unwrap()
}

fn card_text(ch: &Channel) -> String {
    let pinned = ch
        .messages
        .iter()
        .filter(|m| ch.pins.contains(&m.ts))
        .collect::<Vec<_>>();
    assert_eq!(pinned.len(), 1, "one pinned card");
    blocks_to_text(pinned[0].blocks.as_ref().expect("card has blocks"))
}

#[tokio::test]
async fn start_is_acknowledged_at_once_and_sets_up_the_whole_war_room() {
    let app = spawn_app().await;
    let (status, reply) = app
        .slash("start Card payments failing sev:P1 service:payments via:customer")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(reply["text"].as_str().unwrap().contains("INC-1"), "{reply}");
    let id = app.incident_id(1).await.unwrap();
    let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");

    let ch = only_incident_channel(&app);
    assert_eq!(ch.name, "inc-1-card-payments-failing");
    assert!(
        ch.topic.contains("P1")
            && ch.topic.contains("payments")
            && ch.topic.contains("Card payments failing"),
        "{}",
        ch.topic
    );
    for user in ["U0DECLARER", "U0PAYOWN1", "U0PAYOWN2", "U0PAYONC1"] {
        assert!(
            ch.members.iter().any(|m| m == user),
            "{user} invited: {:?}",
            ch.members
        );
    }
    let card = card_text(&ch);
    assert!(
        card.contains("https://runbooks.acme.example/payments"),
        "{card}"
    );
    assert!(
        card.contains("https://grafana.acme.example/d/payments-overview"),
        "{card}"
    );
    assert!(card.contains("none"), "no deploys before impact: {card}");
    for label in [
        "Acknowledge",
        "Root cause identified",
        "Fix deployed",
        "Resolved",
    ] {
        assert!(card.contains(label), "button {label}: {card}");
    }
    let links: Vec<&str> = ch.bookmarks.iter().map(|b| b.link.as_str()).collect();
    assert_eq!(links.len(), 2);
    assert!(links.contains(&"https://runbooks.acme.example/payments"));

    let alerts = app.pager.pagerduty_alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].severity, "critical");
    assert!(
        alerts[0]
            .links
            .iter()
            .any(|l| l["href"].as_str().unwrap_or_default().contains(&ch.id)),
        "page links the channel"
    );

    let broadcast = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .unwrap();
    assert_eq!(broadcast.messages.len(), 1);
    assert!(blocks_to_text(broadcast.messages[0].blocks.as_ref().unwrap()).contains("INC-1"));
    let told: Vec<_> = app.slack.responses();
    assert!(
        told.iter()
            .any(|(_, v)| v["text"].as_str().unwrap_or_default().contains(&ch.id)),
        "declarer told where: {told:?}"
    );
}

#[tokio::test]
async fn the_card_lists_deploys_to_the_service_and_its_dependencies_in_the_two_hours_before_impact()
{
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let deploy = |service: &str, version: &str, minutes: i64| incident_bot::deploys::NewDeploy {
        id: None,
        service: service.into(),
        environment: "production".into(),
        version: Some(version.into()),
        commit_sha: Some("abcdef1234567".into()),
        url: None,
        author: Some("alice".into()),
        deployed_at: now - chrono::Duration::minutes(minutes),
        source: "test".into(),
    };
    for d in [
        deploy("payments", "v1-recent", 30),
        deploy("auth", "v2-dependency", 90),
        deploy("payments", "v0-too-old", 20 + 125),
        deploy("search", "v9-unrelated", 10),
    ] {
        incident_bot::deploys::insert(&app.state.db, &d, now)
            .await
            .unwrap();
    }
    declare(&app, "start Checkout errors service:payments started:-20m").await;
    let card = card_text(&only_incident_channel(&app));
    assert!(card.contains("v1-recent"), "{card}");
    assert!(
        card.contains("v2-dependency") && card.contains("(dependency)"),
        "{card}"
    );
    assert!(
        !card.contains("v0-too-old"),
        "older than 2 h before impact: {card}"
    );
    assert!(!card.contains("v9-unrelated"), "{card}");
}

#[tokio::test]
async fn a_taken_channel_name_gets_a_suffix() {
    let app = spawn_app().await;
    app.slack.create_channel("inc-1-db-down");
    declare(&app, "start DB down").await;
    let inc = incident_bot::incidents::load(&app.state.db, &app.incident_id(1).await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inc.channel_name.as_deref(), Some("inc-1-db-down-2"));
}

#[tokio::test]
async fn an_unknown_service_still_declares_with_a_did_you_mean_line() {
    let app = spawn_app().await;
    let (_, reply) = app
        .slash("start Slow payments service:paymnts")
        .await
        .unwrap();
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("did you mean `payments`"),
        "{reply}"
    );
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let card = card_text(&only_incident_channel(&app));
    assert!(
        card.contains("no service called `paymnts` — did you mean `payments`?"),
        "{card}"
    );
    assert!(
        app.pager.pagerduty_alerts().is_empty(),
        "no pager route for an unknown service"
    );
}

#[tokio::test]
async fn slack_refusing_the_channel_tells_the_declarer_and_keeps_the_incident() {
    let app = spawn_app().await;
    app.slack
        .fail_next("conversations.create", Fault::error("restricted_action"));
    let (id, steps) = declare(&app, "start Login broken sev:P1 service:auth").await;
    let state = |name: &str| steps.iter().find(|s| s.step == name).unwrap().state.clone();
    assert_eq!(state("channel"), "failed");
    assert_eq!(state("card"), "skipped");
    assert_eq!(state("page"), "done", "the secondary is paged anyway");
    assert_eq!(state("announce"), "done");
    assert!(incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .is_some());
    let told = app.slack.responses();
    assert!(
        told.iter().any(|(_, v)| v["text"]
            .as_str()
            .unwrap_or_default()
            .contains("restricted_action")),
        "{told:?}"
    );
    assert_eq!(
        app.slack.count("conversations.create"),
        1,
        "a permanent refusal is not retried"
    );
}

#[tokio::test]
async fn a_rate_limited_call_is_retried_after_retry_after() {
    let app = spawn_app().await;
    app.slack.fail_next(
        "conversations.setTopic",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    declare(&app, "start Search slow service:search").await;
    let calls = app.slack.calls_to("conversations.setTopic");
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(950),
        "waited for Retry-After"
    );
    assert!(!only_incident_channel(&app).topic.is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_they_pass() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.slack.fail_next("pins.add", Fault::Status(500));
    }
    let (_, steps) = declare(&app, "start Inventory stale service:inventory").await;
    let pin = steps.iter().find(|s| s.step == "pin").unwrap();
    assert_eq!(pin.state, "done");
    assert_eq!(pin.attempts, 4);
    assert_eq!(only_incident_channel(&app).pins.len(), 1);
}

#[tokio::test]
async fn lost_answers_never_duplicate_the_channel_card_bookmarks_or_announcement() {
    let app = spawn_app().await;
    app.slack.fail_next("conversations.create", Fault::Drop);
    app.slack.fail_next("chat.postMessage", Fault::Hang);
    app.slack.fail_next("chat.postMessage", Fault::Drop);
    app.slack.fail_next("bookmarks.add", Fault::Drop);
    let (_, steps) = declare(&app, "start Payments down sev:P1 service:payments").await;
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    let ch = only_incident_channel(&app);
    let cards = ch
        .messages
        .iter()
        .filter(|m| {
            m.blocks
                .as_ref()
                .is_some_and(|b| b.to_string().contains("card:"))
        })
        .count();
    assert_eq!(cards, 1, "one card");
    assert_eq!(ch.bookmarks.len(), 2, "{:?}", ch.bookmarks);
    let broadcast = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .unwrap();
    assert_eq!(broadcast.messages.len(), 1, "one announcement");
}

#[tokio::test]
async fn a_retried_page_collapses_into_one_alert() {
    let app = spawn_app().await;
    app.pager.fail_next("pagerduty", Fault::Drop);
    app.pager.fail_next("pagerduty", Fault::Status(429));
    declare(&app, "start Payments down sev:P1 service:payments").await;
    let alerts = app.pager.pagerduty_alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(app.pager.count("pagerduty") >= 3);
}

#[tokio::test]
async fn opsgenie_and_webhook_routes_page_per_service() {
    let app = spawn_app().await;
    declare(&app, "start Checkout down sev:P2 service:checkout").await;
    let og = app.pager.opsgenie_alerts();
    assert_eq!(og.len(), 1, "checkout pages Opsgenie");
    declare(&app, "start Stock wrong sev:P3 service:inventory").await;
    assert_eq!(
        app.pager.webhook_deliveries().len(),
        1,
        "inventory pages its webhook"
    );
}

#[tokio::test]
async fn no_title_opens_the_modal_and_its_submission_declares() {
    let app = spawn_app().await;
    let (status, _) = app.slash("start").await.unwrap();
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.slack.views_opened().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "views.open was called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let view = &app.slack.views_opened()[0];
    assert_eq!(view["callback_id"], "incident_start");
    let payload = serde_json::json!({
        "type": "view_submission",
        "team": { "id": "T0001", "domain": "acme" },
        "user": { "id": "U0MODAL", "team_id": "T0001" },
        "view": {
            "callback_id": "incident_start",
            "private_metadata": "CGENERAL",
            "state": { "values": {
                "title": { "value": { "type": "plain_text_input", "value": "Checkout\u{0} 502s\n\u{1b}" } },
                "severity": { "value": { "type": "static_select", "selected_option": { "value": "P1" } } },
                "service": { "value": { "type": "static_select", "selected_option": { "value": "checkout" } } },
                "via": { "value": { "type": "static_select", "selected_option": { "value": "customer" } } },
                "started": { "value": { "type": "plain_text_input", "value": "-15m" } }
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
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inc.title, "Checkout 502s");
    assert_eq!(inc.severity.as_str(), "P1");
    assert_eq!(inc.detection.as_str(), "customer");
    let lead = inc.timeline.declared_at - inc.timeline.started_at;
    assert_eq!(lead.num_minutes(), 15);
    assert!(only_incident_channel(&app)
        .members
        .contains(&"U0MODAL".to_string()));
}

#[tokio::test]
async fn a_modal_without_a_title_is_answered_with_a_field_error() {
    let app = spawn_app().await;
    let payload = serde_json::json!({
        "type": "view_submission", "team": { "id": "T0001" }, "user": { "id": "U1" },
        "view": { "callback_id": "incident_start", "state": { "values": {
            "title": { "value": { "type": "plain_text_input", "value": "  " } },
            "started": { "value": { "type": "plain_text_input", "value": "yesterday-ish" } }
        } } }
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
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["response_action"], "errors");
    assert!(json["errors"]["title"].is_string() && json["errors"]["started"].is_string());
}

#[tokio::test]
async fn incident_numbers_are_sequential_per_workspace_under_concurrent_declares_and_each_gets_its_war_room(
) {
    let app = spawn_app().await;
    let texts: Vec<String> = (0..10).map(|i| format!("start Outage {i}")).collect();
    let futs = texts
        .iter()
        .map(|t| app.slash_as("U0DECLARER", "CGENERAL", t));
    for (status, _) in futures::future::join_all(futs)
        .await
        .into_iter()
        .map(Result::unwrap)
    {
        assert_eq!(status, 200);
    }
    // Acknowledged once logged: the incident rows follow once the burst has been answered.
    app.incident_id(10).await.unwrap();
    let numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM incidents ORDER BY number")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(numbers, (1..=10).collect::<Vec<i64>>());
    // Held together while the burst was answered, then started together: every war room stands.
    for number in 1..=10 {
        let id = app.incident_id(number).await.unwrap();
        let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
        assert!(
            steps
                .iter()
                .all(|s| s.state == "done" || s.state == "skipped"),
            "{steps:?}"
        );
    }
    assert_eq!(app.slack.count("conversations.create"), 10);
    assert_eq!(app.slack.count("pins.add"), 10);
}

#[tokio::test]
async fn the_conformance_check_catches_a_misspelled_argument() {
    // Guards the guard that runs when every TestApp drops: a bad argument name must be reported.
    let slack = incident_bot::standins::slack::SlackStandin::start()
        .await
        .unwrap();
    let token = incident_bot::config::Secret::new(incident_bot::standins::harness::BOT_TOKEN);
    let client = incident_bot::slack::SlackClient::new(
        &slack.base_url(),
        Some(&token),
        Duration::from_secs(2),
    )
    .unwrap();
    client
        .call(
            "chat.postMessage",
            serde_json::json!({ "channel": "CGENERAL", "txet": "hi" }),
        )
        .await
        .ok();
    let v = crate::openapi::SlackSpec::load()
        .unwrap()
        .violations(&slack.calls());
    assert!(v.iter().any(|m| m.contains("txet")), "{v:?}");
}

#[tokio::test]
async fn a_service_declared_by_its_alias_does_not_list_its_own_deploys_as_a_dependency() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let d = incident_bot::deploys::NewDeploy {
        id: None,
        service: "payments".into(),
        environment: "production".into(),
        version: Some("v3-own".into()),
        commit_sha: None,
        url: None,
        author: None,
        deployed_at: now - chrono::Duration::minutes(30),
        source: "test".into(),
    };
    incident_bot::deploys::insert(&app.state.db, &d, now)
        .await
        .unwrap();
    declare(&app, "start Refunds failing service:payments-api").await;
    let card = card_text(&only_incident_channel(&app));
    assert!(card.contains("v3-own"), "{card}");
    assert!(!card.contains("(dependency)"), "{card}");
}

/// `started:HH:MM` 30 minutes ago on the declarer's own clock, New York; the bot's default zone is UTC.
fn half_an_hour_ago_in_new_york() -> (String, chrono::DateTime<chrono::Utc>) {
    let now = chrono::Utc::now();
    let then = now - chrono::Duration::minutes(30);
    let local = then.with_timezone(&chrono_tz::America::New_York);
    (local.format("%H:%M").to_string(), then)
}

#[tokio::test]
async fn a_clock_time_in_started_is_read_in_the_declarers_slack_time_zone() {
    let app = spawn_app().await;
    app.slack.set_user_tz("U0DECLARER", "America/New_York");
    let (clock, then) = half_an_hour_ago_in_new_york();
    let (status, reply) = app
        .slash(&format!(
            "start Checkout errors service:payments started:{clock}"
        ))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let ack = reply["text"].as_str().unwrap();
    assert!(
        ack.contains(&format!(
            "Impact started {clock}: checking your Slack time zone"
        )),
        "answered at once, before asking Slack: {ack}"
    );
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    // Corrected from 14:05 UTC to 14:05 in New York once Slack said the zone, after the acknowledgement.
    let told = response_containing(&app, "America/New_York", SETUP_LIMIT).await;
    assert!(
        told.starts_with(&format!("Impact started {clock} America/New_York = ")),
        "{told}"
    );
    app.wait_for_effects(&id, SETUP_LIMIT).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    let off = (inc.timeline.started_at - then).num_seconds().abs();
    assert!(off <= 60, "started {} vs {then}", inc.timeline.started_at);
    // The correction is on the record like any other: a timeline line in the channel, the card updated.
    let room = only_incident_channel(&app);
    assert!(
        room.messages
            .iter()
            .any(|m| m.text.starts_with("✏️ <@U0DECLARER> corrected *started*")),
        "{:?}",
        room.messages.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    assert_eq!(app.slack.count("users.info"), 1);

    // Known now (remembered for 12 h): the next declaration reads its clock time at once.
    let (clock, then) = half_an_hour_ago_in_new_york();
    let (_, reply) = app
        .slash(&format!("start Search slow started:{clock}"))
        .await
        .unwrap();
    let ack = reply["text"].as_str().unwrap();
    assert!(
        ack.contains(&format!("Impact started {clock} America/New_York = ")),
        "{ack}"
    );
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert!((inc.timeline.started_at - then).num_seconds().abs() <= 60);
    assert_eq!(app.slack.count("users.info"), 1, "asked once");
}

#[tokio::test]
async fn a_clock_time_in_started_stays_in_the_default_zone_when_slack_cannot_say_and_the_declarer_is_told(
) {
    let app = spawn_app().await;
    app.slack
        .fail_next("users.info", Fault::Error("user_not_found".into()));
    let (status, reply) = app
        .slash("start Checkout errors started:00:00")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let told = response_containing(&app, "Slack did not say your time zone", SETUP_LIMIT).await;
    assert!(told.contains("00:00 UTC = "), "{told}");
    assert!(told.contains("/incident set started"), "{told}");
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        inc.timeline.started_at.format("%H:%M").to_string(),
        "00:00",
        "read in UTC, the default"
    );
}
