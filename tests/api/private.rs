//! Private incidents (SPEC §12): `private:yes` or the declare form's checkbox → a private channel; the broadcast
//! channel learns only "🔒 A private incident was declared by @user" (or nothing, by config); pages carry the
//! number and link only; digests never name it. Every Slack and pager call the bot makes is read: none outside
//! the private channel carries the title or the channel's name.

use serde_json::{json, Value};

use crate::helpers::{declared_number, incident, spawn_app, spawn_app_with, TestApp, SETUP_LIMIT};

const TITLE: &str = "Acquisition of Zorblax leaked";
const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Every Slack call aimed elsewhere than the private channel, and every page, is free of the title and of the
/// channel's name (the `conversations.create` that made the channel is the one call that names it).
async fn assert_nothing_leaks(app: &TestApp, id: &str) {
    let inc = incident(app, id).await;
    let channel_id = inc.channel_id.clone().unwrap();
    let channel_name = inc.channel_name.clone().unwrap();
    let title_word = "Zorblax";
    let name_word = channel_name.clone();
    let calls = app.slack.calls();
    assert!(!calls.is_empty());
    for call in calls {
        if call.method == "conversations.create" {
            assert_eq!(call.params["is_private"], json!(true), "{:?}", call.params);
            continue;
        }
        // Its own channel (`channel_id` for a file upload, e.g. the postmortem draft) may name it.
        let target = call.params.get("channel").or(call.params.get("channel_id"));
        if target.and_then(Value::as_str) == Some(channel_id.as_str()) {
            continue;
        }
        let s = Value::Object(call.params.clone()).to_string();
        assert!(
            !s.contains(title_word)
                && !s.to_lowercase().contains("zorblax")
                && !s.contains(&name_word),
            "{} leaks the private incident: {s}",
            call.method
        );
    }
    let pages = app.pager.requests();
    for p in &pages {
        let s = p.body.to_string();
        assert!(
            !s.to_lowercase().contains("zorblax") && !s.contains(&name_word),
            "page leaks: {s}"
        );
    }
    let _ = pages;
}

fn broadcast_texts(app: &TestApp) -> Vec<String> {
    app.slack
        .channel_by_name(&app.state.settings.slack.broadcast_channel)
        .map(|c| c.messages.iter().map(|m| m.text.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_private_incident_keeps_its_title_and_channel_out_of_every_other_channel_and_page() {
    let app = spawn_app().await;
    let (status, reply) = app
        .slash(&format!(
            "start {TITLE} sev:P1 service:payments private:yes"
        ))
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    let inc = incident(&app, &id).await;
    assert!(inc.private);
    let ch = app
        .slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap();
    assert!(ch.is_private, "the war room is a private channel");
    assert!(
        app.pager
            .requests()
            .iter()
            .any(|p| p.body.to_string().contains("INC-1")),
        "the P1 pages, by number: {:?}",
        app.pager.requests()
    );

    // What the incident does next: a severity change (announcement update), a status update (no thread reply
    // in the broadcast channel), a digest in #general, the resolution (no summary in the broadcast channel).
    let chan = inc.channel_id.clone().unwrap();
    for text in ["sev P2", "ack"] {
        let (s, _) = app.slash_as("U0DECLARER", &chan, text).await.unwrap();
        assert_eq!(s, 200);
        app.wait_for_effects(&id, LIMIT).await.unwrap();
    }
    let payload = json!({
        "type": "view_submission", "team": { "id": "T0001" }, "user": { "id": "U0DECLARER", "team_id": "T0001" },
        "view": { "callback_id": "incident_update", "private_metadata": id, "state": { "values": {
            "status": { "value": { "type": "static_select", "selected_option": { "value": "identified" } } },
            "impact": { "value": { "type": "plain_text_input", "value": "Zorblax deal terms visible" } },
            "next": { "value": { "type": "number_input", "value": "30" } }
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
    assert_eq!(resp.status().as_u16(), 200);
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    let (s, _) = app.slash("digest").await.unwrap();
    assert_eq!(s, 200);
    // The digest counts it (open at the end of the period) without naming it.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let digest = loop {
        let found = app
            .slack
            .calls_to("chat.postMessage")
            .into_iter()
            .map(|c| Value::Object(c.params).to_string())
            .find(|p| p.contains("Incidents:"));
        if let Some(d) = found {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no digest posted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(digest.contains("open at the end 1"), "{digest}");
    assert!(digest.contains("🔒 private incident"), "{digest}");
    // Asked elsewhere, the open incidents name it by number only (ephemeral replies, not Slack calls).
    let (_, listed) = app.slash("list").await.unwrap();
    let listed = listed.to_string();
    assert!(listed.contains("🔒 *INC-1* private incident"), "{listed}");
    assert!(
        !listed.contains("Zorblax") && !listed.contains(&chan),
        "{listed}"
    );
    let (_, elsewhere) = app.slash("sev P3").await.unwrap();
    let elsewhere = elsewhere.to_string();
    assert!(
        !elsewhere.contains("Zorblax") && !elsewhere.contains(&chan),
        "{elsewhere}"
    );
    let (s, _) = app.slash_as("U0DECLARER", &chan, "resolved").await.unwrap();
    assert_eq!(s, 200);
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    assert_eq!(
        broadcast_texts(&app),
        ["🔒 A private incident was declared by <@U0DECLARER>"],
        "the broadcast channel learns that, and only that"
    );
    // The update did go to the private channel.
    let inside = app
        .slack
        .channel_by_name(&chan)
        .unwrap()
        .messages
        .iter()
        .any(|m| m.text.contains("Zorblax deal terms visible"));
    assert!(inside);
    assert_nothing_leaks(&app, &id).await;
}

#[tokio::test]
async fn with_private_announce_off_the_broadcast_channel_learns_nothing() {
    let app = spawn_app_with(|s| s.incidents.private_announce = false).await;
    let (_, reply) = app
        .slash(&format!(
            "start {TITLE} sev:P2 service:payments private:yes"
        ))
        .await
        .unwrap();
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(
        broadcast_texts(&app).is_empty(),
        "{:?}",
        broadcast_texts(&app)
    );
    assert_nothing_leaks(&app, &id).await;
}

#[tokio::test]
async fn the_declare_form_checkbox_makes_it_private_and_a_public_one_stays_public() {
    let app = spawn_app().await;
    let payload = json!({
        "type": "view_submission", "team": { "id": "T0001" }, "user": { "id": "U0MODAL", "team_id": "T0001" },
        "view": { "callback_id": "incident_start", "private_metadata": "CGENERAL", "state": { "values": {
            "title": { "value": { "type": "plain_text_input", "value": TITLE } },
            "private": { "value": { "type": "checkboxes", "selected_options": [{ "value": "yes" }] } }
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
    assert_eq!(resp.status().as_u16(), 200);
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(incident(&app, &id).await.private);
    assert_eq!(
        broadcast_texts(&app),
        ["🔒 A private incident was declared by <@U0MODAL>"]
    );
    assert_nothing_leaks(&app, &id).await;

    let (_, reply) = app.slash("start Public thing private:no").await.unwrap();
    let id2 = app.incident_id(declared_number(&reply)).await.unwrap();
    app.wait_for_setup(&id2, SETUP_LIMIT).await.unwrap();
    let inc2 = incident(&app, &id2).await;
    assert!(!inc2.private);
    assert!(
        !app.slack
            .channel_by_name(inc2.channel_id.as_deref().unwrap())
            .unwrap()
            .is_private
    );
}
