//! The embedded paper broker: a simulated venue on its own SQLite file.
//!
//! * **Crash-safe like a real venue.** Cash, positions, orders, fills, the
//!   event stream, the submission log and the fault counters live in a SQLite
//!   file (WAL, `synchronous=FULL`); every call's effects are committed in one
//!   transaction before the call returns, so a `kill -9` of the process loses
//!   nothing the venue has acknowledged — and, as with a real venue, an order
//!   whose answer was lost is still there.
//! * **Deterministic.** Prices come from [`crate::universe`] with the
//!   configured seed; fills, partial fills and expiries are scheduled at
//!   instants derived from the order and the clock, and processed lazily on
//!   every call up to `clock.now()`, in time order. The outcome therefore
//!   depends only on the seed and the sequence of (call, clock) pairs — not
//!   on wall time or on how often anyone polls.
//! * **Matching.** Market orders fill at the ask (buys) or bid (sells) moved
//!   against the trader by `slippage_bps`, rounded to cents. Limit orders fill
//!   at that price capped by the limit, only when marketable (buy: ask ≤
//!   limit; sell: bid ≥ limit); otherwise they rest and are re-checked every
//!   whole minute of the session. With probability `partial_fill_prob` an
//!   order's first fill is partial (20–80 % of it, whole shares), and the rest
//!   is executed `fill_delay_secs` later (if still marketable). Orders
//!   received while the market is closed work from the next open. DAY orders
//!   expire at the close of the session they work in; IOC orders cancel
//!   whatever is not filled on arrival; GTC orders work until cancelled.
//! * **Pre-trade checks.** Buys must fit in buying power (cash less what open
//!   buys reserve at their limit, or at the current ask plus slippage for
//!   market orders; no margin). Sells must not exceed the held quantity less
//!   open sells, unless `allow_short`. Failed checks produce a rejected order
//!   (findable by client order id, with a `Rejected` event) and
//!   [`BrokerError::Rejected`].
//! * **Duplicates.** A submit whose client order id the venue already has
//!   fails with [`BrokerError::DuplicateClientOrderId`] and changes nothing.
//!   Every submit that reached order handling is counted per client order id
//!   ([`PaperBroker::submissions_received`]); submits refused before that
//!   (injected timeout-before-send, 429, 5xx) are not, because they were
//!   never processed and retrying them with the same id is correct.
//! * **Faults.** [`FaultConfig`] injects failures with probabilities decided
//!   by hashing (seed, operation, client order id, persisted call counter),
//!   so a run reproduces exactly, across restarts too.

mod sim;
mod store;

use crate::{universe, AssetFacts, Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder, MarketData};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Clock, OpenOrder, Order, OrderStatus, Position, Quote, Symbol};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sim::{State, Work};
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, MutexGuard};

/// Injected failures. Every probability is in `[0, 1]`; all are 0 by default.
///
/// Pre-send faults (`timeout_before_send`, `rate_limited`, `server_error`)
/// apply to every venue call and mean the request was not processed
/// ([`BrokerError::Retryable`]). `timeout_after_send` applies to `submit` and
/// `cancel`: the request *is* processed and persisted, but the caller gets
/// [`BrokerError::UnknownOutcome`]. `reject` makes a submit be rejected.
/// `drop_event` / `duplicate_event` make an event missing from, or appear
/// twice in, the event stream (order state itself stays correct).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Request times out before it is sent → `Retryable`.
    #[schemars(range(min = 0, max = 1))]
    pub timeout_before_send: f64,
    /// Request processed, answer lost → `UnknownOutcome` (submit, cancel).
    #[schemars(range(min = 0, max = 1))]
    pub timeout_after_send: f64,
    /// 5xx before processing → `Retryable`.
    #[schemars(range(min = 0, max = 1))]
    pub server_error: f64,
    /// 429 → `Retryable` with `retry_after` of one second.
    #[schemars(range(min = 0, max = 1))]
    pub rate_limited: f64,
    /// Submit rejected by the venue → `Rejected`.
    #[schemars(range(min = 0, max = 1))]
    pub reject: f64,
    /// An event never reaches the stream.
    #[schemars(range(min = 0, max = 1))]
    pub drop_event: f64,
    /// An event appears twice in the stream.
    #[schemars(range(min = 0, max = 1))]
    pub duplicate_event: f64,
    /// Latency added to every venue call, in milliseconds.
    #[schemars(range(min = 0, max = 10000))]
    pub delay_ms: u64,
}

