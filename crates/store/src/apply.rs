//! The one place where events change projection tables.
//!
//! A batch of events is applied in three steps inside the caller's
//! transaction: load every projection row the batch can touch (a few
//! `IN (...)` queries), apply the events in order to those rows in memory
//! ([`Working::apply`], plain synchronous code), and write the changed rows
//! back (one multi-row upsert per table). Both the live append path and
//! `rebuild_projections` go through [`apply_batch`], so the projections are by
//! construction a pure function of the log (invariant 6), and a batch of 100
//! events costs about ten round trips to the database instead of several
//! hundred.

use crate::codec::fmt_time;
use crate::conn::{exec, fetch, fetch_one, Conn, Rd, Val};
use crate::error::StoreError;
use crate::rows::{AccountRow, CycleRow, FillRow, OrderRow, PositionRow};
use crate::tables::*;
use chrono::{DateTime, Utc};
use keel_domain::{Event, OrderStatus, Side};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::{BTreeMap, BTreeSet};

/// Every projection table, in the order `rebuild_projections` clears them.
pub(crate) const PROJECTION_TABLES: &[&str] = &[
    "account",
    "cash",
    "target_sets",
    "cycles",
    "guard_decisions",
    "orders",
    "fills",
    "positions",
    "kill_switch",
    "eod_snapshots",
    "reconciliations",
];

/// Bound parameters per statement: below SQLite's default limit of 32,766
/// (PostgreSQL allows 65,535).
const MAX_PARAMS: usize = 30_000;

/// Rows per multi-row statement, so statements stay a reasonable size.
const MAX_ROWS: usize = 500;

/// Rows per statement for a table with `ncols` columns.
pub(crate) fn rows_per_statement(ncols: usize) -> usize {
    (MAX_PARAMS / ncols.max(1)).clamp(1, MAX_ROWS)
}

/// `INSERT INTO table (cols) VALUES ($1, ...), ...` for `nrows` rows, with
/// `ON CONFLICT (first column) DO UPDATE` of every other column when `upsert`.
pub(crate) fn insert_sql(table: &str, columns: &[&str], nrows: usize, upsert: bool) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols(columns));
    let mut n = 0;
    for r in 0..nrows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns.len() {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    if upsert {
        let set: Vec<String> = columns[1..]
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        sql.push_str(&format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            columns[0],
            set.join(", ")
        ));
    }
    sql
}

/// `$1, $2, ... $n`.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A projection row as loaded (`None`: absent) and whether the batch changed it.
#[derive(Debug)]
struct Slot<T> {
    row: Option<T>,
    dirty: bool,
}

impl<T> Slot<T> {
    fn loaded(row: Option<T>) -> Self {
        Self { row, dirty: false }
    }

    fn set(&mut self, row: Option<T>) {
        self.row = row;
        self.dirty = true;
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::loaded(None)
    }
}

/// The slot for `key`. Rows a batch only inserts are not loaded (their keys
/// are event ids, which the audit log already made unique), so a missing key
/// means "absent".
fn slot<'m, T>(map: &'m mut BTreeMap<String, Slot<T>>, key: &str) -> &'m mut Slot<T> {
    map.entry(key.to_string()).or_default()
}

/// How a replay treats an event that updates a row it does not hold.
#[derive(Debug, Default)]
struct Updates {
    /// A replay that started from a verified state, which holds only the
    /// rows later events can still change: a row an event updates but that
    /// is not here may have been left out rather than never have existed.
    partial: bool,
    /// The first such row (`table key`): the partial replay cannot be trusted.
    missed: Option<String>,
}

impl Updates {
    /// The slot of a row an event updates (absent rows stay absent); in a
    /// partial replay a miss is recorded.
    fn existing<'m, T>(
        &mut self,
        map: &'m mut BTreeMap<String, Slot<T>>,
        table: &str,
        key: &str,
    ) -> &'m mut Slot<T> {
        let s = map.entry(key.to_string()).or_default();
        if self.partial && s.row.is_none() && self.missed.is_none() {
            self.missed = Some(format!("{table} {key}"));
        }
        s
    }
}

