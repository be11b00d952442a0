//! Names of keel's Prometheus metrics, shared by the worker (which emits
//! counters and histograms through the `metrics` facade) and the server
//! (which renders them with the store-derived gauges at scrape time).

/// Counter: orders sent to the broker. Label: [`LABEL_SIDE`].
pub const ORDERS_SENT: &str = "keel_orders_sent_total";
/// Counter: orders that reached `filled`. Label: [`LABEL_SIDE`].
pub const ORDERS_FILLED: &str = "keel_orders_filled_total";
/// Counter: fills (executions) recorded. Label: [`LABEL_SIDE`].
pub const FILLS: &str = "keel_fills_total";
/// Counter: orders the broker rejected. Label: [`LABEL_REASON`] (a short,
/// low-cardinality code, not the broker's free text).
pub const ORDERS_REJECTED: &str = "keel_orders_rejected_total";
/// Counter: orders cancelled by keel (stale orders, kill switch). Label: [`LABEL_REASON`].
pub const ORDERS_CANCELED: &str = "keel_orders_canceled_total";
/// Counter: proposed orders a guard blocked. Labels: [`LABEL_GUARD`], [`LABEL_REASON`] (the planner's reason code).
pub const GUARD_BLOCKS: &str = "keel_guard_blocks_total";
/// Counter: proposed orders a guard resized. Labels: [`LABEL_GUARD`], [`LABEL_REASON`].
pub const GUARD_RESIZES: &str = "keel_guard_resizes_total";
/// Counter: cycles run. Label: [`LABEL_OUTCOME`] (`submitted`, `nothing_to_do`, `blocked`, `error`, ...).
pub const CYCLES: &str = "keel_cycles_total";
/// Histogram (seconds): wall time of one execution cycle.
pub const CYCLE_DURATION: &str = "keel_cycle_duration_seconds";
/// Histogram (seconds): latency of one broker request. Label: [`LABEL_OP`].
pub const BROKER_REQUEST_DURATION: &str = "keel_broker_request_duration_seconds";
/// Counter: failed broker requests. Labels: [`LABEL_OP`], [`LABEL_KIND`].
pub const BROKER_ERRORS: &str = "keel_broker_errors_total";
/// Counter: kill-switch engagements. Label: [`LABEL_SOURCE`] (`cli`, `http`, `flag_file`, `automatic`).
pub const KILL_SWITCH_ENGAGEMENTS: &str = "keel_kill_switch_engagements_total";
/// Counter: reconciliations with the broker. Label: [`LABEL_OUTCOME`] (`ok`, `mismatch`).
pub const RECONCILIATIONS: &str = "keel_reconciliations_total";

/// Gauge (scrape time): cash + Σ market value.
pub const EQUITY: &str = "keel_equity";
/// Gauge (scrape time): cash.
pub const CASH: &str = "keel_cash";
/// Gauge (scrape time): Σ |market value|.
pub const GROSS_EXPOSURE: &str = "keel_gross_exposure";
/// Gauge (scrape time): Σ market value.
pub const NET_EXPOSURE: &str = "keel_net_exposure";
/// Gauge (scrape time): Σ unrealized P&L.
pub const UNREALIZED_PNL: &str = "keel_unrealized_pnl";
/// Gauge (scrape time): equity minus the last close before the current session.
pub const DAY_PNL: &str = "keel_day_pnl";
/// Gauge (scrape time): orders that can still fill.
pub const OPEN_ORDERS: &str = "keel_open_orders";
/// Gauge (scrape time): held positions.
pub const POSITIONS: &str = "keel_positions";
/// Gauge (scrape time): 1 when the kill switch is engaged.
pub const KILL_SWITCH_ENGAGED: &str = "keel_kill_switch_engaged";
/// Gauge (scrape time): audit-log head sequence number.
pub const AUDIT_SEQ: &str = "keel_audit_seq";
/// Gauge (scrape time): 1 when the last chain verification passed, 0 when
/// it found a bad row; absent until a verification ran.
pub const AUDIT_CHAIN_OK: &str = "keel_audit_chain_ok";
/// Gauge (scrape time): 1 inside a regular NYSE session.
pub const MARKET_OPEN: &str = "keel_market_open";
/// Gauge (scrape time): 1 when the latest reconciliation agreed; absent before the first.
pub const RECONCILIATION_OK: &str = "keel_reconciliation_ok";
/// Gauge (scrape time): Unix time the latest cycle started; absent before the first.
pub const LAST_CYCLE_START: &str = "keel_last_cycle_start_timestamp_seconds";
/// Gauge (scrape time): Unix time of the latest EOD snapshot's session date (midnight UTC).
pub const LAST_EOD_DATE: &str = "keel_last_eod_date_timestamp_seconds";

/// Counter: operational alerts logged (`Event::Alert`: cycle errors, lease
/// lost or taken over, broker stream down, refused target sets). Label:
/// [`LABEL_KIND`] (an `AlertKind` name). Every kind is registered at zero
/// when the recorder is installed, so alert rules can use `increase()` on it.
pub const ALERTS: &str = "keel_alerts_total";
/// Counter: single-writer lease acquisitions by this process (a rising rate
/// across processes is lease flapping). Label: [`LABEL_ACCOUNT`].
pub const LEASE_ACQUISITIONS: &str = "keel_lease_acquisitions_total";
/// Counter: notification delivery attempts. Labels: [`LABEL_CHANNEL`],
/// [`LABEL_OUTCOME`] (`delivered`, `failed`, `skipped`).
pub const NOTIFICATIONS: &str = "keel_notifications_total";

/// Label: an account id.
pub const LABEL_ACCOUNT: &str = "account";
/// Label: a notification channel's name.
pub const LABEL_CHANNEL: &str = "channel";
/// Label: `buy` / `sell`.
pub const LABEL_SIDE: &str = "side";
/// Label: a stable reason code.
pub const LABEL_REASON: &str = "reason";
/// Label: a guard id.
pub const LABEL_GUARD: &str = "guard";
/// Label: an outcome code.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: a broker operation (`snapshot`, `submit_order`, `cancel_order`, ...).
pub const LABEL_OP: &str = "op";
/// Label: an error class (`timeout`, `http_5xx`, `rejected`, ...).
pub const LABEL_KIND: &str = "kind";
/// Label: who engaged the kill switch.
pub const LABEL_SOURCE: &str = "source";