impl FaultConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("timeout_before_send", self.timeout_before_send),
            ("timeout_after_send", self.timeout_after_send),
            ("server_error", self.server_error),
            ("rate_limited", self.rate_limited),
            ("reject", self.reject),
            ("drop_event", self.drop_event),
            ("duplicate_event", self.duplicate_event),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("faults.{name} must be a probability in [0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// Upper bound of [`PaperConfig::fill_delay_secs`]: one week.
pub const MAX_FILL_DELAY_SECS: u64 = 7 * 24 * 3600;

/// Paper broker settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Account id reported by the venue; the file refuses to open under another id.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,48}$"))]
    pub account_id: String,
    /// Cash when the file is created (ignored when reopening).
    #[schemars(range(max = 1_000_000_000_000_i64), extend("exclusiveMinimum" = 0))]
    pub initial_cash: Decimal,
    /// Seed of the synthetic market and of every random decision; the file
    /// refuses to open with another seed.
    pub seed: u64,
    /// Adverse slippage applied to fills, in basis points of the touch.
    #[schemars(range(min = 0, max = 1000))]
    pub slippage_bps: Decimal,
    /// Probability that an order's first fill is partial.
    #[schemars(range(min = 0, max = 1))]
    pub partial_fill_prob: f64,
    /// Delay after a partial fill before the remainder executes, in seconds
    /// (1 to [`MAX_FILL_DELAY_SECS`]; 0 is treated as 1).
    #[schemars(range(min = 0, max = MAX_FILL_DELAY_SECS))]
    pub fill_delay_secs: u64,
    /// Allow sells beyond the held quantity (opening shorts).
    pub allow_short: bool,
    /// Injected failures.
    pub faults: FaultConfig,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            account_id: "paper".to_string(),
            initial_cash: Decimal::from(1_000_000),
            seed: 42,
            slippage_bps: Decimal::TWO,
            partial_fill_prob: 0.2,
            fill_delay_secs: 60,
            allow_short: false,
            faults: FaultConfig::default(),
        }
    }
}

impl PaperConfig {
    fn validate(&self) -> Result<(), String> {
        if self.account_id.is_empty() {
            return Err("account_id must not be empty".into());
        }
        if self.initial_cash < Decimal::ZERO {
            return Err(format!(
                "initial_cash must not be negative, got {}",
                self.initial_cash
            ));
        }
        if self.slippage_bps < Decimal::ZERO {
            return Err(format!(
                "slippage_bps must not be negative, got {}",
                self.slippage_bps
            ));
        }
        if !(0.0..=1.0).contains(&self.partial_fill_prob) {
            return Err(format!(
                "partial_fill_prob must be a probability in [0, 1], got {}",
                self.partial_fill_prob
            ));
        }
        if self.fill_delay_secs > MAX_FILL_DELAY_SECS {
            return Err(format!(
                "fill_delay_secs must be at most {MAX_FILL_DELAY_SECS} (a week), got {}",
                self.fill_delay_secs
            ));
        }
        self.faults.validate()
    }
}

/// The venue's books at one instant, from [`PaperBroker::inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperLedger {
    /// Account cash.
    pub cash: Decimal,
    /// Non-zero positions, by symbol.
    pub positions: Vec<Position>,
    /// Working orders, in submission order.
    pub open_orders: Vec<BrokerOrder>,
}

/// The embedded, deterministic, crash-safe paper venue. See the module docs.
pub struct PaperBroker {
    pool: SqlitePool,
    cfg: PaperConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for PaperBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperBroker")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl PaperBroker {
    /// Opens (creating if missing) the venue file at `path`. A new file starts
    /// with `cfg.initial_cash`; an existing one resumes exactly where it was,
    /// and must have been created with the same `account_id` and `seed`.
    pub async fn open(path: &Path, cfg: PaperConfig, clock: Arc<dyn Clock>) -> Result<Self, BrokerError> {
        cfg.validate()
            .map_err(|e| BrokerError::Other(format!("paper broker config: {e}")))?;
        let pool = store::connect(path).await?;
        let state = store::load_or_init(&pool, &cfg, clock.now(), path).await?;
        Ok(Self {
            pool,
            cfg,
            clock,
            state: Mutex::new(state),
        })
    }

