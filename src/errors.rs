//! The error policy of the HTTP front door.
//!
//! Every handler returns `Result<_, ApiError>`. Client mistakes say precisely what was wrong (`400` naming the
//! field, `401` for a bad signature or token, `413` for an oversized body). Internal failures are logged with
//! their cause and shown to the caller only as a generic message: no SQL, no upstream error text, and never a
//! secret. Slack users never see these — Slack endpoints answer usage problems with an ephemeral message instead.
//!
//! For the command line and the logs, [`once`] says an error and its causes without repeating a cause its parent
//! already quoted.

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
    /// The endpoint is not configured (its token or secret is not set): 503 saying what to set.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// The body is over the route's limit: 413.
    #[error("payload too large: {0}")]
    TooLarge(&'static str),
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
            ApiError::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "unavailable", "message": why })),
            )
                .into_response(),
            ApiError::TooLarge(why) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({ "error": "payload_too_large", "message": why })),
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

/// An error and its causes, each said once: drivers' errors often repeat their source's message in their
/// own, and `{:#}` would print it again.
pub fn once(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let msg = err.to_string();
        if !out.iter().any(|m| m.contains(msg.as_str())) {
            out.push(msg);
        }
        next = err.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error communicating with database: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_not_repeated() {
        let e = Wrapped(std::io::Error::other("at line 948: syntax error"));
        assert_eq!(
            once(&e),
            "error communicating with database: at line 948: syntax error"
        );
    }

    #[test]
    fn an_anyhow_context_over_a_quoting_error_says_each_cause_once() {
        let inner = Wrapped(std::io::Error::other(
            "relation \"incidents\" does not exist at line 948",
        ));
        let e = anyhow::Error::new(inner).context("cannot read the incidents");
        let e: &(dyn std::error::Error + 'static) = e.as_ref();
        let said = once(e);
        assert_eq!(
            said,
            "cannot read the incidents: error communicating with database: relation \"incidents\" does not exist at line 948"
        );
        assert_eq!(said.matches("line 948").count(), 1);
    }
}
