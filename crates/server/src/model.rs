//! What the JSON API returns, and the pure functions that derive it from
//! store rows.
//!
//! Everything here is free of I/O so the arithmetic (marks, exposure, day
//! P&L, slippage statistics) can be tested without a database. Money and
//! quantities stay [`Decimal`] end to end and serialise as strings, so a
//! client never sees a binary-float rounding of a price.

use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Side, Symbol, TargetSet};
use keel_store::{CycleRow, EodRow, FillRow, KillState, OrderRow, PositionRow, ReconciliationRow};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use std::collections::BTreeMap;

/// Decimal places kept for weights (fractions of equity).
const WEIGHT_DP: u32 = 6;
/// Decimal places kept for basis-point figures.
const BPS_DP: u32 = 4;
/// Decimal places kept for figures derived from the store's average cost,
/// which is itself a rounded quotient with up to 28 digits: products with it
/// carry meaningless trailing digits that would differ with the order of
/// operations.
const COST_DP: u32 = 6;

/// Rounds half away from zero, the convention of every figure keel shows.
pub(crate) fn round(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

// The price rule and its types are keel_domain::valuation's, shared with
// `keel status` and the EOD snapshot; the dashboard marks at the prices keel
// recorded (keel_store::marks), since the store keeps no live quotes.
#[cfg(test)]
use keel_domain::valuation::latest_recorded as choose_mark;
pub use keel_domain::valuation::{Mark, PriceSource};
pub(crate) use keel_store::marks::json_decimal;

/// One held (or targeted) position, marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionView {
    /// Instrument.
    pub symbol: Symbol,
    /// Signed shares (0 for a symbol that is only targeted).
    pub qty: Decimal,
    /// Average cost per share.
    pub avg_cost: Decimal,
    /// The mark used.
    pub price: Decimal,
    /// Where the mark came from.
    pub price_source: PriceSource,
    /// When the mark was observed.
    pub price_at: Option<DateTime<Utc>>,
    /// qty × price.
    pub market_value: Decimal,
    /// qty × avg_cost (6 dp).
    pub cost_basis: Decimal,
    /// market value − cost basis.
    pub unrealized_pnl: Decimal,
    /// market value / equity (6 dp); `None` when equity is not positive.
    pub weight: Option<Decimal>,
    /// The target weight in the current target set; `None` when no set is known.
    pub target_weight: Option<Decimal>,
    /// weight − target weight.
    pub weight_diff: Option<Decimal>,
}

/// Positions marked at known prices, with the account totals they imply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Book {
    /// Cash.
    pub cash: Decimal,
    /// cash + Σ market value.
    pub equity: Decimal,
    /// Σ |market value|.
    pub gross_exposure: Decimal,
    /// Σ market value.
    pub net_exposure: Decimal,
    /// Σ unrealized P&L.
    pub unrealized_pnl: Decimal,
    /// Rows: held symbols by symbol, then target-only symbols by symbol.
    pub positions: Vec<PositionView>,
}