    /// A venue on a private in-memory database: the same engine with no file
    /// and no fsync, for simulations that run thousands of sessions. Nothing
    /// survives dropping it, so it cannot be reopened.
    pub async fn open_in_memory(cfg: PaperConfig, clock: Arc<dyn Clock>) -> Result<Self, BrokerError> {
        cfg.validate()
            .map_err(|e| BrokerError::Other(format!("paper broker config: {e}")))?;
        let pool = store::connect_in_memory().await?;
        let state = store::load_or_init(&pool, &cfg, clock.now(), Path::new(":memory:")).await?;
        Ok(Self {
            pool,
            cfg,
            clock,
            state: Mutex::new(state),
        })
    }

    /// The configuration this venue was opened with (faults as at open).
    pub fn config(&self) -> &PaperConfig {
        &self.cfg
    }

    /// Replaces the injected faults from the next call on (e.g. a chaos window
    /// in a simulation). Not persisted: reopening uses the config's faults.
    pub async fn set_faults(&self, faults: FaultConfig) -> Result<(), BrokerError> {
        faults
            .validate()
            .map_err(|e| BrokerError::Other(format!("paper broker config: {e}")))?;
        self.state.lock().await.faults = faults;
        Ok(())
    }

    /// Every client order id whose submit reached order handling, with how
    /// many times it did, in order of first receipt. A correct client never
    /// shows a count above 1. Inspection only: no faults, no time processing.
    pub async fn submissions_received(&self) -> Result<Vec<(String, u32)>, BrokerError> {
        let _g = self.state.lock().await;
        store::submissions(&self.pool).await
    }

    /// Every order the venue has (accepted or rejected, open or final) in
    /// submission order, after processing up to `clock.now()`. Inspection
    /// only: no faults, does not advance the fault counter.
    pub async fn orders(&self) -> Result<Vec<BrokerOrder>, BrokerError> {
        let (mut g, w) = self.begin("orders", "", false).await?;
        self.persist(&mut g, w).await?;
        store::all_orders(&self.pool).await
    }

    /// Cash, positions and working orders after processing up to
    /// `clock.now()`, read from memory: cheap enough to call after every step
    /// of a simulation. Inspection only, like [`PaperBroker::orders`]: no
    /// faults, does not advance the fault counter.
    pub async fn inspect(&self) -> Result<PaperLedger, BrokerError> {
        // Processing up to now happens on a copy that is neither persisted nor
        // published: the next real call processes the same instants the same
        // way, so looking changes nothing, not even the database.
        let (_g, w) = self.begin("inspect", "", false).await?;
        Ok(PaperLedger {
            cash: w.st.cash,
            positions: w.st.positions.values().cloned().collect(),
            open_orders: w.st.open.values().map(|o| o.order.clone()).collect(),
        })
    }

    /// Closes the database cleanly (checkpointing the WAL). Dropping the
    /// broker without closing is also safe: every call already committed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a call: serialises with other calls, counts it (venue calls
    /// only), processes fills and expiries due by now, and applies pre-send
    /// faults (whose effects — the counter and processing — are persisted).
    async fn begin(
        &self,
        op: &str,
        key: &str,
        venue_call: bool,
    ) -> Result<(MutexGuard<'_, State>, Work<'_>), BrokerError> {
        let mut guard = self.state.lock().await;
        let delay = guard.faults.delay_ms;
        if venue_call && delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let mut w = Work::new(&self.cfg, guard.clone(), self.clock.now());
        if venue_call {
            w.tick();
        }
        w.process();
        if venue_call {
            if let Some(e) = w.pre_send_fault(op, key) {
                self.persist(&mut guard, w).await?;
                return Err(e);
            }
        }
        Ok((guard, w))
    }

    /// Commits a call's changes, then publishes its state.
    async fn persist(&self, guard: &mut MutexGuard<'_, State>, w: Work<'_>) -> Result<(), BrokerError> {
        let Work { st, ch, now, .. } = w;
        store::persist(&self.pool, &st, &ch, now).await?;
        **guard = st;
        Ok(())
    }

    /// End date (exclusive) for "closes of completed sessions" at `now`.
    fn closes_end(now: DateTime<Utc>) -> NaiveDate {
        let d = now.date_naive();
        match keel_calendar::session(d) {
            Some(s) if now >= s.close => d.succ_opt().unwrap_or(d),
            _ => d,
        }
    }
}