/// Which existing rows a batch reads before it can be applied.
#[derive(Default)]
struct Needs {
    account: bool,
    cash: bool,
    kill: bool,
    target_sets: BTreeSet<String>,
    cycles: BTreeSet<String>,
    orders: BTreeSet<String>,
    positions: BTreeSet<String>,
}

impl Needs {
    fn of<'e>(evs: impl Iterator<Item = &'e Event>) -> Self {
        let mut n = Needs::default();
        for ev in evs {
            match ev {
                Event::AccountOpened { .. } => {
                    n.account = true;
                    n.cash = true;
                }
                Event::CycleStarted { target_set_id, .. }
                | Event::TargetSetCompleted { target_set_id, .. }
                | Event::TargetSetSuperseded { target_set_id, .. } => {
                    n.target_sets.insert(target_set_id.clone());
                }
                Event::CycleFinished { cycle_id, .. } => {
                    n.cycles.insert(cycle_id.clone());
                }
                Event::OrderAccepted { client_order_id, .. } | Event::OrderClosed { client_order_id, .. } => {
                    n.orders.insert(client_order_id.clone());
                }
                Event::OrderFilled {
                    client_order_id,
                    symbol,
                    ..
                } => {
                    n.orders.insert(client_order_id.clone());
                    n.positions.insert(symbol.to_string());
                    n.cash = true;
                }
                Event::KillSwitchEngaged { .. } => n.kill = true,
                Event::TargetSetQueued { .. }
                | Event::GuardDecisions { .. }
                | Event::OrderIntent { .. }
                | Event::KillSwitchReleased { .. }
                | Event::Reconciled { .. }
                | Event::TradingBlocked { .. }
                | Event::EodSnapshot { .. }
                | Event::Alert { .. } => {}
            }
        }
        n
    }
}

/// The projection rows one batch reads and writes.
#[derive(Default)]
pub(crate) struct Working {
    /// The tracked account (the first opened).
    account: Slot<AccountRow>,
    cash: Slot<Decimal>,
    target_sets: BTreeMap<String, Slot<TargetSetRec>>,
    cycles: BTreeMap<String, Slot<CycleRow>>,
    /// Inserted only.
    decisions: BTreeMap<String, String>,
    orders: BTreeMap<String, Slot<OrderRow>>,
    /// Inserted only.
    fills: BTreeMap<String, FillRow>,
    positions: BTreeMap<String, Slot<PositionRow>>,
    kill: Slot<KillRec>,
    /// Overwritten, never read: the latest reconciliation as (ok, differences JSON, at).
    recon: Option<(bool, String, DateTime<Utc>)>,
    /// Inserted only, by date.
    eods: BTreeMap<String, EodRec>,
    /// Updates of rows it does not hold (a replay from a verified state).
    updates: Updates,
}

/// Applies events (with their ids, for error messages) to the projections.
pub(crate) async fn apply_batch<C: Conn + ?Sized>(
    c: &mut C,
    evs: &[(&Event, &str)],
) -> Result<(), StoreError> {
    let mut w = Working::load(c, &Needs::of(evs.iter().map(|(e, _)| *e))).await?;
    for (ev, id) in evs {
        w.apply(ev, id)?;
    }
    w.flush(c).await
}

/// Loads the rows of `table` whose key is in `keys`.
async fn load_keyed<C: Conn + ?Sized, T>(
    c: &mut C,
    table: &'static str,
    columns: &[&str],
    keys: &BTreeSet<String>,
    decode: fn(&crate::conn::Rd) -> Result<T, StoreError>,
) -> Result<BTreeMap<String, Slot<T>>, StoreError> {
    let mut out = BTreeMap::new();
    let keys: Vec<&String> = keys.iter().collect();
    for chunk in keys.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT {} FROM {table} WHERE {} IN ({})",
            cols(columns),
            columns[0],
            placeholders(chunk.len())
        );
        let args: Vec<Val> = chunk.iter().map(|k| Val::t(k.as_str())).collect();
        for r in fetch(c, table, &format!("loading {table}"), &sql, &args).await? {
            out.insert(r.text(0, "key")?, Slot::loaded(Some(decode(&r)?)));
        }
    }
    Ok(out)
}

