//! Follow-ups (SPEC §13): `/incident followup <text> [@owner] [due:YYYY-MM-DD]` is one timeline line posted with
//! a "Done" button; "Done" and `/incident followup done <id>` complete it once; `/incident followups` lists the
//! open ones; the MTTR summary's "Add follow-up" opens a form; the owner is reminded on the due day once across
//! two bots on one database; a replayed command has one effect.

use std::time::Duration;

use incident_bot::standins::harness::{slash_body, trigger_id, Harness, TEAM_ID};
use incident_bot::standins::slack::{blocks_to_text, Message, GENERAL_CHANNEL_ID};
use serde_json::{json, Value};

use crate::helpers::{declare_done as declare, eventually, incident, World};

const LIMIT: Duration = Duration::from_secs(20);

async fn slash_in(bot: &Harness, id: &str, user: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

async fn messages(bot: &Harness, id: &str) -> Vec<Message> {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
}

fn text_of(m: &Message) -> String {
    m.blocks
        .as_ref()
        .map(blocks_to_text)
        .unwrap_or_else(|| m.text.clone())
}

async fn count_events(bot: &Harness, id: &str, kind: &str) -> i64 {
    incident_bot::store::incidents::count_events(&bot.state.db, id, kind)
        .await
        .unwrap()
}

async fn followups_of(bot: &Harness, id: &str) -> Vec<incident_bot::domain::followup::Followup> {
    incident_bot::store::followups::of_incident(&bot.state.db, id)
        .await
        .unwrap()
}

async fn interact(bot: &Harness, payload: Value) -> Value {
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let resp = bot
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null)
}

/// A click on button `action_id` with `value` in the incident channel, by `user`.
fn click(bot: &Harness, channel: &str, user: &str, action_id: &str, value: &str) -> Value {
    json!({
        "type": "block_actions",
        "team": { "id": TEAM_ID, "domain": "acme" },
        "user": { "id": user, "username": user.to_lowercase(), "team_id": TEAM_ID },
        "trigger_id": trigger_id(),
        "container": { "type": "message", "message_ts": "1.2", "channel_id": channel },
        "channel": { "id": channel },
        "response_url": bot.slack.response_url(),
        "actions": [{ "action_id": action_id, "value": value, "type": "button", "action_ts": "1.3" }],
    })
}

