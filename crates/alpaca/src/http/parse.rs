//! Classifying HTTP outcomes into keel's [`BrokerError`]s. This is the safety
//! core of the adapter: a request that may have reached Alpaca is never
//! reported as one that did not.

use super::models::ErrorBody;
use keel_broker::BrokerError;
use std::time::Duration;

/// What came back from one HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete answer.
    Answer {
        /// HTTP status.
        status: u16,
        /// Body text (bounded).
        body: String,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// No connection was made: nothing reached the server.
    NotConnected(String),
    /// The exchange timed out (the request may have been received).
    TimedOut,
    /// The connection failed after it was made (reset, body cut off): the
    /// request may have been received.
    Broken(String),
}

/// Alpaca's message from an error body, else the body itself (shortened).
pub fn message(status: u16, body: &str) -> String {
    let m = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    if m.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {m}")
    }
}

fn is_duplicate_id(body: &str) -> bool {
    let m = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| body.to_string())
        .to_ascii_lowercase();
    m.contains("client_order_id") && m.contains("unique")
}

/// The error for a `POST /v2/orders` that did not return an order.
///
/// * not connected: nothing was sent, so retrying is safe;
/// * timeout, broken connection, 5xx (504 included) or any status we cannot
///   read as a refusal: UNKNOWN — the order may exist; resolve by client id;
/// * 422 "client_order_id must be unique": the order exists already;
/// * 403 / 422 / other 4xx: refused, with Alpaca's message;
/// * 429: refused by the rate limiter before it was considered.
pub fn submit_error(o: &Outcome) -> BrokerError {
    match o {
        Outcome::NotConnected(m) => BrokerError::Retryable {
            message: format!("not connected, nothing sent: {m}"),
            retry_after: None,
        },
        Outcome::TimedOut => BrokerError::UnknownOutcome {
            message: "order submit timed out".into(),
        },
        Outcome::Broken(m) => BrokerError::UnknownOutcome {
            message: format!("connection failed during order submit: {m}"),
        },
        Outcome::Answer {
            status,
            body,
            retry_after,
        } => match *status {
            422 if is_duplicate_id(body) => BrokerError::DuplicateClientOrderId,
            429 => BrokerError::Retryable {
                message: message(*status, body),
                retry_after: *retry_after,
            },
            401 => BrokerError::Other(format!("{} (check the Alpaca keys)", message(*status, body))),
            400..=499 => BrokerError::Rejected {
                reason: message(*status, body),
            },
            _ => BrokerError::UnknownOutcome {
                message: message(*status, body),
            },
        },
    }
}

/// The error for a read (or a lookup) that did not succeed. Reads change
/// nothing, so transient failures are [`BrokerError::Retryable`] and the
/// client retries them within its budget.
pub fn read_error(o: &Outcome) -> BrokerError {
    match o {
        Outcome::NotConnected(m) | Outcome::Broken(m) => BrokerError::Retryable {
            message: m.clone(),
            retry_after: None,
        },
        Outcome::TimedOut => BrokerError::Retryable {
            message: "request timed out".into(),
            retry_after: None,
        },
        Outcome::Answer {
            status,
            body,
            retry_after,
        } => match *status {
            429 | 500..=599 | 408 => BrokerError::Retryable {
                message: message(*status, body),
                retry_after: *retry_after,
            },
            401 | 403 => BrokerError::Other(format!(
                "{} (check the Alpaca keys and data plan)",
                message(*status, body)
            )),
            _ => BrokerError::Other(message(*status, body)),
        },
    }
}

/// The error for a `DELETE /v2/orders/{id}` that did not return 204/200.
/// A cancel that may have reached Alpaca is unknown, like a submit.
pub fn cancel_error(o: &Outcome) -> BrokerError {
    match o {
        Outcome::NotConnected(m) => BrokerError::Retryable {
            message: format!("not connected, nothing sent: {m}"),
            retry_after: None,
        },
        Outcome::Answer {
            status: 429,
            body,
            retry_after,
        } => BrokerError::Retryable {
            message: message(429, body),
            retry_after: *retry_after,
        },
        Outcome::Answer { status, body, .. } if (400..500).contains(status) => BrokerError::Rejected {
            reason: message(*status, body),
        },
        Outcome::Answer { status, body, .. } => BrokerError::UnknownOutcome {
            message: message(*status, body),
        },
        Outcome::TimedOut => BrokerError::UnknownOutcome {
            message: "order cancel timed out".into(),
        },
        Outcome::Broken(m) => BrokerError::UnknownOutcome {
            message: format!("connection failed during order cancel: {m}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ans(status: u16, body: &str) -> Outcome {
        Outcome::Answer {
            status,
            body: body.into(),
            retry_after: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn submit_outcomes_are_classified_conservatively() {
        for s in [500, 502, 503, 504, 599] {
            assert!(submit_error(&ans(s, "")).is_unknown_outcome(), "{s}");
        }
        assert!(submit_error(&Outcome::TimedOut).is_unknown_outcome());
        assert!(submit_error(&Outcome::Broken("reset".into())).is_unknown_outcome());
        assert!(submit_error(&Outcome::NotConnected("refused".into())).is_retryable());
        assert_eq!(
            submit_error(&ans(
                422,
                r#"{"code":40010001,"message":"client_order_id must be unique"}"#
            )),
            BrokerError::DuplicateClientOrderId
        );
        assert_eq!(
            submit_error(&ans(
                403,
                r#"{"code":40310000,"message":"insufficient buying power"}"#
            )),
            BrokerError::Rejected {
                reason: "HTTP 403: insufficient buying power".into()
            }
        );
        assert_eq!(
            submit_error(&ans(422, r#"{"message":"qty must be integer"}"#)),
            BrokerError::Rejected {
                reason: "HTTP 422: qty must be integer".into()
            }
        );
        assert_eq!(
            submit_error(&ans(429, "rate limit exceeded")),
            BrokerError::Retryable {
                message: "HTTP 429: rate limit exceeded".into(),
                retry_after: Some(Duration::from_secs(2))
            }
        );
        // A redirect or an informational status is not a refusal we understand.
        assert!(submit_error(&ans(302, "")).is_unknown_outcome());
    }

    #[test]
    fn reads_retry_transient_failures_only() {
        assert!(read_error(&ans(503, "")).is_retryable());
        assert!(read_error(&ans(429, "")).is_retryable());
        assert!(read_error(&Outcome::TimedOut).is_retryable());
        assert!(!read_error(&ans(403, "")).is_retryable());
        assert!(!read_error(&ans(400, "")).is_retryable());
    }

    #[test]
    fn cancels_are_never_guessed() {
        assert!(cancel_error(&ans(504, "")).is_unknown_outcome());
        assert!(cancel_error(&Outcome::TimedOut).is_unknown_outcome());
        assert!(matches!(
            cancel_error(&ans(422, "")),
            BrokerError::Rejected { .. }
        ));
    }

    proptest! {
        /// Whatever the status and body, a submit is only ever reported as not
        /// having reached Alpaca for 429 (refused by the limiter) or no connection.
        #[test]
        fn no_answer_claims_nothing_happened_unless_it_is_certain(status in 100u16..600, body in ".{0,80}") {
            let e = submit_error(&Outcome::Answer { status, body: body.clone(), retry_after: None });
            if e.is_retryable() { prop_assert_eq!(status, 429); }
            if status >= 500 { prop_assert!(e.is_unknown_outcome()); }
            if e == BrokerError::DuplicateClientOrderId { prop_assert_eq!(status, 422); }
        }
    }
}