/// Marks `positions` and computes the account totals.
///
/// `marks` gives each symbol's price; a symbol without one is valued at its
/// average cost (flagged [`PriceSource::Cost`]) so that equity is never
/// silently missing a holding. `target` adds weights to compare against and
/// rows for targeted symbols that are not held.
pub fn book(
    cash: Decimal,
    positions: &BTreeMap<Symbol, PositionRow>,
    marks: &BTreeMap<Symbol, Mark>,
    target: Option<&TargetSet>,
) -> Book {
    // The one valuation (keel_domain::valuation::mark), so these totals are
    // the ones `keel status` and the EOD snapshot compute on the same state.
    let v = keel_domain::valuation::mark(cash, positions.iter().map(|(s, p)| (s, p.qty, p.avg_cost)), |s| {
        marks.get(s).cloned()
    });
    let mut rows: Vec<PositionView> = v
        .positions
        .iter()
        .map(|p| PositionView {
            symbol: p.symbol.clone(),
            qty: p.qty,
            avg_cost: p.avg_cost,
            price: p.mark.price,
            price_source: p.mark.source,
            price_at: p.mark.at,
            market_value: p.market_value,
            cost_basis: round(p.qty * p.avg_cost, COST_DP),
            unrealized_pnl: p.unrealized_pnl,
            weight: None,
            target_weight: None,
            weight_diff: None,
        })
        .collect();
    if let Some(set) = target {
        for t in &set.targets {
            if !positions.contains_key(&t.symbol) && !t.weight.is_zero() {
                let mark = marks.get(&t.symbol).cloned().unwrap_or(Mark {
                    price: Decimal::ZERO,
                    source: PriceSource::Unknown,
                    at: None,
                });
                rows.push(PositionView {
                    symbol: t.symbol.clone(),
                    qty: Decimal::ZERO,
                    avg_cost: Decimal::ZERO,
                    price: mark.price,
                    price_source: mark.source,
                    price_at: mark.at,
                    market_value: Decimal::ZERO,
                    cost_basis: Decimal::ZERO,
                    unrealized_pnl: Decimal::ZERO,
                    weight: None,
                    target_weight: None,
                    weight_diff: None,
                });
            }
        }
    }
    // Target-only rows carry no value, so the valuation's totals stand.
    let (net, gross, unrealized, equity) = (v.net, v.gross, v.unrealized_pnl, v.equity);
    for r in &mut rows {
        if equity > Decimal::ZERO {
            r.weight = Some(round(r.market_value / equity, WEIGHT_DP));
        }
        if let Some(set) = target {
            let tw = set.weight(&r.symbol);
            r.target_weight = Some(tw);
            r.weight_diff = r.weight.map(|w| w - tw);
        }
    }
    Book {
        cash,
        equity,
        gross_exposure: gross,
        net_exposure: net,
        unrealized_pnl: unrealized,
        positions: rows,
    }
}

/// One point of an end-of-day history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EodView {
    /// Session date.
    pub date: NaiveDate,
    /// Equity at the close.
    pub equity: Decimal,
    /// Cash at the close.
    pub cash: Decimal,
    /// Σ |market value|.
    pub gross_exposure: Decimal,
    /// Σ market value.
    pub net_exposure: Decimal,
    /// Equity change since the previous snapshot.
    pub day_pnl: Decimal,
    /// Mean slippage of the day's fills in bps, if any filled.
    pub slippage_mean_bps: Option<Decimal>,
    /// Number of positions held at the close.
    pub positions: usize,
}

impl EodView {
    /// The view of a stored row.
    pub fn from_row(r: &EodRow) -> Self {
        Self {
            date: r.date,
            equity: r.equity,
            cash: r.cash,
            gross_exposure: r.gross_exposure,
            net_exposure: r.net_exposure,
            day_pnl: r.day_pnl,
            slippage_mean_bps: r.snapshot.get("slippage_mean_bps").and_then(json_decimal),
            positions: r
                .snapshot
                .get("positions")
                .and_then(|p| p.as_array())
                .map_or(0, Vec::len),
        }
    }
}

/// The trading date whose P&L "day P&L" reports at `now`: today's session
/// once it has opened, otherwise the previous session (so before the open,
/// and on weekends, the figure is the last session's result, not zero).
pub fn pnl_session_date(now: DateTime<Utc>) -> NaiveDate {
    match keel_calendar::session(now.date_naive()) {
        Some(s) if s.open <= now => s.date,
        _ => keel_calendar::previous_session_before(now.date_naive()).date,
    }
}

/// Day P&L: equity now minus equity at the last close before `session`.
/// Returns the P&L and the date of the close it is measured from; `None`
/// when no earlier close is recorded (nothing to measure from).
pub fn day_pnl(equity: Decimal, eod: &[EodView], session: NaiveDate) -> Option<(Decimal, NaiveDate)> {
    // EOD rows are sorted by date; the basis is the last one before the session.
    let idx = eod.partition_point(|e| e.date < session);
    let basis = eod[..idx].last()?;
    Some((equity - basis.equity, basis.date))
}

