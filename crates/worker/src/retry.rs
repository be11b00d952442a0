//! Reads retried within a budget, for every venue: one 503 or 429 on a
//! snapshot read must not abort a cycle (and with it a whole target set's
//! attempt), while an outage still ends it after a bounded wait.
//!
//! [`Retrying`] wraps a [`Broker`] or [`MarketData`] the way
//! [`crate::Instrumented`] does. Only [`BrokerError::Retryable`] is retried:
//! by its contract nothing happened at the venue, so asking again is safe.
//! `submit` is passed through untouched: a submit's failure is resolved by
//! the worker (unknown outcomes by client-order-id lookup, never by a blind
//! resend). `cancel` is retried on `Retryable` only, which is safe because
//! nothing happened and a cancel is idempotent besides.
//!
//! Waits: exponential from `retry_backoff_ms`, capped at 25 times it; a
//! venue's `retry_after` is honoured exactly when it is within
//! [`MAX_WAIT`], and a venue asking for longer ends the retries (waiting
//! less than it asked would only earn another 429).

use async_trait::async_trait;
use keel_broker::{AssetFacts, Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder, MarketData};
use keel_domain::{Decimal, OpenOrder, Order, Position, Quote, Symbol};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The longest single wait a read retry accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How many times, and how patiently, a read is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRetry {
    /// Retries after the first attempt (0: no retries).
    pub budget: u32,
    /// First backoff, in milliseconds; doubled per retry.
    pub backoff_ms: u64,
}

impl ReadRetry {
    /// The wait before retry number `n` (0-based) after `e`, or `None` when
    /// the error is not retryable or the budget is spent.
    pub fn wait(&self, n: u32, e: &BrokerError) -> Option<Duration> {
        let BrokerError::Retryable { retry_after, .. } = e else {
            return None;
        };
        if n >= self.budget {
            return None;
        }
        let base = self.backoff_ms.max(1);
        let backoff = Duration::from_millis(
            base.saturating_mul(1u64 << n.min(16))
                .min(base.saturating_mul(25)),
        );
        match retry_after {
            Some(ra) if *ra > MAX_WAIT => None,
            Some(ra) => Some(*ra),
            None => Some(backoff.min(MAX_WAIT)),
        }
    }

    /// Runs `call` until it succeeds, fails with an error that is not
    /// retryable, or the budget is spent; returns its last result.
    pub async fn run<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<T, BrokerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BrokerError>>,
    {
        let mut n = 0;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.wait(n, &e) {
                    Some(wait) => {
                        tracing::info!(op, error = %e, retry = n + 1, wait_ms = wait.as_millis() as u64, "retrying read");
                        // Pacing against the real venue, not a decision input: real time.
                        tokio::time::sleep(wait).await;
                        n += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// A venue whose reads are retried (see the module docs).
pub struct Retrying<T: ?Sized> {
    inner: Arc<T>,
    policy: ReadRetry,
}

impl<T: ?Sized> Retrying<T> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<T>, policy: ReadRetry) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
impl Broker for Retrying<dyn Broker> {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        self.policy.run("account", || self.inner.account()).await
    }
    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        self.policy.run("positions", || self.inner.positions()).await
    }
    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        self.policy.run("open_orders", || self.inner.open_orders()).await
    }
    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        // Never retried here: the worker resolves every submit failure itself.
        self.inner.submit(order).await
    }
    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError> {
        self.policy
            .run("cancel", || self.inner.cancel(client_order_id))
            .await
    }
    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        self.policy
            .run("order_by_client_id", || {
                self.inner.order_by_client_id(client_order_id)
            })
            .await
    }
    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        self.policy
            .run("events_since", || self.inner.events_since(cursor))
            .await
    }
    fn stream_down_for(&self) -> Option<std::time::Duration> {
        self.inner.stream_down_for()
    }

    async fn trading_blocks(&self) -> Result<Vec<String>, BrokerError> {
        self.policy
            .run("trading_blocks", || self.inner.trading_blocks())
            .await
    }
}

#[async_trait]
impl MarketData for Retrying<dyn MarketData> {
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        self.policy.run("quotes", || self.inner.quotes(symbols)).await
    }
    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        self.policy
            .run("daily_closes", || self.inner.daily_closes(symbol, n))
            .await
    }
    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        self.policy.run("adv", || self.inner.adv(symbols)).await
    }
    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        self.policy.run("assets", || self.inner.assets(symbols)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(after: Option<u64>) -> BrokerError {
        BrokerError::Retryable {
            message: "503".into(),
            retry_after: after.map(Duration::from_millis),
        }
    }

    #[test]
    fn waits_grow_honour_retry_after_and_stop() {
        let p = ReadRetry {
            budget: 3,
            backoff_ms: 100,
        };
        assert_eq!(p.wait(0, &retryable(None)), Some(Duration::from_millis(100)));
        assert_eq!(p.wait(1, &retryable(None)), Some(Duration::from_millis(200)));
        assert_eq!(p.wait(2, &retryable(None)), Some(Duration::from_millis(400)));
        assert_eq!(p.wait(3, &retryable(None)), None, "budget spent");
        // Retry-After is honoured exactly, shorter or longer than the backoff.
        assert_eq!(p.wait(0, &retryable(Some(1_000))), Some(Duration::from_secs(1)));
        assert_eq!(p.wait(2, &retryable(Some(10))), Some(Duration::from_millis(10)));
        // Asked to wait longer than we will: give up rather than come back early.
        assert_eq!(p.wait(0, &retryable(Some(60_000))), None);
        for e in [
            BrokerError::UnknownOutcome { message: "x".into() },
            BrokerError::Rejected { reason: "x".into() },
            BrokerError::DuplicateClientOrderId,
            BrokerError::Other("x".into()),
        ] {
            assert_eq!(p.wait(0, &e), None, "{e:?} is not retried");
        }
        // The backoff is capped at 25x the base.
        let p = ReadRetry {
            budget: 40,
            backoff_ms: 10,
        };
        assert_eq!(p.wait(30, &retryable(None)), Some(Duration::from_millis(250)));
    }
}
