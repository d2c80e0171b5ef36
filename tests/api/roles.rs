//! Roles (SPEC §12): `/incident role ic|comms @user`, the card's "Take command" button, handoffs, the holders on
//! the card, one timeline line per change, and the one reminder for a P1 without a commander (a durable timer,
//! driven by a manual clock, fired once with two bots on one database). Everything goes through the real HTTP
//! server with signed Slack requests; Slack is the stand-in.

use std::sync::Arc;
use std::time::Duration;

use incident_bot::standins::harness::Harness;
use incident_bot::standins::slack::Message;

use crate::helpers::{declare_done as declare, eventually, incident, lines, text_of, World};

const LIMIT: Duration = Duration::from_secs(20);
const REMINDER: &str = "has had no incident commander";

/// The pinned card's text.
async fn card(bot: &Harness, id: &str) -> String {
    let inc = incident(bot, id).await;
    let ch = bot
        .slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap();
    let pinned: Vec<&Message> = ch
        .messages
        .iter()
        .filter(|m| ch.pins.contains(&m.ts))
        .collect();
    assert_eq!(pinned.len(), 1, "one pinned card");
    text_of(pinned[0])
}

/// `/incident <text>` typed by `user` in the incident's channel; the ephemeral reply, after every effect ran.
async fn slash_in(bot: &Harness, id: &str, user: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

async fn take_command(bot: &Harness, user: &str, id: &str) {
    assert_eq!(bot.click(user, "role_take_ic", id).await.unwrap(), 200);
    bot.wait_for_effects(id, LIMIT).await.unwrap();
}

async fn count_events(bot: &Harness, id: &str, kind: &str) -> i64 {
    incident_bot::store::incidents::count_events(&bot.state.db, id, kind)
        .await
        .unwrap()
}

/// Lets several timer ticks pass.
async fn a_few_ticks() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn role_by_command_shows_on_the_card_and_posts_one_line() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Payments failing sev:P2 service:payments").await;
    let before = card(&bot, &id).await;
    assert!(
        before.contains("*Commander* _nobody yet — click *Take command*_"),
        "{before}"
    );
    assert!(before.contains("*Comms lead* _nobody yet_"), "{before}");
    assert!(before.contains("[Take command]"), "{before}");

    // With `should_escape: true` Slack sends a picked user as `<@U…|name>`.
    let reply = slash_in(&bot, &id, "U0DECLARER", "role ic <@U0ALICE|alice>").await;
    assert!(
        reply.contains("IC: <@U0ALICE> (set by <@U0DECLARER>)"),
        "{reply}"
    );
    let reply = slash_in(&bot, &id, "U0CAROL", "role comms me").await;
    assert!(
        reply.contains("Comms lead: <@U0CAROL> (took the role)"),
        "{reply}"
    );

    let c = card(&bot, &id).await;
    assert!(c.contains("*Commander* <@U0ALICE>"), "{c}");
    assert!(c.contains("*Comms lead* <@U0CAROL>"), "{c}");
    assert_eq!(
        lines(&bot, &id).await,
        [
            "🎖️ IC: <@U0ALICE> (set by <@U0DECLARER>)",
            "📣 Comms lead: <@U0CAROL> (took the role)"
        ]
    );
    let status = slash_in(&bot, &id, "U0DECLARER", "status").await;
    assert!(
        status.contains("*IC:* <@U0ALICE> · *Comms lead:* <@U0CAROL>"),
        "{status}"
    );
    let inc = incident(&bot, &id).await;
    assert_eq!(inc.roles.ic.as_deref(), Some("U0ALICE"));
    assert_eq!(inc.roles.comms.as_deref(), Some("U0CAROL"));

    // The same holder again changes nothing; bad input gets the usage, never a mention of what was typed.
    let reply = slash_in(&bot, &id, "U0DECLARER", "role ic <@U0ALICE|alice>").await;
    assert!(reply.contains("already holds that role"), "{reply}");
    let reply = slash_in(&bot, &id, "U0DECLARER", "role ic <!channel>").await;
    assert!(
        reply.contains("&lt;!channel&gt;` is not a Slack user"),
        "{reply}"
    );
    assert!(!reply.contains("<!channel>"), "{reply}");
    let reply = slash_in(&bot, &id, "U0DECLARER", "role ic @alice").await;
    assert!(reply.contains("is not a Slack user"), "{reply}");
    assert_eq!(lines(&bot, &id).await.len(), 2);
    assert_eq!(count_events(&bot, &id, "role_ic").await, 1);
}

#[tokio::test]
async fn role_outside_an_incident_channel_points_to_the_incident_channels() {
    let w = World::new().await;
    let bot = w.bot().await;
    declare(&bot, "start Search slow sev:P3 service:search").await;
    let (status, reply) = bot.slash("role ic me").await.unwrap();
    assert_eq!(status, 200);
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("`/incident role` works in an incident's own channel"),
        "{text}"
    );
}

