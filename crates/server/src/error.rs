//! Error responses: a status and a JSON `{"error": "..."}` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keel_store::StoreError;
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
}

impl ApiError {
    /// An error with `status` and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 for a query parameter that does not parse.
    pub fn bad_param(name: &str, value: &str, why: impl std::fmt::Display) -> Self {
        // The value is echoed inside JSON (escaped by serde), never into HTML.
        let shown: String = value.chars().take(64).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("query parameter {name}={shown:?}: {why}"),
        )
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Store errors can name files and servers; the details go to the log,
        // the client learns only that the store failed.
        tracing::error!(error = %e, "store query failed while serving a request");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(Body { error: &self.message })).into_response()
    }
}