/// Writes `rows` with multi-row upserts.
async fn upsert<C: Conn + ?Sized>(
    c: &mut C,
    table: &'static str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> Result<(), StoreError> {
    let per = rows_per_statement(columns.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        // Moved, not cloned: these are the bulk of a batch's bytes.
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per).collect();
        let sql = insert_sql(table, columns, chunk.len(), true);
        let args: Vec<Val> = chunk.into_iter().flatten().collect();
        exec(c, &format!("writing {table}"), &sql, &args).await?;
    }
    Ok(())
}

/// The changed rows of a keyed map, encoded.
fn dirty_rows<T>(map: &BTreeMap<String, Slot<T>>, encode: impl Fn(&str, &T) -> Vec<Val>) -> Vec<Vec<Val>> {
    map.iter()
        .filter(|(_, s)| s.dirty)
        .filter_map(|(k, s)| s.row.as_ref().map(|r| encode(k, r)))
        .collect()
}

impl Working {
    /// Reads every row the batch described by `n` can touch.
    async fn load<C: Conn + ?Sized>(c: &mut C, n: &Needs) -> Result<Working, StoreError> {
        let mut w = Working::default();
        if n.account {
            let sql = format!(
                "SELECT {} FROM account ORDER BY opened_at LIMIT 1",
                cols(ACCOUNT_COLS)
            );
            let row = fetch_one(c, "account", "loading account", &sql, &[]).await?;
            w.account = Slot::loaded(row.as_ref().map(account_row).transpose()?);
        }
        if n.cash {
            let row = fetch_one(
                c,
                "cash",
                "loading cash",
                "SELECT id, amount FROM cash WHERE id = 1",
                &[],
            )
            .await?;
            w.cash = Slot::loaded(row.map(|r| r.dec(1, "amount")).transpose()?);
        }
        if n.kill {
            let sql = format!("SELECT {} FROM kill_switch WHERE id = 1", cols(KILL_COLS));
            let row = fetch_one(c, "kill_switch", "loading kill switch", &sql, &[]).await?;
            w.kill = Slot::loaded(row.as_ref().map(kill_rec).transpose()?);
        }
        w.target_sets = load_keyed(c, "target_sets", TARGET_SET_COLS, &n.target_sets, target_set_rec).await?;
        w.cycles = load_keyed(c, "cycles", CYCLE_COLS, &n.cycles, cycle_row).await?;
        w.orders = load_keyed(c, "orders", ORDER_COLS, &n.orders, order_row).await?;
        w.positions = load_keyed(c, "positions", POSITION_COLS, &n.positions, position_row).await?;
        Ok(w)
    }

