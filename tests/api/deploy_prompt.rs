//! Deploy prompts (SPEC 13): a production deploy of the incident's service or a dependency, arriving while the
//! incident is in triage or remediation, asks once in the incident channel "payments v2.14.1 deployed at 14:32 by
//! alice — was this the fix?"; one click records `Fix deployed` at the deploy's time, with the card, the timeline
//! line and the figures following. Deploys come through the real deploy API (and a GitHub webhook); the manual
//! clock drives the timer worker that matches them.

use std::time::Duration;

use incident_bot::clock::Clock;
use incident_bot::standins::harness::Harness;
use incident_bot::standins::slack::Message;
use serde_json::{json, Value};

use crate::helpers::{
    click_button, declare_done as declare, eventually, first_block_id, incident, lines, text_of,
    World,
};

const LIMIT: Duration = Duration::from_secs(20);

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

async fn bot(w: &World) -> Harness {
    w.bot_with(|s| {
        s.incidents.ic_reminder_minutes = 10_000;
        s.incidents.unresolved_escalation_minutes = 10_000;
    })
    .await
}

async fn deploy(bot: &Harness, body: Value) -> u16 {
    bot.http
        .post(format!("{}/api/v1/deploys", bot.base_url))
        .bearer_auth("harness-deploy-token")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The prompts posted in the incident channel.
async fn prompts(bot: &Harness, id: &str) -> Vec<Message> {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:deploy_prompt:"))
        .cloned()
        .collect()
}

/// The prompt's button value.
fn button_value(m: &Message) -> String {
    m.blocks.as_ref().unwrap()[1]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn slash_in(bot: &Harness, id: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as("U0RESP", &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

/// Lets several timer ticks (200 ms) pass and what they queued run.
async fn a_few_ticks(bot: &Harness, id: &str) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    bot.wait_for_effects(id, LIMIT).await.unwrap();
}

/// The first ephemeral answer (to a response URL) containing `needle`, after the first `skip` answers.
async fn said_to(bot: &Harness, skip: usize, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let found = bot
            .slack
            .responses()
            .iter()
            .skip(skip)
            .filter_map(|(_, v)| v["text"].as_str().map(str::to_string))
            .find(|t| t.contains(needle));
        if let Some(t) = found {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody was told {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_production_deploy_during_triage_asks_once_and_one_click_records_the_fix_at_its_time() {
    let w = World::new().await;
    let bot = bot(&w).await;
    let id = declare(&bot, "start Card payments failing sev:P1 service:payments").await;
    let t0 = w.clock.now();
    w.clock.advance(minutes(2));
    slash_in(&bot, &id, "ack").await;
    w.clock.advance(minutes(10));

    let body = json!({ "id": "ci-1", "service": "payments", "version": "v2.14.1", "author": "alice <@U0ALL>",
        "deployed_at": (t0 + minutes(9)).to_rfc3339() });
    assert_eq!(deploy(&bot, body.clone()).await, 201);
    // Posts nothing: the same deploy again, a staging deploy, a deploy to an unrelated service.
    assert_eq!(deploy(&bot, body).await, 200);
    let staging = json!({ "id": "ci-2", "service": "payments", "version": "v2.14.2", "environment": "staging",
        "deployed_at": (t0 + minutes(10)).to_rfc3339() });
    assert_eq!(deploy(&bot, staging).await, 201);
    let unrelated = json!({ "id": "ci-3", "service": "search", "version": "v7",
        "deployed_at": (t0 + minutes(10)).to_rfc3339() });
    assert_eq!(deploy(&bot, unrelated).await, 201);

    eventually("the prompt", || async {
        prompts(&bot, &id).await.len() == 1
    })
    .await;
    a_few_ticks(&bot, &id).await;
    let all = prompts(&bot, &id).await;
    assert_eq!(all.len(), 1, "one prompt, for ci-1 only");
    let text = text_of(&all[0]);
    assert!(
        text.starts_with(
            "🚀 *payments* v2.14.1 deployed at 09:09 by alice &lt;@U0ALL&gt; — was this the fix?"
        ),
        "{text}"
    );
    assert!(text.contains("[Fix deployed at 09:09]"), "{text}");

    // Two clicks at once: the fix is recorded once, at the deploy's time (not the click's).
    let value = button_value(&all[0]);
    let (a, b) = tokio::join!(
        click_button(&bot, "U0ALICE", &id, "deploy_prompt_fixed", &value),
        click_button(&bot, "U0BOB", &id, "deploy_prompt_fixed", &value)
    );
    assert_eq!((a, b), (200, 200));
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let inc = incident(&bot, &id).await;
    let fixed = inc.timeline.fixed.clone().expect("fix recorded");
    assert_eq!(fixed.at, t0 + minutes(9));
    assert_eq!(
        incident_bot::store::incidents::count_events(&bot.state.db, &id, "fixed")
            .await
            .unwrap(),
        1
    );
    let l = lines(&bot, &id).await;
    assert!(
        l.iter()
            .any(|l| l.contains("deployed the fix at <!date^1795597740^{time}|09:09 UTC> — triage took 7m · remediation skipped")),
        "{l:?}"
    );
    let status = slash_in(&bot, &id, "status").await;
    assert!(status.contains("Fix deployed"), "{status}");

    // A later click changes nothing and says why (the click that lost the race above may have been told too).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = bot.slack.responses().len();
    assert_eq!(
        click_button(&bot, "U0CAROL", &id, "deploy_prompt_fixed", &value).await,
        200
    );
    let said = said_to(&bot, before, "Nothing changed").await;
    assert!(
        said.contains("has moved on (it is at *Fix deployed*)"),
        "{said}"
    );
    let inc = incident(&bot, &id).await;
    assert_eq!(inc.timeline.fixed.unwrap().at, t0 + minutes(9));
}

#[tokio::test]
async fn a_dependency_deploy_during_remediation_asks_but_not_in_detection_nor_verification() {
    let w = World::new().await;
    let bot = bot(&w).await;
    let id = declare(&bot, "start Payments slow sev:P2 service:payments").await;
    let t0 = w.clock.now();

    // Detection: a deploy of payments asks nothing.
    w.clock.advance(minutes(1));
    let during_detection = json!({ "id": "d-1", "service": "payments", "version": "v1",
        "deployed_at": w.clock.now().to_rfc3339() });
    assert_eq!(deploy(&bot, during_detection).await, 201);
    a_few_ticks(&bot, &id).await;
    assert!(prompts(&bot, &id).await.is_empty(), "detection");

    w.clock.advance(minutes(1));
    slash_in(&bot, &id, "ack").await;
    w.clock.advance(minutes(1));
    slash_in(&bot, &id, "identified").await;
    // Remediation: auth is a dependency of payments; Argo CD's app name maps to it through the catalog too.
    w.clock.advance(minutes(5));
    let dependency = json!({ "id": "d-2", "service": "auth", "version": "v3.0.1",
        "deployed_at": (t0 + minutes(7)).to_rfc3339() });
    assert_eq!(deploy(&bot, dependency).await, 201);
    eventually("the dependency's prompt", || async {
        prompts(&bot, &id).await.len() == 1
    })
    .await;
    assert!(
        text_of(&prompts(&bot, &id).await[0]).starts_with("🚀 *auth* v3.0.1 deployed at 09:07 —"),
        "no author: no `by`"
    );

    // Fixed by hand: verification now; a deploy asks nothing, and the old prompt's button changes nothing.
    slash_in(&bot, &id, "fixed").await;
    let fixed_at = incident(&bot, &id).await.timeline.fixed.unwrap().at;
    w.clock.advance(minutes(1));
    let during_verification = json!({ "id": "d-3", "service": "payments", "version": "v2",
        "deployed_at": w.clock.now().to_rfc3339() });
    assert_eq!(deploy(&bot, during_verification).await, 201);
    a_few_ticks(&bot, &id).await;
    assert_eq!(prompts(&bot, &id).await.len(), 1, "verification");
    let value = button_value(&prompts(&bot, &id).await[0]);
    assert_eq!(
        click_button(&bot, "U0ALICE", &id, "deploy_prompt_fixed", &value).await,
        200
    );
    a_few_ticks(&bot, &id).await;
    assert_eq!(
        incident(&bot, &id).await.timeline.fixed.unwrap().at,
        fixed_at
    );
}