/// Whether the market is open now, and the session around now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketStatus {
    /// True inside a regular session.
    pub open: bool,
    /// The open session, or the next one when closed.
    pub session_date: NaiveDate,
    /// Its opening instant.
    pub opens_at: DateTime<Utc>,
    /// Its closing instant.
    pub closes_at: DateTime<Utc>,
    /// Whether that session closes early.
    pub early_close: bool,
}

/// The prices an EOD snapshot recorded for its positions (symbol → price),
/// the marks its equity was computed with.
pub fn eod_prices(snapshot: &serde_json::Value) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    let Some(rows) = snapshot.get("positions").and_then(|p| p.as_array()) else {
        return out;
    };
    for row in rows {
        let Some(cols) = row.as_array() else { continue };
        let (Some(sym), Some(price)) = (
            cols.first().and_then(|v| v.as_str()),
            cols.get(2).and_then(json_decimal),
        ) else {
            continue;
        };
        out.insert(sym.to_string(), price);
    }
    out
}

/// The market status at `now` from the NYSE calendar.
pub fn market_status(now: DateTime<Utc>) -> MarketStatus {
    let (open, s) = match keel_calendar::session_containing(now) {
        Some(s) => (true, s),
        None => {
            let today = now.date_naive();
            let s = match keel_calendar::session(today) {
                Some(s) if now < s.open => s,
                _ => keel_calendar::next_session_on_or_after(today.succ_opt().unwrap_or(today)),
            };
            (false, s)
        }
    };
    MarketStatus {
        open,
        session_date: s.date,
        opens_at: s.open,
        closes_at: s.close,
        early_close: s.early_close,
    }
}

/// The kill switch as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillView {
    /// True when engaged: no new orders.
    pub engaged: bool,
    /// Why (operator text or trigger description) when engaged.
    pub reason: Option<String>,
    /// Who engaged it.
    pub source: Option<keel_domain::KillSource>,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

impl KillView {
    /// The view of the store's state.
    pub fn from_state(k: Option<&KillState>) -> Self {
        match k {
            Some(k) => Self {
                engaged: true,
                reason: Some(k.reason.clone()),
                source: Some(k.source),
                at: Some(k.at),
            },
            None => Self {
                engaged: false,
                reason: None,
                source: None,
                at: None,
            },
        }
    }
}

/// The last reconciliation that agreed: when, and what it compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconOk {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// What it compared (cash, symbols, tolerances); `None` for one recorded
    /// before keel recorded the scope.
    pub scope: Option<keel_domain::ReconScope>,
}

