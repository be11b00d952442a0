//! Column lists of the projection tables and the conversions between their
//! rows and Rust values, in one place so that loading, writing back and
//! querying a table cannot disagree about its columns.

use crate::codec::{self, fmt_date, fmt_dec, fmt_time};
use crate::conn::{Rd, Val};
use crate::error::StoreError;
use crate::rows::{AccountRow, CycleRow, FillRow, OrderRow, PositionRow};
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{KillSource, OrderStatus};
use rust_decimal::Decimal;

/// `a, b, c` for a column list.
pub(crate) fn cols(c: &[&str]) -> String {
    c.join(", ")
}

/// Columns of `account`; the first is the key (true of every list here).
pub(crate) const ACCOUNT_COLS: &[&str] = &["id", "cash", "opened_at"];

/// Decodes an `account` row.
pub(crate) fn account_row(r: &Rd) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        account_id: r.text(0, "id")?,
        opening_cash: r.dec(1, "cash")?,
        opened_at: r.time(2, "opened_at")?,
    })
}

/// Encodes an `account` row.
pub(crate) fn account_vals(a: &AccountRow) -> Vec<Val> {
    vec![
        Val::t(&a.account_id),
        Val::t(fmt_dec(a.opening_cash)),
        Val::t(fmt_time(a.opened_at)),
    ]
}

/// Columns of `cash` (a single row with id 1).
pub(crate) const CASH_COLS: &[&str] = &["id", "amount"];

/// Columns of `target_sets`.
pub(crate) const TARGET_SET_COLS: &[&str] = &["id", "payload", "status", "queued_at"];

/// A `target_sets` row. The payload is kept as the exact stored text.
#[derive(Debug, Clone)]
pub(crate) struct TargetSetRec {
    pub(crate) id: String,
    pub(crate) payload: String,
    pub(crate) status: String,
    pub(crate) queued_at: String,
}

/// Decodes a `target_sets` row.
pub(crate) fn target_set_rec(r: &Rd) -> Result<TargetSetRec, StoreError> {
    Ok(TargetSetRec {
        id: r.text(0, "id")?,
        payload: r.text(1, "payload")?,
        status: r.text(2, "status")?,
        queued_at: r.text(3, "queued_at")?,
    })
}

/// Encodes a `target_sets` row.
pub(crate) fn target_set_vals(t: &TargetSetRec) -> Vec<Val> {
    vec![
        Val::t(&t.id),
        Val::t(&t.payload),
        Val::t(&t.status),
        Val::t(&t.queued_at),
    ]
}

/// Columns of `cycles`.
pub(crate) const CYCLE_COLS: &[&str] = &[
    "cycle_id",
    "target_set_id",
    "attempt",
    "started_at",
    "finished_at",
    "outcome",
];

/// Decodes a `cycles` row.
pub(crate) fn cycle_row(r: &Rd) -> Result<CycleRow, StoreError> {
    Ok(CycleRow {
        cycle_id: r.text(0, "cycle_id")?,
        target_set_id: r.text(1, "target_set_id")?,
        attempt: r.u32(2, "attempt")?,
        started_at: r.time(3, "started_at")?,
        finished_at: r.opt_time(4, "finished_at")?,
        outcome: r.opt_text(5, "outcome")?,
    })
}

/// Encodes a `cycles` row.
pub(crate) fn cycle_vals(c: &CycleRow) -> Vec<Val> {
    vec![
        Val::t(&c.cycle_id),
        Val::t(&c.target_set_id),
        Val::i(i64::from(c.attempt)),
        Val::t(fmt_time(c.started_at)),
        Val::ot(c.finished_at.map(fmt_time)),
        Val::ot(c.outcome.clone()),
    ]
}

/// Columns of `guard_decisions`.
pub(crate) const GUARD_COLS: &[&str] = &["cycle_id", "decisions"];

/// Columns of `orders`.
pub(crate) const ORDER_COLS: &[&str] = &[
    "client_order_id",
    "cycle_id",
    "symbol",
    "side",
    "qty",
    "order_type",
    "limit_price",
    "tif",
    "status",
    "broker_order_id",
    "filled_qty",
    "avg_fill_price",
    "arrival_price",
    "reason",
    "created_at",
    "updated_at",
    "arrival_spread",
];

/// Decodes an `orders` row.
pub(crate) fn order_row(r: &Rd) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        client_order_id: r.text(0, "client_order_id")?,
        cycle_id: r.text(1, "cycle_id")?,
        symbol: r.symbol(2, "symbol")?,
        side: r.parse(3, "side", codec::parse_side)?,
        qty: r.dec(4, "qty")?,
        order_type: r.parse(5, "order_type", codec::parse_order_type)?,
        limit_price: r.opt_dec(6, "limit_price")?,
        time_in_force: r.parse(7, "tif", codec::parse_tif)?,
        status: r.parse(8, "status", |s| {
            OrderStatus::parse(s).ok_or_else(|| format!("{s:?} is not an order status"))
        })?,
        broker_order_id: r.opt_text(9, "broker_order_id")?,
        filled_qty: r.dec(10, "filled_qty")?,
        avg_fill_price: r.opt_dec(11, "avg_fill_price")?,
        arrival_price: r.dec(12, "arrival_price")?,
        reason: r.opt_text(13, "reason")?,
        created_at: r.time(14, "created_at")?,
        updated_at: r.time(15, "updated_at")?,
        arrival_spread: r.opt_dec(16, "arrival_spread")?,
    })
}

