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

/// Shortest control token accepted, from the environment or a file: a bearer
/// token that can change what keel trades must not be guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the control token cannot be used. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Shorter than [`MIN_TOKEN_LEN`].
    #[error("{source_name}: the control token has {len} characters; at least {MIN_TOKEN_LEN} are required")]
    TooShort {
        /// `KEEL_CONTROL_TOKEN` or `server.control_token_file = <path>`.
        source_name: String,
        /// Its length.
        len: usize,
    },
    /// The token file can be read by its group or by others.
    #[error(
        "{source_name}: readable by group or others (mode {mode:o}); the token is a secret: chmod 600 it"
    )]
    Exposed {
        /// `server.control_token_file = <path>`.
        source_name: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file cannot be read.
    #[error("{source_name}: {reason}")]
    Unreadable {
        /// `server.control_token_file = <path>`.
        source_name: String,
        /// The OS error.
        reason: String,
    },
}

/// Longest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE: u64 = 4096;

/// The control token: `env` (the value of `KEEL_CONTROL_TOKEN`) when set and
/// non-blank, else the content of `file`. Either must hold at least
/// [`MIN_TOKEN_LEN`] characters; the file must not be readable by group or
/// others. `Ok(None)`: no token, the control API stays off.
pub fn load_control_token(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, TokenError> {
    let check = |t: &str, source_name: String| {
        let len = t.chars().count();
        if len < MIN_TOKEN_LEN {
            Err(TokenError::TooShort { source_name, len })
        } else {
            Ok(Some(t.to_string()))
        }
    };
    if let Some(t) = env.map(str::trim).filter(|t| !t.is_empty()) {
        return check(t, "KEEL_CONTROL_TOKEN".into());
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let source_name = format!("server.control_token_file = {}", path.display());
    let unreadable = |e: std::io::Error| TokenError::Unreadable {
        source_name: source_name.clone(),
        reason: e.to_string(),
    };
    let f = std::fs::File::open(path).map_err(unreadable)?;
    let meta = f.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(TokenError::Unreadable {
            source_name,
            reason: "not a regular file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Exposed { source_name, mode });
        }
    }
    let mut text = String::new();
    use std::io::Read as _;
    f.take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    check(text.trim(), source_name.clone())
}

/// Failed-auth warnings are aggregated over this interval: a client hammering
/// the control API with wrong tokens produces one line per interval, not one
/// per request.
pub(crate) const AUTH_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Counts failed authentications and says when to log.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures {
    inner: std::sync::Mutex<(u64, Option<std::time::Instant>)>,
}

impl AuthFailures {
    /// Records one failure at `now`; `Some(n)` when a warning is due, `n`
    /// being the failures since the last warning (this one included).
    pub(crate) fn record(&self, now: std::time::Instant) -> Option<u64> {
        let Ok(mut g) = self.inner.lock() else {
            return None;
        };
        g.0 = g.0.saturating_add(1);
        let due =
            g.1.is_none_or(|last| now.saturating_duration_since(last) >= AUTH_LOG_INTERVAL);
        if due {
            let n = g.0;
            *g = (0, Some(now));
            Some(n)
        } else {
            None
        }
    }
}

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
        if let Some(n) = state.auth_failures().record(std::time::Instant::now()) {
            tracing::warn!(
                failures = n,
                path = %keel_domain::log_safe(req.uri().path()),
                "control API: missing or wrong bearer token ({n} failure(s) since the last warning; next warning in at most {}s)",
                AUTH_LOG_INTERVAL.as_secs()
            );
        }
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
    tracing::warn!(reason = %keel_domain::log_safe(&reason), "control API: kill switch engaged");
    Ok(Json(KillResult { engaged: true }).into_response())
}

/// `POST /api/v1/control/resume`.
pub(crate) async fn resume(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let reason = reason(&body)?;
    let port = state.control().ok_or_else(ApiError::not_found)?;
    let r = port.release_kill(&reason).await;
    state.cache().invalidate();
    let released = r.map_err(port_error)?;
    tracing::warn!(
        reason = %keel_domain::log_safe(&reason),
        released,
        "control API: kill switch release requested"
    );
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
    tracing::info!(target_set = %keel_domain::log_safe(&id), "control API: target set queued");
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
    fn failed_auth_warnings_are_aggregated() {
        let f = AuthFailures::default();
        let t0 = std::time::Instant::now();
        assert_eq!(f.record(t0), Some(1), "the first failure is logged at once");
        let mut logged = 0;
        for i in 1..=10_000u64 {
            if f.record(t0 + std::time::Duration::from_millis(i)).is_some() {
                logged += 1;
            }
        }
        assert_eq!(logged, 0, "10,000 failures within the interval: no more warnings");
        assert_eq!(
            f.record(t0 + AUTH_LOG_INTERVAL),
            Some(10_001),
            "then one warning with the count"
        );
        assert_eq!(f.record(t0 + AUTH_LOG_INTERVAL), None);
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