/// A recently queued target set and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSetView {
    /// The allocator's id.
    pub id: String,
    /// When the allocator computed it.
    pub as_of: DateTime<Utc>,
    /// When keel queued it.
    pub queued_at: DateTime<Utc>,
    /// Number of targets.
    pub targets: usize,
    /// Σ |weight|.
    pub gross_weight: Decimal,
    /// `queued`, `executing`, `completed` or `superseded` (the store's projection).
    pub status: String,
    /// The newer set that superseded it.
    pub superseded_by: Option<String>,
    /// When it was superseded.
    pub superseded_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/overview`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When this response was computed.
    pub as_of: DateTime<Utc>,
    /// The tracked broker account, once opened.
    pub account_id: Option<String>,
    /// cash + Σ market value.
    pub equity: Decimal,
    /// Cash.
    pub cash: Decimal,
    /// Σ |market value|.
    pub gross_exposure: Decimal,
    /// Σ market value.
    pub net_exposure: Decimal,
    /// Σ unrealized P&L of open positions.
    pub unrealized_pnl: Decimal,
    /// Equity minus the last close before the current session; `None` without a close.
    pub day_pnl: Option<Decimal>,
    /// The date of the close `day_pnl` is measured from.
    pub day_pnl_basis_date: Option<NaiveDate>,
    /// Number of held positions.
    pub positions: usize,
    /// Orders that can still fill.
    pub open_orders: usize,
    /// Kill switch.
    pub kill_switch: KillView,
    /// Market status from the exchange calendar.
    pub market: MarketStatus,
    /// The latest cycle and its outcome.
    pub last_cycle: Option<CycleRow>,
    /// The latest reconciliation with the broker.
    pub reconciliation: Option<ReconciliationRow>,
    /// The latest reconciliation that agreed, found in the recent audit log.
    pub last_ok_reconciliation: Option<ReconOk>,
    /// The most recently queued target sets, newest first, with their status.
    pub target_sets: Vec<TargetSetView>,
    /// Number of EOD snapshots (the equity curve is `GET /api/v1/eod`).
    pub eod_count: usize,
    /// The last EOD snapshot's date.
    pub last_eod_date: Option<NaiveDate>,
    /// Audit-log head sequence number the figures were computed at; changes
    /// whenever anything changed, so clients refetch heavy data only then.
    pub audit_seq: u64,
}

/// `GET /api/v1/positions`.
#[derive(Debug, Clone, Serialize)]
pub struct PositionsResponse {
    /// Audit sequence the figures were computed at.
    pub audit_seq: u64,
    /// Cash.
    pub cash: Decimal,
    /// Equity used for the weights.
    pub equity: Decimal,
    /// Σ |market value|.
    pub gross_exposure: Decimal,
    /// Σ market value.
    pub net_exposure: Decimal,
    /// Σ unrealized P&L.
    pub unrealized_pnl: Decimal,
    /// The target set weights are compared with, if known.
    pub target_set_id: Option<String>,
    /// Rows.
    pub positions: Vec<PositionView>,
}

/// An order row plus its slippage.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// The stored row.
    #[serde(flatten)]
    pub order: OrderRow,
    /// Signed slippage of the average fill price against the arrival price in
    /// bps, positive when it cost money; `None` before any fill.
    pub slippage_bps: Option<Decimal>,
}

/// Signed slippage in bps, positive when it cost keel (a buy paid more than
/// the arrival price, a sell received less). Same convention as the store's
/// per-fill figure.
pub fn slippage_bps(side: Side, price: Decimal, arrival: Decimal) -> Option<Decimal> {
    if arrival <= Decimal::ZERO {
        return None;
    }
    let diff = match side {
        Side::Buy => price - arrival,
        Side::Sell => arrival - price,
    };
    Some(round(diff * Decimal::from(10_000) / arrival, BPS_DP))
}

impl OrderView {
    /// Adds the slippage of the average fill.
    pub fn from_row(order: OrderRow) -> Self {
        let slippage_bps = order
            .avg_fill_price
            .and_then(|p| slippage_bps(order.side, p, order.arrival_price));
        Self { order, slippage_bps }
    }
}

/// Summary statistics of a set of slippage figures (bps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlipSummary {
    /// Number of fills with a slippage figure.
    pub count: usize,
    /// Traded notional Σ qty × price.
    pub notional: Decimal,
    /// Arithmetic mean (4 dp).
    pub mean_bps: Option<Decimal>,
    /// Notional-weighted mean (4 dp): what the slippage cost per dollar traded.
    pub weighted_mean_bps: Option<Decimal>,
    /// Smallest.
    pub min_bps: Option<Decimal>,
    /// 5th percentile (nearest rank).
    pub p5_bps: Option<Decimal>,
    /// 25th percentile.
    pub p25_bps: Option<Decimal>,
    /// Median.
    pub p50_bps: Option<Decimal>,
    /// 75th percentile.
    pub p75_bps: Option<Decimal>,
    /// 95th percentile.
    pub p95_bps: Option<Decimal>,
    /// 99th percentile.
    pub p99_bps: Option<Decimal>,
    /// Largest.
    pub max_bps: Option<Decimal>,
}

/// Nearest-rank percentile of sorted data: the smallest value with at least
/// `p`% of the data at or below it. Exact (an observed value, never interpolated).
pub fn percentile(sorted: &[Decimal], p: u32) -> Option<Decimal> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // ceil(p/100 × n), at least 1.
    let rank = ((p as usize) * n).div_ceil(100).max(1);
    sorted.get(rank.min(n) - 1).copied()
}

/// Summarises (bps, notional) pairs.
pub fn summarize(points: &[(Decimal, Decimal)]) -> SlipSummary {
    if points.is_empty() {
        return SlipSummary::default();
    }
    let mut sorted: Vec<Decimal> = points.iter().map(|p| p.0).collect();
    sorted.sort();
    let n = Decimal::from(points.len());
    let sum: Decimal = sorted.iter().sum();
    let notional: Decimal = points.iter().map(|p| p.1).sum();
    let weighted = if notional > Decimal::ZERO {
        Some(round(
            points.iter().map(|(b, w)| b * w).sum::<Decimal>() / notional,
            BPS_DP,
        ))
    } else {
        None
    };
    SlipSummary {
        count: points.len(),
        notional,
        mean_bps: Some(round(sum / n, BPS_DP)),
        weighted_mean_bps: weighted,
        min_bps: sorted.first().copied(),
        p5_bps: percentile(&sorted, 5),
        p25_bps: percentile(&sorted, 25),
        p50_bps: percentile(&sorted, 50),
        p75_bps: percentile(&sorted, 75),
        p95_bps: percentile(&sorted, 95),
        p99_bps: percentile(&sorted, 99),
        max_bps: sorted.last().copied(),
    }
}

/// Upper edges (bps) of the distribution's buckets; the last bucket is open.
pub const HISTOGRAM_EDGES: [i64; 12] = [-50, -25, -10, -5, -2, 0, 2, 5, 10, 25, 50, 100];

/// One histogram bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Human-readable range, e.g. `(-5, -2]`.
    pub label: String,
    /// Exclusive lower bound (`None` for the first bucket).
    pub lower_bps: Option<i64>,
    /// Inclusive upper bound (`None` for the last bucket).
    pub upper_bps: Option<i64>,
    /// Fills in the bucket.
    pub count: usize,
}

/// Buckets the figures by [`HISTOGRAM_EDGES`].
pub fn histogram(bps: &[Decimal]) -> Vec<Bucket> {
    let mut counts = vec![0usize; HISTOGRAM_EDGES.len() + 1];
    for b in bps {
        let i = HISTOGRAM_EDGES.partition_point(|e| Decimal::from(*e) < *b);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let lower = i.checked_sub(1).map(|j| HISTOGRAM_EDGES[j]);
            let upper = HISTOGRAM_EDGES.get(i).copied();
            let label = match (lower, upper) {
                (None, Some(u)) => format!("≤ {u}"),
                (Some(l), Some(u)) => format!("({l}, {u}]"),
                (Some(l), None) => format!("> {l}"),
                (None, None) => "all".to_string(),
            };
            Bucket {
                label,
                lower_bps: lower,
                upper_bps: upper,
                count,
            }
        })
        .collect()
}

/// Slippage statistics for one group (a day or a symbol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlipGroup {
    /// The day (`YYYY-MM-DD`) or symbol.
    pub key: String,
    /// Its statistics.
    #[serde(flatten)]
    pub stats: SlipSummary,
}

/// Implementation shortfall against the arrival (decision) price.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shortfall {
    /// Orders with at least one fill.
    pub orders: usize,
    /// Σ filled qty × arrival price: what the trades were worth at decision time.
    pub arrival_notional: Decimal,
    /// Σ sign × (average fill − arrival) × filled qty, positive when execution
    /// cost money. This is the execution component of implementation
    /// shortfall; the opportunity cost of unfilled shares is reported
    /// separately as `unfilled_qty` because valuing it needs a price keel
    /// does not store.
    pub execution_cost: Decimal,
    /// execution_cost / arrival_notional in bps (4 dp).
    pub execution_cost_bps: Option<Decimal>,
    /// Σ (ordered − filled) shares of those orders and of orders that never filled.
    pub unfilled_qty: Decimal,
}

/// Implementation shortfall over `orders`.
pub fn shortfall(orders: &[OrderRow]) -> Shortfall {
    let mut s = Shortfall::default();
    for o in orders {
        s.unfilled_qty += (o.qty - o.filled_qty).max(Decimal::ZERO);
        let Some(avg) = o.avg_fill_price else { continue };
        if o.filled_qty <= Decimal::ZERO {
            continue;
        }
        s.orders += 1;
        s.arrival_notional += o.arrival_price * o.filled_qty;
        s.execution_cost += o.side.sign() * (avg - o.arrival_price) * o.filled_qty;
    }
    if s.arrival_notional > Decimal::ZERO {
        s.execution_cost_bps = Some(round(
            s.execution_cost * Decimal::from(10_000) / s.arrival_notional,
            BPS_DP,
        ));
    }
    s.execution_cost = round(s.execution_cost, 6);
    s
}

/// `GET /api/v1/slippage`.
#[derive(Debug, Clone, Serialize)]
pub struct SlippageResponse {
    /// Audit sequence the figures were computed at.
    pub audit_seq: u64,
    /// True when more fills matched than were analysed (the most recent were kept).
    pub truncated: bool,
    /// All analysed fills.
    pub overall: SlipSummary,
    /// Per UTC day, oldest first.
    pub per_day: Vec<SlipGroup>,
    /// Per symbol, alphabetical.
    pub per_symbol: Vec<SlipGroup>,
    /// Distribution.
    pub histogram: Vec<Bucket>,
    /// Implementation shortfall of the matching orders.
    pub shortfall: Shortfall,
}

/// Builds the slippage statistics from fills and orders.
pub fn slippage(audit_seq: u64, fills: &[FillRow], orders: &[OrderRow], truncated: bool) -> SlippageResponse {
    let points: Vec<(&FillRow, Decimal)> = fills
        .iter()
        .filter_map(|f| f.slippage_bps.map(|b| (f, b)))
        .collect();
    let mut by_day: BTreeMap<String, Vec<(Decimal, Decimal)>> = BTreeMap::new();
    let mut by_symbol: BTreeMap<String, Vec<(Decimal, Decimal)>> = BTreeMap::new();
    let mut all = Vec::with_capacity(points.len());
    for (f, b) in &points {
        let pair = (*b, f.qty * f.price);
        by_day
            .entry(f.at.date_naive().format("%Y-%m-%d").to_string())
            .or_default()
            .push(pair);
        by_symbol.entry(f.symbol.to_string()).or_default().push(pair);
        all.push(pair);
    }
    let group = |m: BTreeMap<String, Vec<(Decimal, Decimal)>>| {
        m.into_iter()
            .map(|(key, v)| SlipGroup {
                key,
                stats: summarize(&v),
            })
            .collect::<Vec<_>>()
    };
    let bps: Vec<Decimal> = all.iter().map(|p| p.0).collect();
    SlippageResponse {
        audit_seq,
        truncated,
        overall: summarize(&all),
        per_day: group(by_day),
        per_symbol: group(by_symbol),
        histogram: histogram(&bps),
        shortfall: shortfall(orders),
    }
}

/// One guard action (a block or resize) on one proposed order, or a
/// whole-plan block, as the guard-decision page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardAction {
    /// The symbol (`None` for a whole-plan block).
    pub symbol: Option<String>,
    /// `buy` / `sell`.
    pub side: Option<String>,
    /// `block`, `resize` or `plan_block`.
    pub action: String,
    /// The guard that acted.
    pub guard: Option<String>,
    /// Stable reason code.
    pub reason: Option<String>,
    /// The guard's explanation.
    pub detail: Option<String>,
    /// Quantity the planner proposed.
    pub proposed_qty: Option<Decimal>,
    /// Quantity sent.
    pub final_qty: Option<Decimal>,
}

/// The guard decisions of one cycle, reduced to what an operator reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleDecisions {
    /// The cycle.
    pub cycle: CycleRow,
    /// Proposed orders that passed untouched.
    pub passed: usize,
    /// Proposed orders that were resized.
    pub resized: usize,
    /// Proposed orders that were blocked.
    pub blocked: usize,
    /// Whole-plan blocks, then each block or resize, in plan order.
    pub actions: Vec<GuardAction>,
}

/// Reads a string field.
fn s_field(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_string)
}

impl CycleDecisions {
    /// Reduces a stored plan (the planner's `Plan` as JSON) to its blocks and
    /// resizes. The JSON is read field by field rather than through the
    /// planner's types so that a plan written by an older or newer version still
    /// renders whatever it shares with this one.
    pub fn from_plan(cycle: CycleRow, plan: Option<&serde_json::Value>) -> Self {
        let mut out = Self {
            cycle,
            passed: 0,
            resized: 0,
            blocked: 0,
            actions: Vec::new(),
        };
        let Some(plan) = plan else { return out };
        for b in plan
            .get("plan_blocks")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            out.actions.push(GuardAction {
                symbol: None,
                side: None,
                action: "plan_block".to_string(),
                guard: s_field(b, "guard"),
                reason: s_field(b, "reason"),
                detail: s_field(b, "detail"),
                proposed_qty: None,
                final_qty: None,
            });
        }
        for d in plan
            .get("decisions")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let outcome = d.get("outcome");
            let kind = outcome.and_then(|o| s_field(o, "kind")).unwrap_or_default();
            match kind.as_str() {
                "block" => out.blocked += 1,
                "resize" => out.resized += 1,
                _ => {
                    out.passed += 1;
                    continue;
                }
            }
            out.actions.push(GuardAction {
                symbol: s_field(d, "symbol"),
                side: s_field(d, "side"),
                action: kind,
                guard: outcome.and_then(|o| s_field(o, "guard")),
                reason: outcome.and_then(|o| s_field(o, "reason")),
                detail: outcome.and_then(|o| s_field(o, "detail")),
                proposed_qty: d.get("proposed_qty").and_then(json_decimal),
                final_qty: d.get("final_qty").and_then(json_decimal),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn mark_prefers_newer_source() {
        let t1 = Utc
            .with_ymd_and_hms(2026, 1, 5, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let t2 = Utc
            .with_ymd_and_hms(2026, 1, 5, 21, 0, 0)
            .single()
            .unwrap_or_default();
        let m = choose_mark(Some((dec!(10), t1)), Some((dec!(11), t2)));
        assert_eq!(m.map(|m| (m.price, m.source)), Some((dec!(11), PriceSource::Eod)));
        let m = choose_mark(Some((dec!(10), t2)), Some((dec!(11), t1)));
        assert_eq!(
            m.map(|m| (m.price, m.source)),
            Some((dec!(10), PriceSource::Fill))
        );
        assert_eq!(choose_mark(None, None), None);
    }

    #[test]
    fn book_totals_and_weights() {
        let mut pos = BTreeMap::new();
        pos.insert(
            sym("AAA"),
            PositionRow {
                qty: dec!(10),
                avg_cost: dec!(100),
            },
        );
        pos.insert(
            sym("BBB"),
            PositionRow {
                qty: dec!(-5),
                avg_cost: dec!(20),
            },
        );
        let mut marks = BTreeMap::new();
        marks.insert(
            sym("AAA"),
            Mark {
                price: dec!(110),
                source: PriceSource::Fill,
                at: None,
            },
        );
        let b = book(dec!(1000), &pos, &marks, None);
        // BBB has no mark: valued at cost.
        assert_eq!(b.net_exposure, dec!(1100) - dec!(100));
        assert_eq!(b.gross_exposure, dec!(1200));
        assert_eq!(b.equity, dec!(2000));
        assert_eq!(b.unrealized_pnl, dec!(100));
        assert_eq!(b.positions[0].weight, Some(dec!(0.55)));
        assert_eq!(b.positions[1].price_source, PriceSource::Cost);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Decimal> = (1..=10).map(Decimal::from).collect();
        assert_eq!(percentile(&v, 50), Some(dec!(5)));
        assert_eq!(percentile(&v, 95), Some(dec!(10)));
        assert_eq!(percentile(&v, 5), Some(dec!(1)));
        assert_eq!(percentile(&v, 0), Some(dec!(1)));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn histogram_counts_every_point_once() {
        let pts = [
            dec!(-100),
            dec!(-50),
            dec!(-49.9),
            dec!(0),
            dec!(0.1),
            dec!(100),
            dec!(101),
        ];
        let h = histogram(&pts);
        assert_eq!(h.iter().map(|b| b.count).sum::<usize>(), pts.len());
        assert_eq!(h[0].count, 2); // ≤ -50
        assert_eq!(h.last().map(|b| b.count), Some(1)); // > 100
    }

    #[test]
    fn day_pnl_uses_last_close_before_session() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
        let e = |date: &str, eq: Decimal| EodView {
            date: d(date),
            equity: eq,
            cash: eq,
            gross_exposure: Decimal::ZERO,
            net_exposure: Decimal::ZERO,
            day_pnl: Decimal::ZERO,
            slippage_mean_bps: None,
            positions: 0,
        };
        let eod = vec![e("2026-01-05", dec!(100)), e("2026-01-06", dec!(105))];
        assert_eq!(
            day_pnl(dec!(110), &eod, d("2026-01-06")),
            Some((dec!(10), d("2026-01-05")))
        );
        assert_eq!(
            day_pnl(dec!(110), &eod, d("2026-01-07")),
            Some((dec!(5), d("2026-01-06")))
        );
        assert_eq!(day_pnl(dec!(110), &eod, d("2026-01-05")), None);
    }

    #[test]
    fn shortfall_signs() {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 5, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let o = |side, arrival, avg, qty, filled| OrderRow {
            client_order_id: "x".into(),
            cycle_id: "c".into(),
            symbol: sym("AAA"),
            side,
            qty,
            order_type: keel_domain::OrderType::Market,
            limit_price: None,
            time_in_force: keel_domain::TimeInForce::Day,
            status: keel_domain::OrderStatus::Filled,
            broker_order_id: None,
            filled_qty: filled,
            avg_fill_price: Some(avg),
            arrival_price: arrival,
            arrival_spread: None,
            reason: None,
            created_at: t,
            updated_at: t,
        };
        let s = shortfall(&[
            o(Side::Buy, dec!(100), dec!(101), dec!(10), dec!(10)),
            o(Side::Sell, dec!(50), dec!(49), dec!(10), dec!(5)),
        ]);
        assert_eq!(s.execution_cost, dec!(10) + dec!(5));
        assert_eq!(s.arrival_notional, dec!(1250));
        assert_eq!(s.execution_cost_bps, Some(dec!(120)));
        assert_eq!(s.unfilled_qty, dec!(5));
    }

    #[test]
    fn market_status_weekend_points_to_monday() {
        let sat = Utc
            .with_ymd_and_hms(2026, 1, 10, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let m = market_status(sat);
        assert!(!m.open);
        assert_eq!(
            m.session_date,
            NaiveDate::from_ymd_opt(2026, 1, 12).unwrap_or_default()
        );
        let mon = Utc
            .with_ymd_and_hms(2026, 1, 12, 15, 0, 0)
            .single()
            .unwrap_or_default();
        assert!(market_status(mon).open);
    }
}
