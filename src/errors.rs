//! The error policy of the HTTP front door.
//!
//! Every handler returns `Result<_, ApiError>`. Client mistakes say precisely what was wrong (`400` naming the
//! field, `401` for a bad signature or token, `413` for an oversized body). Internal failures are logged with
//! their cause and shown to the caller only as a generic message: no SQL, no upstream error text, and never a
//! secret. Slack users never see these — Slack endpoints answer usage problems with an ephemeral message instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names what is wrong.
    #[error("bad request: {field}: {message}")]
    BadRequest { field: String, message: String },
    /// Missing, wrong or stale signature or token.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Anything else: logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "bad_request", "field": field, "message": message })),
            )
                .into_response(),
            ApiError::Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "unauthorized", "message": why })),
            )
                .into_response(),
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "internal", "message": "internal error; see the bot's logs" })),
                )
                    .into_response()
            }
        }
    }
}