#[async_trait]
impl Broker for PaperBroker {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        let (mut g, w) = self.begin("account", "", true).await?;
        let out = w.account();
        self.persist(&mut g, w).await?;
        Ok(out)
    }

    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        let (mut g, w) = self.begin("positions", "", true).await?;
        let out = w.positions();
        self.persist(&mut g, w).await?;
        Ok(out)
    }

    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        let (mut g, w) = self.begin("open_orders", "", true).await?;
        let out = w.open_orders();
        self.persist(&mut g, w).await?;
        Ok(out)
    }

    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        let key = order.client_order_id.as_str();
        let (mut g, mut w) = self.begin("submit", key, true).await?;
        w.record_submission(key);
        let duplicate = store::order_exists(&self.pool, key).await?;
        let out = if duplicate { None } else { Some(w.submit(order)) };
        let lost = w.lost_answer("submit", key);
        self.persist(&mut g, w).await?;
        if lost {
            return Err(BrokerError::UnknownOutcome {
                message: format!(
                    "submit {key}: timed out waiting for the venue's answer after sending (injected)"
                ),
            });
        }
        match out {
            None => Err(BrokerError::DuplicateClientOrderId),
            Some(o) if o.status == OrderStatus::Rejected => Err(BrokerError::Rejected {
                reason: o.reason.unwrap_or_else(|| "rejected".to_string()),
            }),
            Some(o) => Ok(o),
        }
    }

    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError> {
        let (mut g, mut w) = self.begin("cancel", client_order_id, true).await?;
        if w.cancel_open(client_order_id) {
            let lost = w.lost_answer("cancel", client_order_id);
            self.persist(&mut g, w).await?;
            if lost {
                return Err(BrokerError::UnknownOutcome {
                    message: format!(
                        "cancel {client_order_id}: timed out waiting for the venue's answer after sending (injected)"
                    ),
                });
            }
            return Ok(());
        }
        self.persist(&mut g, w).await?;
        match store::order_by_client_id(&self.pool, client_order_id).await? {
            None => Err(BrokerError::Rejected {
                reason: format!("cancel {client_order_id}: no such order"),
            }),
            Some(o) if o.status == OrderStatus::Filled => Err(BrokerError::Rejected {
                reason: format!("cancel {client_order_id}: order already filled"),
            }),
            Some(_) => Ok(()),
        }
    }

    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let (mut g, w) = self.begin("order_by_client_id", client_order_id, true).await?;
        let open = w.open_by_client_id(client_order_id).map(|o| o.order.clone());
        self.persist(&mut g, w).await?;
        match open {
            Some(o) => Ok(Some(o)),
            None => store::order_by_client_id(&self.pool, client_order_id).await,
        }
    }

    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        let (mut g, w) = self.begin("events_since", "", true).await?;
        self.persist(&mut g, w).await?;
        store::events_since(&self.pool, cursor).await
    }
}

#[async_trait]
impl MarketData for PaperBroker {
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        let (mut g, w) = self.begin("quotes", "", true).await?;
        let now = w.now;
        self.persist(&mut g, w).await?;
        Ok(symbols
            .iter()
            .filter_map(|s| universe::quote(self.cfg.seed, s, now).map(|q| (s.clone(), q)))
            .collect())
    }

    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        let (mut g, w) = self.begin("daily_closes", symbol.as_str(), true).await?;
        let end = Self::closes_end(w.now);
        self.persist(&mut g, w).await?;
        Ok(universe::daily_closes(self.cfg.seed, symbol, end, n))
    }

    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        let (mut g, w) = self.begin("adv", "", true).await?;
        self.persist(&mut g, w).await?;
        Ok(symbols
            .iter()
            .filter_map(|s| universe::adv(s).map(|a| (s.clone(), a)))
            .collect())
    }

    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        // The paper venue trades whole and fractional shares of every symbol it quotes.
        Ok(symbols
            .iter()
            .filter(|s| universe::adv(s).is_some())
            .map(|s| {
                let facts = AssetFacts {
                    tradable: true,
                    fractionable: true,
                    shortable: self.cfg.allow_short,
                };
                (s.clone(), facts)
            })
            .collect())
    }
}