    /// Writes back every row the batch changed.
    async fn flush<C: Conn + ?Sized>(self, c: &mut C) -> Result<(), StoreError> {
        if self.account.dirty {
            if let Some(a) = &self.account.row {
                upsert(c, "account", ACCOUNT_COLS, vec![account_vals(a)]).await?;
            }
        }
        if self.cash.dirty {
            if let Some(amount) = self.cash.row {
                upsert(
                    c,
                    "cash",
                    CASH_COLS,
                    vec![vec![Val::i(1), Val::t(amount.to_string())]],
                )
                .await?;
            }
        }
        upsert(
            c,
            "target_sets",
            TARGET_SET_COLS,
            dirty_rows(&self.target_sets, |_, t| target_set_vals(t)),
        )
        .await?;
        upsert(
            c,
            "cycles",
            CYCLE_COLS,
            dirty_rows(&self.cycles, |_, r| cycle_vals(r)),
        )
        .await?;
        let decisions = self
            .decisions
            .iter()
            .map(|(k, v)| vec![Val::t(k), Val::t(v)])
            .collect();
        upsert(c, "guard_decisions", GUARD_COLS, decisions).await?;
        upsert(
            c,
            "orders",
            ORDER_COLS,
            dirty_rows(&self.orders, |_, o| order_vals(o)),
        )
        .await?;
        upsert(
            c,
            "fills",
            FILL_COLS,
            self.fills.values().map(fill_vals).collect(),
        )
        .await?;
        upsert(
            c,
            "positions",
            POSITION_COLS,
            dirty_rows(&self.positions, position_vals),
        )
        .await?;
        // A position that went flat has no row.
        let flat: Vec<&String> = self
            .positions
            .iter()
            .filter(|(_, s)| s.dirty && s.row.is_none())
            .map(|(k, _)| k)
            .collect();
        for chunk in flat.chunks(rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM positions WHERE symbol IN ({})",
                placeholders(chunk.len())
            );
            let args: Vec<Val> = chunk.iter().map(|k| Val::t(k.as_str())).collect();
            exec(c, "deleting flat positions", &sql, &args).await?;
        }
        if self.kill.dirty {
            if let Some(k) = &self.kill.row {
                upsert(c, "kill_switch", KILL_COLS, vec![kill_vals(k)]).await?;
            }
        }
        if let Some(row) = recon_vals(&self.recon) {
            upsert(c, "reconciliations", RECON_COLS, vec![row]).await?;
        }
        upsert(
            c,
            "eod_snapshots",
            EOD_COLS,
            self.eods.values().map(eod_vals).collect(),
        )
        .await?;
        Ok(())
    }

    /// Applies one event to the loaded rows. `event_id` is for error messages.
    fn apply(&mut self, ev: &Event, event_id: &str) -> Result<(), StoreError> {
        let encode_err = |source| StoreError::Encode {
            event_id: event_id.to_string(),
            source,
        };
        match ev {
            Event::AccountOpened { account_id, cash, at } => {
                if let Some(existing) = &self.account.row {
                    if &existing.account_id != account_id {
                        // One store tracks one broker account: pointing keel at a
                        // different account with the old store must fail closed.
                        return Err(StoreError::Refused {
                            event_id: event_id.to_string(),
                            why: format!(
                                "store already tracks account {:?}, not {account_id:?}",
                                existing.account_id
                            ),
                        });
                    }
                }
                self.account.set(Some(AccountRow {
                    account_id: account_id.clone(),
                    opening_cash: *cash,
                    opened_at: *at,
                }));
                self.add_cash(*cash);
            }
            Event::TargetSetQueued { set, at } => {
                let payload = serde_json::to_string(set).map_err(encode_err)?;
                slot(&mut self.target_sets, &set.id).set(Some(TargetSetRec {
                    id: set.id.clone(),
                    payload,
                    status: "queued".to_string(),
                    queued_at: fmt_time(*at),
                }));
            }
            Event::CycleStarted {
                cycle_id,
                target_set_id,
                attempt,
                at,
            } => {
                slot(&mut self.cycles, cycle_id).set(Some(CycleRow {
                    cycle_id: cycle_id.clone(),
                    target_set_id: target_set_id.clone(),
                    attempt: *attempt,
                    started_at: *at,
                    finished_at: None,
                    outcome: None,
                }));
                let s = self
                    .updates
                    .existing(&mut self.target_sets, "target_sets", target_set_id);
                if let Some(t) = s.row.as_mut().filter(|t| t.status == "queued") {
                    t.status = "executing".to_string();
                    s.dirty = true;
                }
            }
            Event::GuardDecisions {
                cycle_id, decisions, ..
            } => {
                self.decisions.insert(cycle_id.clone(), decisions.to_string());
            }
            Event::OrderIntent {
                cycle_id,
                order,
                arrival_price,
                arrival_spread,
                at,
            } => {
                slot(&mut self.orders, &order.client_order_id).set(Some(OrderRow {
                    client_order_id: order.client_order_id.clone(),
                    cycle_id: cycle_id.clone(),
                    symbol: order.symbol.clone(),
                    side: order.side,
                    qty: order.qty,
                    order_type: order.order_type,
                    limit_price: order.limit_price,
                    time_in_force: order.time_in_force,
                    status: OrderStatus::Intent,
                    broker_order_id: None,
                    filled_qty: Decimal::ZERO,
                    avg_fill_price: None,
                    arrival_price: *arrival_price,
                    arrival_spread: *arrival_spread,
                    reason: None,
                    created_at: *at,
                    updated_at: *at,
                }));
            }
            Event::OrderAccepted {
                client_order_id,
                broker_order_id,
                at,
            } => {
                let s = self.updates.existing(&mut self.orders, "orders", client_order_id);
                if let Some(o) = s.row.as_mut() {
                    o.broker_order_id = Some(broker_order_id.clone());
                    o.updated_at = *at;
                    // An ack can arrive after fills or a cancel (streams
                    // reorder), so it only moves an order out of `intent`.
                    if o.status == OrderStatus::Intent {
                        o.status = OrderStatus::Accepted;
                    }
                    s.dirty = true;
                }
            }
            Event::OrderFilled {
                client_order_id,
                fill_id,
                symbol,
                side,
                qty,
                price,
                at,
            } => {
                if *qty <= Decimal::ZERO || *price <= Decimal::ZERO {
                    return Err(StoreError::Refused {
                        event_id: event_id.to_string(),
                        why: format!("fill quantity {qty} and price {price} must both be positive"),
                    });
                }
                // A fill for an order keel does not know (placed by hand at the
                // broker) still moved shares and cash, so it is recorded and
                // applied to the position and cash; only the order update and
                // slippage are skipped.
                let mut slippage = None;
                let s = self.updates.existing(&mut self.orders, "orders", client_order_id);
                if let Some(o) = s.row.as_mut() {
                    slippage = slippage_bps(*side, *price, o.arrival_price);
                    let filled = o.filled_qty + qty;
                    let avg = o.avg_fill_price.unwrap_or_default();
                    o.avg_fill_price = Some(((avg * o.filled_qty + price * qty) / filled).normalize());
                    o.filled_qty = filled.normalize();
                    o.status = if filled >= o.qty {
                        OrderStatus::Filled
                    } else if o.status.is_final() {
                        // A late report of a fill made before the cancel or
                        // expiry: the quantity counts, the final status stands.
                        o.status
                    } else {
                        OrderStatus::PartiallyFilled
                    };
                    o.updated_at = *at;
                    s.dirty = true;
                }
                self.fills.insert(
                    fill_id.clone(),
                    FillRow {
                        fill_id: fill_id.clone(),
                        client_order_id: client_order_id.clone(),
                        symbol: symbol.clone(),
                        side: *side,
                        qty: *qty,
                        price: *price,
                        at: *at,
                        slippage_bps: slippage.map(|d| d.normalize()),
                    },
                );
                let p = slot(&mut self.positions, symbol.as_str());
                let before = p.row.as_ref().map(|r| (r.qty, r.avg_cost));
                p.set(
                    position_after(before, side.sign() * qty, *price).map(|(q, a)| PositionRow {
                        qty: q.normalize(),
                        avg_cost: a.normalize(),
                    }),
                );
                // Buying spends cash, selling receives it; no fees are modelled here.
                self.add_cash(-side.sign() * qty * price);
            }
            Event::OrderClosed {
                client_order_id,
                status,
                reason,
                at,
            } => {
                let s = self.updates.existing(&mut self.orders, "orders", client_order_id);
                if let Some(o) = s.row.as_mut() {
                    o.status = *status;
                    o.reason = reason.clone();
                    o.updated_at = *at;
                    s.dirty = true;
                }
            }
            Event::CycleFinished {
                cycle_id,
                outcome,
                at,
            } => {
                let s = self.updates.existing(&mut self.cycles, "cycles", cycle_id);
                if let Some(c) = s.row.as_mut() {
                    c.finished_at = Some(*at);
                    c.outcome = Some(outcome.clone());
                    s.dirty = true;
                }
            }
            Event::TargetSetCompleted { target_set_id, .. } => {
                let s = self
                    .updates
                    .existing(&mut self.target_sets, "target_sets", target_set_id);
                if let Some(t) = s.row.as_mut() {
                    t.status = "completed".to_string();
                    s.dirty = true;
                }
            }
            Event::TargetSetSuperseded { target_set_id, .. } => {
                // A set that finished before the newer one arrived keeps its
                // outcome; only one still waiting or executing is closed.
                let s = self
                    .updates
                    .existing(&mut self.target_sets, "target_sets", target_set_id);
                if let Some(t) = s
                    .row
                    .as_mut()
                    .filter(|t| t.status == "queued" || t.status == "executing")
                {
                    t.status = "superseded".to_string();
                    s.dirty = true;
                }
            }
            Event::KillSwitchEngaged { reason, source, at } => {
                // Sticky (invariant 4): a second engagement while engaged keeps
                // the first reason, which is the one an operator needs to
                // investigate; the later one is still in the audit log.
                if !self.kill.row.as_ref().is_some_and(|k| k.engaged) {
                    self.kill.set(Some(KillRec {
                        engaged: true,
                        reason: reason.clone(),
                        source: *source,
                        at: *at,
                    }));
                }
            }
            Event::KillSwitchReleased { reason, source, at } => {
                self.kill.set(Some(KillRec {
                    engaged: false,
                    reason: reason.clone(),
                    source: *source,
                    at: *at,
                }));
            }
            Event::Reconciled {
                ok, differences, at, ..
            } => {
                let diffs = serde_json::to_string(differences).map_err(encode_err)?;
                self.recon = Some((*ok, diffs, *at));
            }
            // Audit only: the cycle that saw the block sent nothing, and the
            // next cycle asks the venue again.
            Event::TradingBlocked { .. } => {}
            Event::EodSnapshot {
                date,
                equity,
                cash,
                gross_exposure,
                net_exposure,
                day_pnl,
                ..
            } => {
                let rec = EodRec {
                    date: *date,
                    snapshot: serde_json::to_string(ev).map_err(encode_err)?,
                    equity: *equity,
                    cash: *cash,
                    gross: *gross_exposure,
                    net: *net_exposure,
                    day_pnl: *day_pnl,
                };
                self.eods.insert(crate::codec::fmt_date(*date), rec);
            }
            // Alerts change no projection; their notification is the outbox's (outbox.rs).
            Event::Alert { .. } => {}
        }
        Ok(())
    }

    /// Adds `delta` to cash (zero before the account is opened).
    fn add_cash(&mut self, delta: Decimal) {
        let now = self.cash.row.unwrap_or_default();
        self.cash.set(Some((now + delta).normalize()));
    }
}

