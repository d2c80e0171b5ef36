//! Deploy events in (SPEC §4): the deploy API, the GitHub / GitLab / Argo CD webhooks (with the fixture
//! payloads as published), `incident-bot deploy record`, and `/incident deploys`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{spawn_app, TestApp, SETUP_LIMIT};
use incident_bot::standins::slack::blocks_to_text;

const TOKEN: &str = "harness-deploy-token";
const GITHUB_SECRET: &str = "harness-github-secret";
const GITLAB_TOKEN: &str = "harness-gitlab-token";
const ARGOCD_TOKEN: &str = "harness-argocd-token";

const GITHUB_DEPLOYMENT_STATUS: &str = include_str!("../fixtures/github_deployment_status.json");
const GITHUB_PING: &str = include_str!("../fixtures/github_ping.json");
const GITLAB_DEPLOYMENT: &str = include_str!("../fixtures/gitlab_deployment.json");

async fn post_deploys(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/api/v1/deploys", app.base_url))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_deploys(app: &TestApp, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = app
        .http
        .get(format!("{}/api/v1/deploys?{query}", app.base_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deploys")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

fn ago(app: &TestApp, minutes: i64) -> DateTime<Utc> {
    app.state.clock.now() - chrono::Duration::minutes(minutes)
}

fn hub_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn github(app: &TestApp, event: &str, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/webhooks/github", app.base_url))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_single_event_is_stored_with_its_defaults_under_the_catalog_name() {
    let app = spawn_app().await;
    let (status, body) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "service": "payments-api", "version": "v2.14.0", "author": "alice" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stored"], 1);
    assert_eq!(body["duplicates"], 0);

    let (status, list) = get_deploys(&app, Some(TOKEN), "service=payments").await;
    assert_eq!(status, 200, "{list}");
    let deploys = list["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1, "{list}");
    let d = &deploys[0];
    assert_eq!(
        d["service"], "payments",
        "the alias maps to the catalog name"
    );
    assert_eq!(d["environment"], "production");
    assert_eq!(d["source"], "api");
    assert_eq!(d["version"], "v2.14.0");
    assert_eq!(d["id"], body["ids"][0]);
    let at: DateTime<Utc> = d["deployed_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (app.state.clock.now() - at).num_seconds().abs() < 60,
        "deployed_at defaults to now"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_and_stores_nothing() {
    let app = spawn_app().await;
    let event = json!({ "service": "payments" });
    assert_eq!(post_deploys(&app, None, event.clone()).await.0, 401);
    assert_eq!(
        post_deploys(&app, Some("harness-deploy-tokem"), event.clone())
            .await
            .0,
        401
    );
    assert_eq!(post_deploys(&app, Some(""), event).await.0, 401);
    assert_eq!(get_deploys(&app, None, "service=payments").await.0, 401);
    assert_eq!(
        get_deploys(&app, Some("nope"), "service=payments").await.0,
        401
    );
    let resp = app
        .http
        .post(format!("{}/api/v1/deploys", app.base_url))
        .header("authorization", format!("Basic {TOKEN}"))
        .json(&json!({ "service": "payments" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "only the Bearer scheme is accepted"
    );
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn bad_input_gets_400_with_a_json_error_naming_the_field() {
    let app = spawn_app().await;
    for (event, field) in [
        (json!({ "version": "v1" }), "service"),
        (json!({ "service": "" }), "service"),
        (
            json!({ "service": "payments", "deployed_at": "25/11/2026 14:00" }),
            "deployed_at",
        ),
        (
            json!({ "service": "payments", "environment": "prod env" }),
            "environment",
        ),
        (
            json!({ "service": "payments", "commit_sha": "xyz" }),
            "commit_sha",
        ),
        (
            json!({ "service": "payments", "url": "javascript:alert(1)" }),
            "url",
        ),
        (
            json!({ "service": "payments", "deployedAt": "2026-11-25T14:00:00Z" }),
            "deployedAt",
        ),
        (json!({ "service": ["payments"] }), "service"),
        (json!({ "deploys": "payments" }), "deploys"),
    ] {
        let (status, body) = post_deploys(&app, Some(TOKEN), event.clone()).await;
        assert_eq!(status, 400, "{event} → {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_eq!(body["field"], field, "{event} → {body}");
        assert!(!body["message"].as_str().unwrap_or_default().is_empty());
    }
    let resp = app
        .http
        .post(format!("{}/api/v1/deploys", app.base_url))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["field"], "body");
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn a_batch_is_stored_whole_or_not_at_all() {
    let app = spawn_app().await;
    let good = |v: &str| json!({ "service": "search", "version": v, "deployed_at": ago(&app, 10).to_rfc3339() });
    let (status, body) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "deploys": [good("v1"), good("v2"), { "service": "auth", "deployed_at": "yesterday" }] }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "deploys[2].deployed_at");
    assert_eq!(count(&app).await, 0, "nothing of a refused batch is stored");

    let (status, body) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "deploys": (0..150).map(|i| good(&format!("v{i}"))).collect::<Vec<_>>() }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["received"], 150);
    assert_eq!(body["stored"], 150);
    assert_eq!(body["ids"].as_array().unwrap().len(), 150);
    assert_eq!(count(&app).await, 150);
}

#[tokio::test]
async fn resending_an_event_with_the_same_id_changes_nothing() {
    let app = spawn_app().await;
    let first = json!({ "id": "pipeline-4711", "service": "checkout", "version": "v3.0.0" });
    let (status, body) = post_deploys(&app, Some(TOKEN), first).await;
    assert_eq!((status, body["stored"].clone()), (201, json!(1)));
    let again =
        json!({ "id": "pipeline-4711", "service": "checkout", "version": "v3.0.1-changed" });
    let (status, body) = post_deploys(&app, Some(TOKEN), again).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 0);
    assert_eq!(body["duplicates"], 1);
    // Within one batch too.
    let (status, body) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "deploys": [
            { "id": "pipeline-4712", "service": "checkout" },
            { "id": "pipeline-4712", "service": "checkout" },
            { "id": "pipeline-4711", "service": "checkout" },
        ] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["stored"].clone(), body["duplicates"].clone()),
        (json!(1), json!(2))
    );
    let (_, list) = get_deploys(&app, Some(TOKEN), "service=checkout").await;
    let versions: Vec<&str> = list["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(list["deploys"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        versions.contains(&"v3.0.0") && !versions.contains(&"v3.0.1-changed"),
        "{versions:?}"
    );
}

#[tokio::test]
async fn get_filters_by_service_environment_and_window() {
    let app = spawn_app().await;
    let event = |service: &str, env: &str, minutes: i64| json!({ "service": service, "environment": env, "deployed_at": ago(&app, minutes).to_rfc3339() });
    let (status, _) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "deploys": [
            event("auth", "production", 30),
            event("auth", "staging", 20),
            event("auth", "production", 300),
            event("search", "production", 10),
        ] }),
    )
    .await;
    assert_eq!(status, 201);
    let since = urlencode(&ago(&app, 120).to_rfc3339());
    let (_, all_auth) =
        get_deploys(&app, Some(TOKEN), &format!("service=auth&since={since}")).await;
    assert_eq!(
        all_auth["deploys"].as_array().unwrap().len(),
        2,
        "{all_auth}"
    );
    let (_, prod) = get_deploys(
        &app,
        Some(TOKEN),
        &format!("service=auth&environment=prod&since={since}"),
    )
    .await;
    let prod = prod["deploys"].as_array().unwrap();
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0]["environment"], "production");
    let until = urlencode(&ago(&app, 25).to_rfc3339());
    let (_, older) = get_deploys(&app, Some(TOKEN), &format!("since={since}&until={until}")).await;
    assert_eq!(older["deploys"].as_array().unwrap().len(), 1, "{older}");

    let (status, body) = get_deploys(&app, Some(TOKEN), "service=auth&since=last-tuesday").await;
    assert_eq!((status, body["field"].clone()), (400, json!("since")));
    let (status, body) = get_deploys(&app, Some(TOKEN), "until=2026-13-45").await;
    assert_eq!((status, body["field"].clone()), (400, json!("until")));
    let (status, body) = get_deploys(&app, Some(TOKEN), "limit=0").await;
    assert_eq!((status, body["field"].clone()), (400, json!("limit")));
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_string()
}