#[tokio::test]
async fn take_command_button_sets_the_clicker_and_a_second_taker_is_a_handoff() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Checkout errors sev:P2 service:checkout").await;

    take_command(&bot, "U0ALICE", &id).await;
    assert!(card(&bot, &id).await.contains("*Commander* <@U0ALICE>"));
    take_command(&bot, "U0BOB", &id).await;
    let c = card(&bot, &id).await;
    assert!(c.contains("*Commander* <@U0BOB>"), "{c}");
    // Handing off by command names both.
    let reply = slash_in(&bot, &id, "U0BOB", "role ic <@U0CAROL|carol>").await;
    assert!(reply.contains("IC: <@U0BOB> → <@U0CAROL>"), "{reply}");

    assert_eq!(
        lines(&bot, &id).await,
        [
            "🎖️ IC: <@U0ALICE> (took command)",
            "🎖️ IC: <@U0ALICE> → <@U0BOB> (took command)",
            "🎖️ IC: <@U0BOB> → <@U0CAROL> (set by <@U0BOB>)",
        ]
    );
    assert!(card(&bot, &id).await.contains("*Commander* <@U0CAROL>"));
}

#[tokio::test]
async fn twenty_simultaneous_take_command_clicks_record_one_change() {
    let w = World::new().await;
    let bot = Arc::new(w.bot().await);
    let id = declare(&bot, "start Login broken sev:P2 service:payments").await;
    let mut clicks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let bot = bot.clone();
        let id = id.clone();
        clicks.spawn(async move { bot.click("U0ALICE", "role_take_ic", &id).await.unwrap() });
    }
    while let Some(status) = clicks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(count_events(&bot, &id, "role_ic").await, 1);
    assert_eq!(lines(&bot, &id).await, ["🎖️ IC: <@U0ALICE> (took command)"]);
    assert_eq!(incident(&bot, &id).await.version, 1, "one version bump");
}

#[tokio::test]
async fn a_p1_without_a_commander_gets_one_reminder_after_five_minutes_across_two_bots() {
    let w = World::new().await;
    let a = w.bot().await;
    let b = w.bot().await;
    let id = declare(&a, "start Payments down sev:P1 service:payments").await;

    w.clock
        .advance(chrono::Duration::minutes(4) + chrono::Duration::seconds(59));
    a_few_ticks().await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    let reminders = |l: Vec<String>| {
        l.into_iter()
            .filter(|l| l.contains(REMINDER))
            .collect::<Vec<_>>()
    };
    assert!(reminders(lines(&a, &id).await).is_empty(), "not yet");

    w.clock.advance(chrono::Duration::seconds(2));
    eventually("the reminder", || async {
        count_events(&a, &id, "ic_reminder").await == 1
    })
    .await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    b.wait_for_effects(&id, LIMIT).await.unwrap();
    // Later ticks, on either bot, never remind again.
    w.clock.advance(chrono::Duration::minutes(10));
    a_few_ticks().await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    let got = reminders(lines(&a, &id).await);
    assert_eq!(
        got,
        ["🧭 INC-1 (P1) has had no incident commander for 5 minutes — click *Take command* on the card, or `/incident role ic @someone`."],
    );
    assert_eq!(count_events(&a, &id, "ic_reminder").await, 1);
}

#[tokio::test]
async fn no_reminder_when_a_commander_was_set_in_time_nor_for_a_p2() {
    let w = World::new().await;
    let bot = w.bot().await;
    let p1 = declare(&bot, "start Payments down sev:P1 service:payments").await;
    let p2 = declare(&bot, "start Search slow sev:P2 service:search").await;
    w.clock.advance(chrono::Duration::minutes(3));
    take_command(&bot, "U0ALICE", &p1).await;

    w.clock.advance(chrono::Duration::minutes(10));
    eventually("the reminder timer fires", || async {
        let outcome: Option<String> =
            sqlx::query_scalar("SELECT outcome FROM timers WHERE id = $1 AND fired = 1")
                .bind(format!("ic_reminder:{p1}"))
                .fetch_optional(&bot.state.db.pool)
                .await
                .unwrap()
                .flatten();
        outcome.as_deref() == Some("not needed: a commander was set")
    })
    .await;
    a_few_ticks().await;
    bot.wait_for_effects(&p1, LIMIT).await.unwrap();
    bot.wait_for_effects(&p2, LIMIT).await.unwrap();
    for id in [&p1, &p2] {
        assert_eq!(count_events(&bot, id, "ic_reminder").await, 0);
        let l = lines(&bot, id).await;
        assert!(l.iter().all(|l| !l.contains(REMINDER)), "{l:?}");
    }
    let p2_timers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timers WHERE incident_id = $1 AND kind = 'ic_reminder'",
    )
    .bind(&p2)
    .fetch_one(&bot.state.db.pool)
    .await
    .unwrap();
    assert_eq!(p2_timers, 0, "a P2 gets no reminder timer");
}

#[tokio::test]
async fn a_person_picked_in_a_title_reads_as_their_name_and_pings_nobody() {
    let w = World::new().await;
    let bot = w.bot().await;
    // With `should_escape: true`, Slack sends a picked person as `<@U…|name>` and typed `<` as `&lt;`.
    let id = declare(
        &bot,
        "start DB down, ask <@U0ALICE|alice> &lt;@U0EVIL&gt; sev:P3 service:search",
    )
    .await;
    let inc = incident(&bot, &id).await;
    assert_eq!(inc.title, "DB down, ask @alice <@U0EVIL>");
    let c = card(&bot, &id).await;
    assert!(c.contains("DB down, ask @alice &lt;@U0EVIL&gt;"), "{c}");
    assert!(!c.contains("<@U0EVIL>") && !c.contains("<@U0ALICE"), "{c}");
}