/// One projection table as replaying the log gives it: rendered rows by key.
pub(crate) type Rendered = BTreeMap<String, Vec<Option<String>>>;

/// Projection rows by table, as stored values (a verified state's live rows).
pub(crate) type LiveRows = BTreeMap<String, Vec<Vec<Val>>>;

/// Final orders a verified state keeps besides the open ones: the most
/// recently updated, which a late fill report (one made before a cancel) can
/// still change. An event for an order left out sends verification back to
/// a full replay, so this bounds the state's size, not what is proven.
const RECENT_FINAL_ORDERS: usize = 200;

/// A replay of the log held in memory (for verification). From nothing
/// ([`Replay::default`]) every row starts absent, so [`Working::apply`] builds
/// each table from scratch; from a verified state ([`Replay::from_live`]) it
/// continues that state.
#[derive(Default)]
pub(crate) struct Replay {
    w: Working,
}

impl Replay {
    /// Applies the next event of the log.
    pub(crate) fn apply(&mut self, ev: &Event, event_id: &str) -> Result<(), StoreError> {
        self.w.apply(ev, event_id)
    }

    /// A partial replay continuing a verified state's live rows.
    pub(crate) fn from_live(live: &LiveRows) -> Result<Self, StoreError> {
        let mut w = Working {
            updates: Updates {
                partial: true,
                missed: None,
            },
            ..Working::default()
        };
        let rows = |t: &'static str| {
            live.get(t)
                .into_iter()
                .flatten()
                .map(move |v| Rd::new(t, v.clone()))
        };
        if let Some(r) = rows("account").next() {
            w.account = Slot::loaded(Some(account_row(&r)?));
        }
        if let Some(r) = rows("cash").next() {
            w.cash = Slot::loaded(Some(r.dec(1, "amount")?));
        }
        for r in rows("target_sets") {
            let t = target_set_rec(&r)?;
            w.target_sets.insert(t.id.clone(), Slot::loaded(Some(t)));
        }
        for r in rows("cycles") {
            let c = cycle_row(&r)?;
            w.cycles.insert(c.cycle_id.clone(), Slot::loaded(Some(c)));
        }
        for r in rows("orders") {
            let o = order_row(&r)?;
            w.orders.insert(o.client_order_id.clone(), Slot::loaded(Some(o)));
        }
        for r in rows("positions") {
            w.positions
                .insert(r.text(0, "symbol")?, Slot::loaded(Some(position_row(&r)?)));
        }
        if let Some(r) = rows("kill_switch").next() {
            w.kill = Slot::loaded(Some(kill_rec(&r)?));
        }
        if let Some(r) = rows("reconciliations").next() {
            w.recon = Some((r.int(1, "ok")? != 0, r.text(2, "differences")?, r.time(3, "at")?));
        }
        Ok(Self { w })
    }

    /// In a partial replay, the first row an event needed that the state
    /// did not hold (`table key`); the replay is then not to be trusted.
    pub(crate) fn missed(&self) -> Option<&str> {
        self.w.updates.missed.as_deref()
    }

    /// The rows later events can still change, as stored values: account,
    /// cash, kill switch, latest reconciliation, every position, target sets
    /// still queued or executing, unfinished cycles, open orders and the
    /// most recently updated final ones.
    pub(crate) fn live_rows(&self) -> LiveRows {
        let w = &self.w;
        let mut out = LiveRows::new();
        let mut put = |t: &str, v: Vec<Val>| out.entry(t.to_string()).or_default().push(v);
        if let Some(a) = &w.account.row {
            put("account", account_vals(a));
        }
        if let Some(amount) = w.cash.row {
            put("cash", vec![Val::i(1), Val::t(amount.to_string())]);
        }
        for t in w.target_sets.values().filter_map(|s| s.row.as_ref()) {
            if t.status == "queued" || t.status == "executing" {
                put("target_sets", target_set_vals(t));
            }
        }
        for c in w.cycles.values().filter_map(|s| s.row.as_ref()) {
            if c.finished_at.is_none() {
                put("cycles", cycle_vals(c));
            }
        }
        let mut finals: Vec<&OrderRow> = Vec::new();
        for o in w.orders.values().filter_map(|s| s.row.as_ref()) {
            if o.status.is_final() {
                finals.push(o);
            } else {
                put("orders", order_vals(o));
            }
        }
        if finals.len() > RECENT_FINAL_ORDERS {
            finals.select_nth_unstable_by_key(RECENT_FINAL_ORDERS, |o| std::cmp::Reverse(o.updated_at));
            finals.truncate(RECENT_FINAL_ORDERS);
        }
        for o in finals {
            put("orders", order_vals(o));
        }
        for (symbol, s) in &w.positions {
            if let Some(p) = &s.row {
                put("positions", position_vals(symbol, p));
            }
        }
        if let Some(k) = &w.kill.row {
            put("kill_switch", kill_vals(k));
        }
        if let Some(r) = recon_vals(&w.recon) {
            put("reconciliations", r);
        }
        out
    }

    /// Calls `f` with every projection row this replay holds, as the row
    /// is written (table, values), table by table.
    pub(crate) fn each_row(&self, f: &mut dyn FnMut(&'static str, Vec<Val>)) {
        for table in PROJECTION_TABLES {
            self.each_row_of(table, &mut |vals| f(table, vals));
        }
    }

    /// Calls `f` with every row of one projection table this replay holds.
    pub(crate) fn each_row_of(&self, table: &str, f: &mut dyn FnMut(Vec<Val>)) {
        fn keyed<T>(
            f: &mut dyn FnMut(Vec<Val>),
            map: &BTreeMap<String, Slot<T>>,
            enc: impl Fn(&str, &T) -> Vec<Val>,
        ) {
            for (k, s) in map {
                if let Some(r) = &s.row {
                    f(enc(k, r));
                }
            }
        }
        let w = &self.w;
        match table {
            "account" => w.account.row.iter().for_each(|a| f(account_vals(a))),
            "cash" => w
                .cash
                .row
                .iter()
                .for_each(|amount| f(vec![Val::i(1), Val::t(amount.to_string())])),
            "target_sets" => keyed(f, &w.target_sets, |_, t| target_set_vals(t)),
            "cycles" => keyed(f, &w.cycles, |_, c| cycle_vals(c)),
            "guard_decisions" => w
                .decisions
                .iter()
                .for_each(|(k, v)| f(vec![Val::t(k), Val::t(v)])),
            "orders" => keyed(f, &w.orders, |_, o| order_vals(o)),
            "fills" => w.fills.values().for_each(|fill| f(fill_vals(fill))),
            "positions" => keyed(f, &w.positions, position_vals),
            "kill_switch" => w.kill.row.iter().for_each(|k| f(kill_vals(k))),
            "reconciliations" => recon_vals(&w.recon).into_iter().for_each(f),
            "eod_snapshots" => w.eods.values().for_each(|e| f(eod_vals(e))),
            // Every table of PROJECTION_TABLES has an arm (a test checks it renders).
            _ => {}
        }
    }

    /// Every projection table as the log says it should be, rendered the way
    /// the rows are written (so they compare with `dump_projections`).
    pub(crate) fn rendered(&self) -> BTreeMap<&'static str, Rendered> {
        let mut out: BTreeMap<&'static str, Rendered> =
            PROJECTION_TABLES.iter().map(|t| (*t, Rendered::new())).collect();
        self.each_row(&mut |table, vals| {
            let row: Vec<Option<String>> = vals.iter().map(Val::render).collect();
            let key = row.first().cloned().flatten().unwrap_or_default();
            out.entry(table).or_default().insert(key, row);
        });
        out
    }
}