/// Encodes an `orders` row.
pub(crate) fn order_vals(o: &OrderRow) -> Vec<Val> {
    vec![
        Val::t(&o.client_order_id),
        Val::t(&o.cycle_id),
        Val::t(o.symbol.as_str()),
        Val::t(codec::side_str(o.side)),
        Val::t(fmt_dec(o.qty)),
        Val::t(codec::order_type_str(o.order_type)),
        Val::ot(o.limit_price.map(fmt_dec)),
        Val::t(codec::tif_str(o.time_in_force)),
        Val::t(o.status.as_str()),
        Val::ot(o.broker_order_id.clone()),
        Val::t(fmt_dec(o.filled_qty)),
        Val::ot(o.avg_fill_price.map(fmt_dec)),
        Val::t(fmt_dec(o.arrival_price)),
        Val::ot(o.reason.clone()),
        Val::t(fmt_time(o.created_at)),
        Val::t(fmt_time(o.updated_at)),
        Val::ot(o.arrival_spread.map(fmt_dec)),
    ]
}

/// Columns of `fills`.
pub(crate) const FILL_COLS: &[&str] = &[
    "fill_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "at",
    "slippage_bps",
];

/// Decodes a `fills` row.
pub(crate) fn fill_row(r: &Rd) -> Result<FillRow, StoreError> {
    Ok(FillRow {
        fill_id: r.text(0, "fill_id")?,
        client_order_id: r.text(1, "client_order_id")?,
        symbol: r.symbol(2, "symbol")?,
        side: r.parse(3, "side", codec::parse_side)?,
        qty: r.dec(4, "qty")?,
        price: r.dec(5, "price")?,
        at: r.time(6, "at")?,
        slippage_bps: r.opt_dec(7, "slippage_bps")?,
    })
}

/// Encodes a `fills` row.
pub(crate) fn fill_vals(f: &FillRow) -> Vec<Val> {
    vec![
        Val::t(&f.fill_id),
        Val::t(&f.client_order_id),
        Val::t(f.symbol.as_str()),
        Val::t(codec::side_str(f.side)),
        Val::t(fmt_dec(f.qty)),
        Val::t(fmt_dec(f.price)),
        Val::t(fmt_time(f.at)),
        Val::ot(f.slippage_bps.map(fmt_dec)),
    ]
}

/// Columns of `positions`.
pub(crate) const POSITION_COLS: &[&str] = &["symbol", "qty", "avg_cost"];

/// Decodes a `positions` row (without its symbol).
pub(crate) fn position_row(r: &Rd) -> Result<PositionRow, StoreError> {
    Ok(PositionRow {
        qty: r.dec(1, "qty")?,
        avg_cost: r.dec(2, "avg_cost")?,
    })
}

/// Encodes a `positions` row.
pub(crate) fn position_vals(symbol: &str, p: &PositionRow) -> Vec<Val> {
    vec![
        Val::t(symbol),
        Val::t(fmt_dec(p.qty)),
        Val::t(fmt_dec(p.avg_cost)),
    ]
}

/// Columns of `kill_switch` (a single row with id 1).
pub(crate) const KILL_COLS: &[&str] = &["id", "engaged", "reason", "source", "at"];

/// The `kill_switch` row: the last engagement or release.
#[derive(Debug, Clone)]
pub(crate) struct KillRec {
    pub(crate) engaged: bool,
    pub(crate) reason: String,
    pub(crate) source: KillSource,
    pub(crate) at: DateTime<Utc>,
}

/// Decodes the `kill_switch` row.
pub(crate) fn kill_rec(r: &Rd) -> Result<KillRec, StoreError> {
    Ok(KillRec {
        engaged: r.int(1, "engaged")? != 0,
        reason: r.text(2, "reason")?,
        source: r.parse(3, "source", codec::parse_kill_source)?,
        at: r.time(4, "at")?,
    })
}

/// Encodes the `kill_switch` row.
pub(crate) fn kill_vals(k: &KillRec) -> Vec<Val> {
    vec![
        Val::i(1),
        Val::i(i64::from(k.engaged)),
        Val::t(&k.reason),
        Val::t(codec::kill_source_str(k.source)),
        Val::t(fmt_time(k.at)),
    ]
}

/// Columns of `reconciliations` (a single row with id 1).
pub(crate) const RECON_COLS: &[&str] = &["id", "ok", "differences", "at"];

/// Columns of `eod_snapshots`.
pub(crate) const EOD_COLS: &[&str] = &["date", "snapshot", "equity", "cash", "gross", "net", "day_pnl"];

/// An `eod_snapshots` row; the snapshot is the event's exact JSON text.
#[derive(Debug, Clone)]
pub(crate) struct EodRec {
    pub(crate) date: NaiveDate,
    pub(crate) snapshot: String,
    pub(crate) equity: Decimal,
    pub(crate) cash: Decimal,
    pub(crate) gross: Decimal,
    pub(crate) net: Decimal,
    pub(crate) day_pnl: Decimal,
}

/// Encodes an `eod_snapshots` row.
pub(crate) fn eod_vals(e: &EodRec) -> Vec<Val> {
    vec![
        Val::t(fmt_date(e.date)),
        Val::t(&e.snapshot),
        Val::t(fmt_dec(e.equity)),
        Val::t(fmt_dec(e.cash)),
        Val::t(fmt_dec(e.gross)),
        Val::t(fmt_dec(e.net)),
        Val::t(fmt_dec(e.day_pnl)),
    ]
}
