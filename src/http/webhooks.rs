//! CI/CD webhooks that report deploys (SPEC §4). Each request is authenticated before its body is parsed:
//! - `POST /webhooks/github`: `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with
//!   `GITHUB_WEBHOOK_SECRET`); JSON or form (`payload=`) bodies; `deployment_status` with state `success`
//!   is a deploy, `ping` and everything else is acknowledged and ignored.
//! - `POST /webhooks/gitlab`: `X-Gitlab-Token` equal to `GITLAB_WEBHOOK_TOKEN` (constant time); successful
//!   deployment events are deploys.
//! - `POST /webhooks/argocd`: `Authorization: Bearer <ARGOCD_WEBHOOK_TOKEN>`; the body of the notifications
//!   template in README.md.
//!
//! Answers: `200 {"stored": true|false, "id": …}` (false = already stored), `200 {"ignored": why}`, `400`
//! naming the field, `401`. Payload mapping lives in [`crate::deploys::sources`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::deploys::check_bearer;
use crate::deploys::input::validate;
use crate::deploys::sources::{self, Outcome};
use crate::deploys::{self};
use crate::errors::ApiError;
use crate::slack::verify::{tokens_match, verify_hub_signature};
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitlab", post(gitlab))
        .route("/webhooks/argocd", post(argocd))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))
}

/// Stores (or ignores) what a delivery amounted to.
async fn settle(state: &AppState, source: &str, outcome: Outcome) -> Result<Response, ApiError> {
    match outcome {
        Outcome::Ignored(why) => {
            tracing::info!(source, why, "webhook ignored");
            Ok(Json(json!({ "ok": true, "ignored": why })).into_response())
        }
        Outcome::Deploy(fields) => {
            let now = state.clock.now();
            let d = validate(fields, &state.catalog, now)?;
            let out = deploys::insert_batch(&state.db, std::slice::from_ref(&d), now).await?;
            let id = out.ids.first().cloned().unwrap_or_default();
            tracing::info!(source, service = %d.service, id, stored = out.stored, "deploy webhook");
            Ok(Json(json!({
                "ok": true,
                "stored": out.stored > 0,
                "id": id,
                "service": d.service,
                "environment": d.environment,
            }))
            .into_response())
        }
    }
}

#[tracing::instrument(name = "webhook_github", skip_all)]
async fn github(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret = state
        .secrets
        .github_webhook_secret
        .as_ref()
        .map(|s| s.expose().as_bytes())
        .unwrap_or_default();
    if !verify_hub_signature(secret, header(&headers, "x-hub-signature-256"), &body) {
        tracing::warn!("refused a GitHub delivery: bad or missing X-Hub-Signature-256");
        return Err(ApiError::Unauthorized("invalid X-Hub-Signature-256"));
    }
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| ApiError::bad("X-GitHub-Event", "missing"))?;
    let is_form = header(&headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let payload = if is_form {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::bad("body", e.to_string()))?;
        let p = form
            .into_iter()
            .find(|(k, _)| k == "payload")
            .ok_or_else(|| ApiError::bad("payload", "missing"))?;
        json_body(p.1.as_bytes())?
    } else {
        json_body(&body)?
    };
    let outcome = sources::github(
        event,
        header(&headers, "x-github-delivery"),
        &payload,
        &state.catalog,
    )?;
    settle(&state, "github", outcome).await
}

#[tracing::instrument(name = "webhook_gitlab", skip_all)]
async fn gitlab(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ok = match (
        state.secrets.gitlab_webhook_token.as_ref(),
        header(&headers, "x-gitlab-token"),
    ) {
        (Some(expected), Some(given)) => tokens_match(expected.expose(), given),
        _ => false,
    };
    if !ok {
        tracing::warn!("refused a GitLab delivery: bad or missing X-Gitlab-Token");
        return Err(ApiError::Unauthorized("invalid X-Gitlab-Token"));
    }
    let payload = json_body(&body)?;
    let outcome = sources::gitlab(header(&headers, "x-gitlab-event"), &payload, &state.catalog)?;
    settle(&state, "gitlab", outcome).await
}

#[tracing::instrument(name = "webhook_argocd", skip_all)]
async fn argocd(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_bearer(
        state.secrets.argocd_webhook_token.as_ref(),
        &headers,
        "ARGOCD_WEBHOOK_TOKEN",
    )?;
    let payload = json_body(&body)?;
    let outcome = sources::argocd(&payload, &state.catalog)?;
    settle(&state, "argocd", outcome).await
}
