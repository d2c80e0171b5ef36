//! The deploy API (SPEC §4): `POST /api/v1/deploys` (one event or `{"deploys": [...]}`) and
//! `GET /api/v1/deploys?service=&environment=&since=&until=&limit=`, both with
//! `Authorization: Bearer <DEPLOY_API_TOKEN>` compared in constant time.
//!
//! POST answers `201` when something new was stored, `200` when every event's id was already stored, with
//! `{"received", "stored", "duplicates", "ids"}`; a batch is stored in one transaction (all or nothing).
//! `400` names the field (`deploys[2].deployed_at`), `401` means a missing or wrong token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;

use crate::deploys::input::{parse_body, parse_instant, FieldError};
use crate::deploys::{self, ListFilter};
use crate::errors::ApiError;
use crate::slack::verify::tokens_match;
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/deploys", post(create).get(list))
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::bad(e.field, e.message)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks `Authorization: Bearer <expected>`; 401 otherwise (also when no token is configured).
pub fn check_bearer(
    expected: Option<&crate::config::Secret>,
    headers: &HeaderMap,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        tracing::warn!("{what} is not set: refusing the request");
        return Err(ApiError::Unauthorized(
            "this endpoint's token is not configured",
        ));
    };
    match bearer(headers) {
        Some(given) if tokens_match(expected.expose(), given) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("wrong bearer token")),
        None => Err(ApiError::Unauthorized(
            "missing Authorization: Bearer <token>",
        )),
    }
}

#[tracing::instrument(name = "deploys_create", skip_all)]
async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_bearer(
        state.secrets.deploy_api_token.as_ref(),
        &headers,
        "DEPLOY_API_TOKEN",
    )?;
    let body = super::read_body(
        body,
        state.settings.http.body_limit_bytes,
        "the body is over http.body_limit_bytes",
    )
    .await?;
    let now = state.clock.now();
    let events = parse_body(&body, &state.catalog, now)?;
    let outcome = deploys::insert_batch(&state.db, &events, now).await?;
    let received = events.len() as u64;
    tracing::info!(received, stored = outcome.stored, "deploy events");
    let status = if outcome.stored > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "received": received,
            "stored": outcome.stored,
            "duplicates": received - outcome.stored,
            "ids": outcome.ids,
        })),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    service: Option<String>,
    environment: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

#[tracing::instrument(name = "deploys_list", skip_all)]
async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    check_bearer(
        state.secrets.deploy_api_token.as_ref(),
        &headers,
        "DEPLOY_API_TOKEN",
    )?;
    let q: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(crate::http::slack::bad_body)?;
    let now = state.clock.now();
    let until = match q.until.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(t) => parse_instant("until", t)?,
        None => now,
    };
    let since = match q.since.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(t) => parse_instant("since", t)?,
        None => until - Duration::days(1),
    };
    if since > until {
        return Err(ApiError::bad("since", "is after until"));
    }
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad("limit", "a number from 1 to 1000"))?,
    };
    let service = q
        .service
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| state.catalog.get(&s).map_or(s, |c| c.name.clone()));
    let environment = q
        .environment
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .map(|e| match e.as_str() {
            "prod" | "prd" => deploys::PRODUCTION.to_string(),
            _ => e,
        });
    let found = deploys::list(
        &state.db,
        &ListFilter {
            service: service.clone(),
            environment,
            since,
            until,
            limit,
        },
    )
    .await?;
    Ok(Json(json!({
        "service": service,
        "since": since.to_rfc3339(),
        "until": until.to_rfc3339(),
        "deploys": found,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic YWxhZGRpbjpvcGVu".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.remove("authorization");
        assert_eq!(bearer(&h), None);
    }
}
