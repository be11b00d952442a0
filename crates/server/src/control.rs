//! The control API: engage or release the kill switch, submit a target set.
//!
//! It is mounted only when a token is configured (and the binary supplies a
//! [`ControlPort`]); otherwise the routes do not exist at all. Every request
//! must carry `Authorization: Bearer <token>`; anything else gets 401 before
//! the body is read and changes nothing. The server never performs an action
//! itself: it calls the [`ControlPort`] the binary implements with the real
//! worker, which validates, acts and appends the audit event, so the HTTP path
//! and the CLI share one audited code path.

use crate::error::ApiError;
use crate::state::AppState;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest accepted control request body: a target set for a few thousand
/// symbols fits many times over; anything bigger is a mistake or an attack.
pub const MAX_CONTROL_BODY: usize = 1024 * 1024;

/// Longest accepted reason text; reasons end up in the audit log and on the
/// dashboard, so they are kept to a paragraph.
pub const MAX_REASON_LEN: usize = 1_000;

/// Why a control action failed, as the port reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ControlError {
    /// HTTP status to answer with (400 bad input, 409 conflict, 503 worker unavailable, ...).
    pub status: u16,
    /// What went wrong, for the operator. Must not contain secrets: it is sent to the client.
    pub message: String,
}

impl ControlError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    /// A 500 with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: 500,
            message: message.into(),
        }
    }
}

/// The actions the control API can take, implemented by the binary over the
/// real worker. Each implementation must append the corresponding audit
/// event (`KillSwitchEngaged`/`KillSwitchReleased` with source `http`,
/// `TargetSetQueued`) before returning `Ok`, so every control action is audited.
#[async_trait]
pub trait ControlPort: Send + Sync {
    /// Engages the kill switch (sticky; engaging twice keeps the first reason).
    async fn engage_kill(&self, reason: &str) -> Result<(), ControlError>;
    /// Releases the kill switch; `Ok(false)` when it was not engaged.
    async fn release_kill(&self, reason: &str) -> Result<bool, ControlError>;
    /// Validates and queues a target set (JSON, or CSV when the content type
    /// says so); returns the set's id.
    async fn submit_target_set(
        &self,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<String, ControlError>;
}

/// SHA-256 of a token. Comparing digests (fixed length) in constant time
/// hides both the content and the length of the configured token.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether the request's `Authorization` header carries the configured token.
fn authorized(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let got = token_digest(presented.trim());
    bool::from(got.ct_eq(expected))
}

/// Middleware: 401 unless the bearer token matches. Runs before any body is
/// read, so an unauthenticated request never reaches the port.
pub(crate) async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = state
        .token_digest()
        .is_some_and(|expected| authorized(req.headers(), expected));
    if !ok {
        // The presented value is never logged: a typo'd token is still a secret.
        tracing::warn!(path = %req.uri().path(), "control API: missing or wrong bearer token");
        let mut resp =
            ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token").into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keel-control\""),
        );
        return resp;
    }
    next.run(req).await
}

/// Body of the kill-switch actions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

/// Parses and checks `{"reason": "..."}`. Parsed from raw bytes whatever the
/// content type, so `curl -d` works without a header.
fn reason(body: &[u8]) -> Result<String, ApiError> {
    let b: ReasonBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body must be {{\"reason\": \"...\"}}: {e}"),
        )
    })?;
    let r = b.reason.trim();
    if r.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "reason must not be empty"));
    }
    if r.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("reason is longer than {MAX_REASON_LEN} characters"),
        ));
    }
    Ok(r.to_string())
}

/// Maps the port's error to a response (an out-of-range status becomes 500).
fn port_error(e: ControlError) -> ApiError {
    let status = StatusCode::from_u16(e.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, e.message)
}

/// Result of engaging the kill switch.
#[derive(Debug, Serialize)]
struct KillResult {
    engaged: bool,
}

/// Result of releasing the kill switch.
#[derive(Debug, Serialize)]
struct ReleaseResult {
    released: bool,
}

/// Result of submitting a target set.
#[derive(Debug, Serialize)]
struct SubmitResult {
    id: String,
}

/// `POST /api/v1/control/kill`.
pub(crate) async fn kill(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let reason = reason(&body)?;
    let port = state.control().ok_or_else(ApiError::not_found)?;
    let r = port.engage_kill(&reason).await;
    state.cache().invalidate();
    r.map_err(port_error)?;
    tracing::warn!(reason = %reason, "control API: kill switch engaged");
    Ok(Json(KillResult { engaged: true }).into_response())
}

/// `POST /api/v1/control/resume`.
pub(crate) async fn resume(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let reason = reason(&body)?;
    let port = state.control().ok_or_else(ApiError::not_found)?;
    let r = port.release_kill(&reason).await;
    state.cache().invalidate();
    let released = r.map_err(port_error)?;
    tracing::warn!(reason = %reason, released, "control API: kill switch release requested");
    Ok(Json(ReleaseResult { released }).into_response())
}

/// `POST /api/v1/control/target-sets`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty body: send a target set",
        ));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let port = state.control().ok_or_else(ApiError::not_found)?;
    let r = port.submit_target_set(&body, ct).await;
    state.cache().invalidate();
    let id = r.map_err(port_error)?;
    tracing::info!(target_set = %id, "control API: target set queued");
    Ok((StatusCode::CREATED, Json(SubmitResult { id })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn bearer_matching() {
        let d = token_digest("s3cret-token");
        assert!(authorized(&headers("Bearer s3cret-token"), &d));
        assert!(authorized(&headers("bearer s3cret-token"), &d));
        assert!(!authorized(&headers("Bearer s3cret-tokeN"), &d));
        assert!(!authorized(&headers("Bearer s3cret-token-longer"), &d));
        assert!(!authorized(&headers("Basic s3cret-token"), &d));
        assert!(!authorized(&headers("s3cret-token"), &d));
        assert!(!authorized(&HeaderMap::new(), &d));
    }

    #[test]
    fn reason_rules() {
        assert!(reason(br#"{"reason":"  "}"#).is_err());
        assert!(reason(br#"{"reason":"x","extra":1}"#).is_err());
        assert!(reason(b"not json").is_err());
        assert_eq!(
            reason(br#"{"reason":" fat finger "}"#).ok(),
            Some("fat finger".to_string())
        );
        let long = format!(r#"{{"reason":"{}"}}"#, "a".repeat(MAX_REASON_LEN + 1));
        assert!(reason(long.as_bytes()).is_err());
    }
}