#[tokio::test]
async fn a_followup_is_one_line_with_a_done_button_and_is_completed_once() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Card payments failing sev:P1 service:payments").await;
    let channel = incident(&bot, &id).await.channel_id.unwrap();

    // The same signed command sent twice (Slack retrying) stores one follow-up.
    let body = slash_body(
        "U0ALICE",
        &channel,
        "followup Add an alert on <!channel> declines <@U0BOB|bob> due:2026-11-30",
        &bot.slack.response_url(),
    );
    for _ in 0..2 {
        let resp = bot
            .post_signed(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let list = followups_of(&bot, &id).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].owner.as_deref(), Some("U0BOB"));
    assert_eq!(list[0].due_on.unwrap().to_string(), "2026-11-30");
    assert_eq!(count_events(&bot, &id, "followup").await, 1);
    let posted: Vec<Message> = messages(&bot, &id)
        .await
        .into_iter()
        .filter(|m| text_of(m).contains("Follow-up added"))
        .collect();
    assert_eq!(posted.len(), 1);
    let text = text_of(&posted[0]);
    assert!(
        text.contains("owner <@U0BOB>") && text.contains("due 2026-11-30"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
    let blocks = posted[0].blocks.clone().unwrap().to_string();
    assert!(
        blocks.contains("\"action_id\":\"followup_done\""),
        "{blocks}"
    );

    // "Done" completes it once; the second click changes nothing.
    let list_id = list[0].id.to_string();
    let mut done_click = click(&bot, &channel, "U0BOB", "followup_done", &list_id);
    done_click["container"]["message_ts"] = json!(posted[0].ts);
    interact(&bot, done_click).await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    interact(
        &bot,
        click(&bot, &channel, "U0CAROL", "followup_done", &list_id),
    )
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let list = followups_of(&bot, &id).await;
    assert_eq!(list[0].done_by.as_deref(), Some("U0BOB"));
    // Its message now says so, without the button.
    eventually("the message shows it done", || async {
        messages(&bot, &id)
            .await
            .iter()
            .any(|m| m.ts == posted[0].ts && text_of(m).contains("✅ Done (by <@U0BOB>)"))
    })
    .await;
    let updated = messages(&bot, &id)
        .await
        .into_iter()
        .find(|m| m.ts == posted[0].ts)
        .unwrap();
    assert!(!updated
        .blocks
        .unwrap()
        .to_string()
        .contains("followup_done"));
    assert_eq!(count_events(&bot, &id, "followup_done").await, 1);
    let again = slash_in(&bot, &id, "U0ALICE", &format!("followup done {list_id}")).await;
    assert!(again.contains("already done"), "{again}");
    assert_eq!(count_events(&bot, &id, "followup_done").await, 1);
    let open = slash_in(&bot, &id, "U0ALICE", "followups").await;
    assert!(open.contains("no open follow-ups"), "{open}");
    // `/incident help` lists the new commands.
    let (_, help) = bot.slash("help").await.unwrap();
    let help = help["text"].as_str().unwrap().to_string();
    for c in [
        "`postmortem`",
        "`followup &lt;text&gt;",
        "`followups`",
        "followup done",
    ] {
        assert!(help.contains(c), "{c} in {help}");
    }
}

#[tokio::test]
async fn open_followups_are_listed_oldest_due_first_and_a_past_due_date_is_refused() {
    let w = World::new().await;
    let bot = w.bot().await;
    let a = declare(&bot, "start Search slow sev:P3 service:search").await;
    let b = declare(&bot, "start Checkout errors sev:P2 service:checkout").await;
    let secret = declare(&bot, "start Zorblax deal leaked sev:P2 private:yes").await;
    slash_in(
        &bot,
        &secret,
        "U0ALICE",
        "followup Tell legal about Zorblax",
    )
    .await;
    slash_in(&bot, &a, "U0ALICE", "followup No date here").await;
    slash_in(&bot, &a, "U0ALICE", "followup Later one due:2026-12-20").await;
    slash_in(&bot, &b, "U0ALICE", "followup Sooner one due:2026-12-01").await;
    let refused = slash_in(&bot, &b, "U0ALICE", "followup Too late due:2026-11-24").await;
    assert!(refused.contains("has passed"), "{refused}");
    assert_eq!(followups_of(&bot, &b).await.len(), 1);
    let done = slash_in(&bot, &b, "U0ALICE", "followup Finished due:2026-11-26").await;
    assert!(done.contains("#5"), "{done}");
    slash_in(&bot, &b, "U0ALICE", "followup done 5").await;

    let (_, reply) = bot
        .slash_as("U0ALICE", GENERAL_CHANNEL_ID, "followups")
        .await
        .unwrap();
    let text = reply["text"].as_str().unwrap();
    let sooner = text.find("Sooner one").expect(text);
    let later = text.find("Later one").expect(text);
    let none = text.find("No date here").expect(text);
    assert!(sooner < later && later < none, "{text}");
    assert!(!text.contains("Finished"), "{text}");
    assert!(
        !text.contains("Zorblax") && text.contains("private incident INC-3"),
        "{text}"
    );
    assert!(text.contains("INC-2") && text.contains("INC-1"), "{text}");
    // In an incident channel: that incident's only.
    let here = slash_in(&bot, &a, "U0ALICE", "followups").await;
    assert!(
        here.contains("Later one") && !here.contains("Sooner one"),
        "{here}"
    );
    // Assigning is one timeline line.
    slash_in(&bot, &a, "U0ALICE", "followup assign 2 <@U0DAVE|dave>").await;
    assert_eq!(
        followups_of(&bot, &a).await[0].owner.as_deref(),
        Some("U0DAVE")
    );
    assert_eq!(count_events(&bot, &a, "followup_assigned").await, 1);
}

#[tokio::test]
async fn the_summary_button_opens_a_form_whose_submission_adds_a_followup() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Login broken sev:P2 service:payments").await;
    let channel = incident(&bot, &id).await.channel_id.unwrap();
    for m in ["ack", "identified", "fixed", "resolved"] {
        slash_in(&bot, &id, "U0ALICE", m).await;
    }
    let summary = messages(&bot, &id)
        .await
        .into_iter()
        .find(|m| {
            m.blocks
                .as_ref()
                .is_some_and(|b| b.to_string().contains("resolved ·"))
        })
        .expect("the summary");
    let blocks = summary.blocks.unwrap().to_string();
    assert!(
        blocks.contains("\"action_id\":\"followup_add\""),
        "{blocks}"
    );

    interact(&bot, click(&bot, &channel, "U0ALICE", "followup_add", &id)).await;
    eventually("the form opens", || async {
        !bot.slack.views_opened().is_empty()
    })
    .await;
    let view = bot.slack.views_opened().remove(0);
    assert_eq!(view["callback_id"], "followup_form");
    assert_eq!(view["private_metadata"], id.as_str());

    let submission = |text: &str| {
        json!({
            "type": "view_submission",
            "team": { "id": TEAM_ID, "domain": "acme" },
            "user": { "id": "U0ALICE", "team_id": TEAM_ID },
            "view": { "callback_id": "followup_form", "private_metadata": id, "state": { "values": {
                "text": { "value": { "type": "plain_text_input", "value": text } },
                "owner": { "value": { "type": "users_select", "selected_user": "U0BOB" } },
                "due": { "value": { "type": "datepicker", "selected_date": "2026-12-02" } }
            } } }
        })
    };
    let empty = interact(&bot, submission("  ")).await;
    assert_eq!(empty["response_action"], "errors", "{empty}");
    interact(&bot, submission("Write the runbook for card declines")).await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let list = followups_of(&bot, &id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].text, "Write the runbook for card declines");
    assert_eq!(list[0].owner.as_deref(), Some("U0BOB"));
    assert_eq!(list[0].due_on.unwrap().to_string(), "2026-12-02");
    assert_eq!(count_events(&bot, &id, "followup").await, 1);
}