/// The single `reconciliations` row of a replay.
fn recon_vals(recon: &Option<(bool, String, DateTime<Utc>)>) -> Option<Vec<Val>> {
    recon.as_ref().map(|(ok, diffs, at)| {
        vec![
            Val::i(1),
            Val::i(i64::from(*ok)),
            Val::t(diffs),
            Val::t(fmt_time(*at)),
        ]
    })
}

/// Signed slippage in bps vs the arrival price, positive when it cost money.
pub(crate) fn slippage_bps(side: Side, price: Decimal, arrival: Decimal) -> Option<Decimal> {
    if arrival <= Decimal::ZERO {
        return None;
    }
    let diff = match side {
        Side::Buy => price - arrival,
        Side::Sell => arrival - price,
    };
    Some(
        (diff * Decimal::from(10_000) / arrival)
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero),
    )
}

/// Position after a signed trade of `delta` shares at `price`; `None` when flat.
///
/// Trades that open or extend a position (same sign) move the average cost to
/// the quantity-weighted mean; trades that reduce it keep the average cost
/// (realised P&L does not change the cost of what is left); a trade that
/// crosses zero opens the remainder at the trade price. For a long-only book
/// this is exactly "buys average in, sells keep the average".
pub(crate) fn position_after(
    before: Option<(Decimal, Decimal)>,
    delta: Decimal,
    price: Decimal,
) -> Option<(Decimal, Decimal)> {
    let (q0, a0) = before.unwrap_or((Decimal::ZERO, Decimal::ZERO));
    let q1 = q0 + delta;
    if q1.is_zero() {
        return None;
    }
    let avg = if q0.is_zero() || q0.is_sign_negative() == delta.is_sign_negative() {
        (q0.abs() * a0 + delta.abs() * price) / q1.abs()
    } else if q1.is_sign_negative() == q0.is_sign_negative() {
        a0
    } else {
        price
    };
    Some((q1, avg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal as D;

    fn d(s: &str) -> D {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn long_book_averages_in_and_keeps_cost_on_sells() {
        let p = position_after(None, d("10"), d("100"));
        assert_eq!(p, Some((d("10"), d("100"))));
        let p = position_after(p, d("10"), d("110"));
        assert_eq!(p, Some((d("20"), d("105"))));
        let p = position_after(p, d("-5"), d("120"));
        assert_eq!(p, Some((d("15"), d("105"))));
        assert_eq!(position_after(p, d("-15"), d("90")), None);
    }

    #[test]
    fn crossing_zero_opens_at_trade_price() {
        let p = position_after(Some((d("10"), d("100"))), d("-15"), d("90"));
        assert_eq!(p, Some((d("-5"), d("90"))));
        let p = position_after(p, d("-5"), d("80"));
        assert_eq!(p, Some((d("-10"), d("85"))));
        let p = position_after(p, d("4"), d("70"));
        assert_eq!(p, Some((d("-6"), d("85"))));
    }

    #[test]
    fn slippage_sign_convention() {
        assert_eq!(slippage_bps(Side::Buy, d("100.10"), d("100")), Some(d("10")));
        assert_eq!(slippage_bps(Side::Sell, d("100.10"), d("100")), Some(d("-10")));
        assert_eq!(slippage_bps(Side::Sell, d("99.95"), d("100")), Some(d("5")));
        assert_eq!(slippage_bps(Side::Buy, d("1"), d("0")), None);
        assert_eq!(slippage_bps(Side::Buy, d("1"), d("3")), Some(d("-6666.6667")));
    }
}