#[tokio::test]
async fn githubs_deployment_status_fixture_is_stored_once_and_verified() {
    let app = spawn_app().await;
    let body = GITHUB_DEPLOYMENT_STATUS;
    let (status, answer) = github(
        &app,
        "deployment_status",
        body,
        Some(hub_signature(body.as_bytes())),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], true);
    assert_eq!(
        answer["service"], "Hello-World",
        "an unmapped repository falls back to its name"
    );
    let (_, list) = get_deploys(
        &app,
        Some(TOKEN),
        "service=Hello-World&since=2019-05-15T00:00:00Z&until=2019-05-16T00:00:00Z",
    )
    .await;
    let d = &list["deploys"][0];
    assert_eq!(d["commit_sha"], "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    assert_eq!(d["author"], "Codertocat");
    assert_eq!(d["source"], "github");
    assert_eq!(d["deployed_at"], "2019-05-15T15:20:55Z");

    // A redelivery changes nothing.
    let (status, answer) = github(
        &app,
        "deployment_status",
        body,
        Some(hub_signature(body.as_bytes())),
    )
    .await;
    assert_eq!((status, answer["stored"].clone()), (200, json!(false)));
    assert_eq!(count(&app).await, 1);

    // Bad, missing or other-body signatures are refused.
    assert_eq!(github(&app, "deployment_status", body, None).await.0, 401);
    assert_eq!(
        github(
            &app,
            "deployment_status",
            body,
            Some(hub_signature(b"something else"))
        )
        .await
        .0,
        401
    );
    assert_eq!(
        github(&app, "deployment_status", body, Some("sha256=zz".into()))
            .await
            .0,
        401
    );
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn github_pings_and_unsuccessful_states_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    let (status, answer) = github(
        &app,
        "ping",
        GITHUB_PING,
        Some(hub_signature(GITHUB_PING.as_bytes())),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ignored"], "ping event");
    let failed =
        GITHUB_DEPLOYMENT_STATUS.replacen("\"state\": \"success\"", "\"state\": \"failure\"", 1);
    assert_ne!(failed, GITHUB_DEPLOYMENT_STATUS);
    let (status, answer) = github(
        &app,
        "deployment_status",
        &failed,
        Some(hub_signature(failed.as_bytes())),
    )
    .await;
    assert_eq!(
        (status, answer["ignored"].clone()),
        (200, json!("deployment_status failure"))
    );
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn a_github_deploy_of_a_mapped_repository_shows_on_the_incident_card() {
    let app = spawn_app().await;
    let mut payload: Value = serde_json::from_str(GITHUB_DEPLOYMENT_STATUS).unwrap();
    payload["repository"]["full_name"] = json!("acme/auth-service");
    payload["repository"]["name"] = json!("auth-service");
    payload["deployment"]["ref"] = json!("v7.2.1");
    payload["deployment_status"]["created_at"] = json!(ago(&app, 40).to_rfc3339());
    let body = payload.to_string();
    let (status, answer) = github(
        &app,
        "deployment_status",
        &body,
        Some(hub_signature(body.as_bytes())),
    )
    .await;
    assert_eq!(
        (status, answer["service"].clone()),
        (200, json!("auth")),
        "{answer}"
    );

    let (status, _) = app
        .slash("start Card payments failing service:payments")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let ch = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-1-"))
        .unwrap();
    let card = ch
        .messages
        .iter()
        .find(|m| ch.pins.contains(&m.ts))
        .and_then(|m| m.blocks.as_ref())
        .map(blocks_to_text)
        .unwrap();
    assert!(
        card.contains("auth") && card.contains("(dependency)") && card.contains("v7.2.1"),
        "{card}"
    );
}

#[tokio::test]
async fn gitlabs_deployment_fixture_is_stored_and_the_token_checked() {
    let app = spawn_app().await;
    let send = |token: Option<&'static str>, body: String| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/gitlab", app.base_url))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Deployment Hook")
            .body(body);
        if let Some(t) = token {
            req = req.header("x-gitlab-token", t);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(send(None, GITLAB_DEPLOYMENT.into()).await.0, 401);
    assert_eq!(
        send(Some("harness-gitlab-tokeN"), GITLAB_DEPLOYMENT.into())
            .await
            .0,
        401
    );
    assert_eq!(count(&app).await, 0);

    let (status, answer) = send(Some(GITLAB_TOKEN), GITLAB_DEPLOYMENT.into()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], true);
    assert_eq!(answer["service"], "test-deployment-webhooks");
    assert_eq!(answer["environment"], "staging");
    let (_, again) = send(Some(GITLAB_TOKEN), GITLAB_DEPLOYMENT.into()).await;
    assert_eq!(again["stored"], false);

    let running =
        GITLAB_DEPLOYMENT.replacen("\"status\": \"success\"", "\"status\": \"running\"", 1);
    assert_ne!(running, GITLAB_DEPLOYMENT);
    let (status, answer) = send(Some(GITLAB_TOKEN), running).await;
    assert_eq!(
        (status, answer["ignored"].clone()),
        (200, json!("deployment running"))
    );
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn argocds_documented_template_body_is_stored_under_the_mapped_service() {
    let app = spawn_app().await;
    let finished = ago(&app, 5).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // What the README's template renders for an automated sync (no user: Go prints <no value>).
    let body = format!(
        r#"{{
  "app": "inventory-prod",
  "phase": "Succeeded",
  "revision": "f3937462080c6946ff5ec4b5fa393e7c22388e4c",
  "finishedAt": "{finished}",
  "url": "https://argocd.acme.example/applications/inventory-prod",
  "author": "<no value>",
  "environment": "production"
}}"#
    );
    let send = |token: Option<&'static str>, body: String| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/argocd", app.base_url))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(send(None, body.clone()).await.0, 401);
    assert_eq!(
        send(Some(TOKEN), body.clone()).await.0,
        401,
        "the deploy API token is not Argo CD's"
    );
    let (status, answer) = send(Some(ARGOCD_TOKEN), body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["service"], "inventory");
    assert_eq!(answer["stored"], true);
    assert_eq!(
        send(Some(ARGOCD_TOKEN), body.clone()).await.1["stored"],
        false,
        "a retried notification"
    );
    let (_, failed) = send(
        Some(ARGOCD_TOKEN),
        r#"{"app":"inventory-prod","phase":"Failed"}"#.into(),
    )
    .await;
    assert_eq!(failed["ignored"], "sync phase Failed");
    let (status, bad) = send(
        Some(ARGOCD_TOKEN),
        "Application inventory-prod has been successfully synced".into(),
    )
    .await;
    assert_eq!((status, bad["field"].clone()), (400, json!("body")));
    // A template that does not send the sync phase (or renders it as `<no value>`) cannot tell a successful
    // sync from a failed one: refused naming the field, nothing stored.
    for phase in [None, Some("<no value>"), Some("")] {
        let mut fields: Value = serde_json::from_str(&body).unwrap();
        fields["revision"] = json!(format!("{:040x}", phase.map_or(1, str::len) + 7));
        match phase {
            Some(p) => fields["phase"] = json!(p),
            None => drop(fields.as_object_mut().unwrap().remove("phase")),
        }
        let (status, bad) = send(Some(ARGOCD_TOKEN), fields.to_string()).await;
        assert_eq!(
            (status, bad["field"].clone()),
            (400, json!("phase")),
            "{bad}"
        );
    }
    assert_eq!(count(&app).await, 1);
}

async fn run_cli(args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_incident-bot"));
    cmd.args(args)
        .env_remove("DEPLOY_API_TOKEN")
        .env_remove("INCIDENT_BOT_URL")
        .env("RUST_LOG", "error");
    if let Some(t) = token {
        cmd.env("DEPLOY_API_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finishes")
        .expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn deploy_record_posts_to_a_running_bot_and_says_so() {
    let app = spawn_app().await;
    let args = [
        "deploy",
        "record",
        "--service",
        "checkout-web",
        "--version",
        "v5.1.0",
        "--sha",
        "279484c0",
        "--author",
        "carol",
        "--id",
        "gha-run-99",
        "--bot-url",
        &app.base_url,
    ];
    let (ok, out, err) = run_cli(&args, Some(TOKEN)).await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("recorded deploy of checkout-web v5.1.0"),
        "{out}"
    );
    let (_, list) = get_deploys(&app, Some(TOKEN), "service=checkout").await;
    let d = &list["deploys"][0];
    assert_eq!(d["id"], "gha-run-99");
    assert_eq!(d["service"], "checkout");
    assert_eq!(d["author"], "carol");
    assert_eq!(d["source"], "cli");

    let (ok, out, _) = run_cli(&args, Some(TOKEN)).await;
    assert!(ok && out.contains("already recorded"), "{out}");
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn deploy_record_fails_loudly_when_refused_or_unreachable() {
    let app = spawn_app().await;
    let base = [
        "deploy",
        "record",
        "--service",
        "payments",
        "--version",
        "v1",
    ];
    let with_url = |extra: &[&str]| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = with_url(&["--bot-url", &app.base_url]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let (ok, _, err) = run_cli(&args, Some("wrong-token")).await;
    assert!(!ok);
    assert!(err.contains("refused the token (HTTP 401)"), "{err}");

    let (ok, _, err) = run_cli(&args, None).await;
    assert!(!ok);
    assert!(err.contains("DEPLOY_API_TOKEN is not set"), "{err}");

    let bad = with_url(&["--bot-url", &app.base_url, "--at", "yesterday noon"]);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let (ok, _, err) = run_cli(&bad, Some(TOKEN)).await;
    assert!(!ok);
    assert!(
        err.contains("refused the deploy (HTTP 400): deployed_at"),
        "{err}"
    );

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = with_url(&["--bot-url", &format!("http://127.0.0.1:{closed}")]);
    let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
    let (ok, _, err) = run_cli(&gone, Some(TOKEN)).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "cannot reach the bot at http://127.0.0.1:{closed}"
        )),
        "{err}"
    );
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn slash_deploys_lists_the_service_and_its_dependencies_ephemerally() {
    let app = spawn_app().await;
    let event = |service: &str, version: &str, minutes: i64| json!({ "service": service, "version": version, "author": "dana", "deployed_at": ago(&app, minutes).to_rfc3339() });
    let (status, _) = post_deploys(
        &app,
        Some(TOKEN),
        json!({ "deploys": [
            event("payments", "v2.14.0", 25),
            event("inventory", "v3.3.0", 50),
            event("auth", "v7.0.0", 200),
            event("search", "v1.9.3", 5),
        ] }),
    )
    .await;
    assert_eq!(status, 201);

    let (status, reply) = app.slash("deploys payments").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap();
    assert!(text.contains("in the last 2 h"), "{text}");
    assert!(
        text.contains("*payments* `v2.14.0` by dana, 25m ago"),
        "{text}"
    );
    assert!(text.contains("*inventory* (dependency) `v3.3.0`"), "{text}");
    assert!(!text.contains("v7.0.0"), "older than 2 h: {text}");
    assert!(!text.contains("search"), "not a dependency: {text}");

    let (_, reply) = app.slash("deploys #payments 4h").await.unwrap();
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("*auth* (dependency) `v7.0.0`"),
        "{reply}"
    );

    let (_, reply) = app.slash("deploys payments 10m").await.unwrap();
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("None — no production deploys to *payments*"),
        "{reply}"
    );

    let (_, reply) = app.slash("deploys paymnts").await.unwrap();
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("did you mean `payments`"),
        "{reply}"
    );
}