#[tokio::test]
async fn the_owner_is_reminded_on_the_due_day_once_across_two_bots() {
    let w = World::new().await;
    let a = w.bot().await;
    let b = w.bot().await;
    let id = declare(&a, "start Payments failing sev:P2 service:payments").await;
    // The clock reads 2026-11-25 09:00 UTC; the configured zone is UTC: reminders at 09:00 on the due day.
    slash_in(
        &a,
        &id,
        "U0ALICE",
        "followup Add retries <@U0BOB|bob> due:2026-11-26",
    )
    .await;
    slash_in(
        &a,
        &id,
        "U0ALICE",
        "followup Done before due <@U0BOB|bob> due:2026-11-26",
    )
    .await;
    slash_in(&a, &id, "U0ALICE", "followup done 2").await;

    w.clock
        .advance(chrono::Duration::hours(23) + chrono::Duration::minutes(59));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        count_events(&a, &id, "followup_reminder").await,
        0,
        "not before 09:00"
    );

    w.clock.advance(chrono::Duration::minutes(2));
    eventually("the reminder", || async {
        count_events(&a, &id, "followup_reminder").await == 1
    })
    .await;
    w.clock.advance(chrono::Duration::hours(3));
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    b.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(
        count_events(&a, &id, "followup_reminder").await,
        1,
        "once, for the open one"
    );
    let reminders: Vec<String> = messages(&a, &id)
        .await
        .iter()
        .map(text_of)
        .filter(|t| t.contains("follow-up"))
        .collect();
    assert_eq!(
        reminders,
        ["⏰ <@U0BOB>: follow-up *#1* of INC-1 is due today — Add retries. Mark it done with `/incident followup done 1`."]
    );
}

#[tokio::test]
async fn the_digest_and_the_report_show_completion_per_team() {
    let w = World::new().await;
    let bot = w.bot().await;
    let paying = declare(&bot, "start Card payments failing sev:P1 service:payments").await;
    let nameless = declare(&bot, "start Something odd sev:P3").await;
    slash_in(&bot, &paying, "U0ALICE", "followup Add an alert").await;
    slash_in(&bot, &paying, "U0ALICE", "followup Write a runbook").await;
    slash_in(&bot, &nameless, "U0ALICE", "followup Find an owner").await;
    slash_in(&bot, &paying, "U0ALICE", "followup done 1").await;
    w.clock.advance(chrono::Duration::minutes(1));

    let (status, _) = bot.slash("digest").await.unwrap();
    assert_eq!(status, 200);
    eventually("the digest", || async {
        bot.slack
            .render_channel("general")
            .contains("Follow-ups done")
    })
    .await;
    let digest = bot.slack.render_channel("general");
    assert!(digest.contains("payments: 1/2 done (50%)"), "{digest}");
    assert!(digest.contains("no team: 0/1 done (0%)"), "{digest}");

    let report = |format: &str| {
        let args = incident_bot::digest::report::ReportArgs {
            format: Some(format.into()),
            ..Default::default()
        };
        let settings = bot.state.settings.clone();
        let catalog = bot.state.catalog.clone();
        let now = incident_bot::clock::Clock::now(&*w.clock);
        async move {
            incident_bot::digest::report::run_cli(&settings, &catalog, &args, now)
                .await
                .unwrap()
        }
    };
    let text = report("text").await;
    assert!(text.contains("payments: 1/2 done (50%)"), "{text}");
    let json: Value = serde_json::from_str(&report("json").await).unwrap();
    assert_eq!(
        json["followups"],
        json!([
            { "team": "payments", "done": 1, "total": 2 },
            { "team": "no team", "done": 0, "total": 1 }
        ])
    );
    let csv = report("csv").await;
    assert!(
        csv.contains("current,followups_done,payments,1,followups"),
        "{csv}"
    );
    assert!(
        csv.contains("current,followups_total,no team,1,followups"),
        "{csv}"
    );
}
