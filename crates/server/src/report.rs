//! The daily execution report: one model, built once from the store, served
//! by `GET /api/v1/report/{day}` and rendered by `keel report` (text, CSV,
//! JSON, HTML), so the report and the dashboard cannot disagree.
//!
//! The day is the UTC date, as every dashboard filter uses (NYSE sessions
//! fall inside one UTC date); EOD figures are the stored snapshot of that
//! session, never revalued here. Slippage, shortfall and the histogram are
//! the dashboard's own functions ([`crate::model`]) over that day's rows.

use crate::model::{self, CycleDecisions, EodView, Shortfall, SlipGroup, SlipSummary};
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Event, OrderStatus, TargetSet};
use keel_store::{FillFilter, OrderFilter, OrderRow, Store, StoreError};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// Audit rows read per page while collecting the day's events.
const PAGE: u32 = 2_000;

/// Most orders or fills a report reads (a day with more is marked truncated).
const MAX_ROWS: u32 = 100_000;

/// Decimal places of weights.
const WEIGHT_DP: u32 = 6;

/// One target set received on the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSetLine {
    /// Its id.
    pub id: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Targets in it.
    pub targets: usize,
    /// Status now (`queued`, `executing`, `completed`, `superseded`, ...).
    pub status: Option<String>,
    /// How it ended, when the log says (`completed`, or a refusal/superseded alert's text).
    pub outcome: Option<String>,
}

/// Target versus achieved weight of one symbol at the close.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightLine {
    /// Symbol.
    pub symbol: String,
    /// Weight in the day's last traded target set (0 when absent from it).
    pub target: Decimal,
    /// Market value at the close / EOD equity (0 when not held).
    pub achieved: Decimal,
    /// achieved − target.
    pub difference: Decimal,
}

/// One order of the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLine {
    /// keel's id.
    pub client_order_id: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` / `sell`.
    pub side: String,
    /// Ordered shares.
    pub qty: Decimal,
    /// Filled shares.
    pub filled_qty: Decimal,
    /// Final or current status.
    pub status: String,
    /// Reference (arrival) price at decision time.
    pub arrival_price: Decimal,
    /// Limit price, if any.
    pub limit_price: Option<Decimal>,
    /// Average fill price.
    pub avg_fill_price: Option<Decimal>,
    /// Slippage of the average fill vs arrival, bps, positive = cost.
    pub slippage_bps: Option<Decimal>,
    /// sign × (avg − arrival) × filled: the order's execution shortfall in money.
    pub shortfall: Option<Decimal>,
    /// filled × half the arrival quote's spread: what crossing from the mid
    /// to the far side cost (part of `shortfall`). `None` for orders logged
    /// without a two-sided arrival quote.
    pub spread_paid: Option<Decimal>,
    /// Seconds from the intent to the last fill (None before any fill).
    pub time_to_fill_secs: Option<i64>,
    /// Filled some but not all of the order.
    pub partial: bool,
}

/// Guard actions of the day by guard and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardCount {
    /// The guard (or `plan` for whole-plan blocks without one).
    pub guard: String,
    /// `block`, `resize` or `plan_block`.
    pub action: String,
    /// Reason code.
    pub reason: String,
    /// How many.
    pub count: usize,
}

/// A kill-switch, reconciliation or alert event of the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLine {
    /// Audit sequence number.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Audit kind.
    pub kind: String,
    /// One line.
    pub detail: String,
}

/// Order-level execution quality of the day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Execution {
    /// Orders created on the day.
    pub orders: usize,
    /// Of which with at least one fill.
    pub filled_orders: usize,
    /// Of which filled only partly.
    pub partial_orders: usize,
    /// partial_orders / filled_orders (4 dp).
    pub partial_fill_rate: Option<Decimal>,
    /// Fills on the day.
    pub fills: usize,
    /// Median seconds from intent to last fill over filled orders.
    pub median_time_to_fill_secs: Option<i64>,
    /// Longest.
    pub max_time_to_fill_secs: Option<i64>,
    /// Σ of the orders' `spread_paid` (those that have one); `None` when no
    /// order of the day has an arrival spread.
    pub spread_paid: Option<Decimal>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayReport {
    /// The UTC date reported.
    pub day: NaiveDate,
    /// The tracked account.
    pub account_id: Option<String>,
    /// Audit head when the report was built (the report is of the log up to it).
    pub audit_seq: u64,
    /// True when the day had more orders or fills than a report reads.
    pub truncated: bool,
    /// Target sets received.
    pub target_sets: Vec<TargetSetLine>,
    /// The target set the weights compare with (the day's last traded one).
    pub weights_target_set: Option<String>,
    /// Targets vs achieved weights at the close.
    pub weights: Vec<WeightLine>,
    /// Orders.
    pub orders: Vec<OrderLine>,
    /// Order-level figures.
    pub execution: Execution,
    /// Fill slippage over the day.
    pub slippage: SlipSummary,
    /// Per symbol.
    pub slippage_per_symbol: Vec<SlipGroup>,
    /// Distribution (the dashboard's buckets).
    pub histogram: Vec<model::Bucket>,
    /// Implementation shortfall vs arrival for the day.
    pub shortfall: Shortfall,
    /// Guard blocks and resizes.
    pub guards: Vec<GuardCount>,
    /// Kill-switch changes.
    pub kill_switch: Vec<EventLine>,
    /// Reconciliations.
    pub reconciliations: Vec<EventLine>,
    /// Alerts (cycle errors, lease, stream, refused sets).
    pub alerts: Vec<EventLine>,
    /// The day's EOD snapshot, if recorded.
    pub eod: Option<EodView>,
    /// Every EOD snapshot up to the day (for the equity chart).
    pub equity_history: Vec<EodView>,
}

/// The first day with activity and the days that have an EOD snapshot or
/// orders, for pickers: every EOD date.
pub async fn days(store: &dyn Store) -> Result<Vec<NaiveDate>, StoreError> {
    Ok(store.eod_snapshots().await?.iter().map(|r| r.date).collect())
}

fn order_line(o: &OrderRow, last_fill: Option<DateTime<Utc>>) -> OrderLine {
    let slippage_bps = o
        .avg_fill_price
        .and_then(|p| model::slippage_bps(o.side, p, o.arrival_price));
    let filled = o.filled_qty > Decimal::ZERO;
    OrderLine {
        client_order_id: o.client_order_id.clone(),
        symbol: o.symbol.to_string(),
        side: o.side.to_string(),
        qty: o.qty,
        filled_qty: o.filled_qty,
        status: o.status.as_str().to_string(),
        arrival_price: o.arrival_price,
        limit_price: o.limit_price,
        avg_fill_price: o.avg_fill_price,
        slippage_bps,
        shortfall: o
            .avg_fill_price
            .filter(|_| filled)
            .map(|avg| (o.side.sign() * (avg - o.arrival_price) * o.filled_qty).round_dp(6)),
        spread_paid: o
            .arrival_spread
            .map(|s| (o.filled_qty * s / Decimal::TWO).round_dp(6)),
        time_to_fill_secs: last_fill.map(|t| (t - o.created_at).num_seconds()),
        partial: filled && o.filled_qty < o.qty && o.status != OrderStatus::Filled,
    }
}

/// Builds the report of `day` from the store.
pub async fn build(store: &dyn Store, day: NaiveDate) -> Result<DayReport, StoreError> {
    let (audit_seq, _) = store.audit_head().await?;
    let account_id = store.account().await?.map(|a| a.account_id);

    // The day's events, and every target set ever queued (a set traded
    // today may have been queued yesterday).
    let mut sets: BTreeMap<String, TargetSet> = BTreeMap::new();
    let mut target_sets = Vec::new();
    let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
    let mut kill_switch = Vec::new();
    let mut reconciliations = Vec::new();
    let mut alerts = Vec::new();
    let mut after = 0u64;
    while after < audit_seq {
        let page = store.audit_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            let Ok(ev) = serde_json::from_str::<Event>(&row.payload) else {
                continue;
            };
            let today = ev.at().date_naive() == day;
            match &ev {
                Event::TargetSetQueued { set, at } => {
                    if today {
                        target_sets.push(TargetSetLine {
                            id: set.id.clone(),
                            queued_at: *at,
                            targets: set.targets.len(),
                            status: None,
                            outcome: None,
                        });
                    }
                    sets.insert(set.id.clone(), set.clone());
                }
                Event::TargetSetCompleted { target_set_id, .. } => {
                    outcomes.insert(target_set_id.clone(), "completed".into());
                }
                Event::KillSwitchEngaged { reason, source, at } if today => kill_switch.push(EventLine {
                    seq: row.seq,
                    at: *at,
                    kind: row.kind.clone(),
                    detail: format!("engaged by {source:?}: {reason}").to_lowercase(),
                }),
                Event::KillSwitchReleased { reason, source, at } if today => kill_switch.push(EventLine {
                    seq: row.seq,
                    at: *at,
                    kind: row.kind.clone(),
                    detail: format!("released by {source:?}: {reason}").to_lowercase(),
                }),
                Event::Reconciled {
                    ok, differences, at, ..
                } if today => reconciliations.push(EventLine {
                    seq: row.seq,
                    at: *at,
                    kind: row.kind.clone(),
                    detail: if *ok {
                        "ok".to_string()
                    } else {
                        format!("mismatch: {}", differences.join("; "))
                    },
                }),
                Event::Alert {
                    alert, detail, at, ..
                } if today => alerts.push(EventLine {
                    seq: row.seq,
                    at: *at,
                    kind: alert.as_str().to_string(),
                    detail: detail.clone(),
                }),
                _ => {}
            }
        }
    }
    for t in &mut target_sets {
        t.status = store.target_set_status(&t.id).await?;
        t.outcome = outcomes.get(&t.id).cloned();
    }

    let orders = store
        .orders(&OrderFilter {
            day: Some(day),
            limit: Some(MAX_ROWS),
            ..OrderFilter::default()
        })
        .await?;
    let fills = store
        .fills(&FillFilter {
            day: Some(day),
            limit: Some(MAX_ROWS),
            ..FillFilter::default()
        })
        .await?;
    let truncated = orders.len() >= MAX_ROWS as usize || fills.len() >= MAX_ROWS as usize;
    let mut last_fill: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for f in &fills {
        let e = last_fill.entry(f.client_order_id.as_str()).or_insert(f.at);
        if f.at > *e {
            *e = f.at;
        }
    }
    // Oldest first reads like the day went.
    let mut order_lines: Vec<OrderLine> = orders
        .iter()
        .rev()
        .map(|o| order_line(o, last_fill.get(o.client_order_id.as_str()).copied()))
        .collect();
    order_lines.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    let slip = model::slippage(audit_seq, &fills, &orders, truncated);

    let mut ttf: Vec<i64> = order_lines.iter().filter_map(|o| o.time_to_fill_secs).collect();
    ttf.sort_unstable();
    let filled_orders = order_lines
        .iter()
        .filter(|o| o.filled_qty > Decimal::ZERO)
        .count();
    let partial_orders = order_lines.iter().filter(|o| o.partial).count();
    let execution = Execution {
        orders: order_lines.len(),
        filled_orders,
        partial_orders,
        partial_fill_rate: (filled_orders > 0)
            .then(|| (Decimal::from(partial_orders) / Decimal::from(filled_orders)).round_dp(4)),
        fills: fills.len(),
        median_time_to_fill_secs: ttf
            .get(ttf.len().saturating_sub(1) / 2)
            .copied()
            .filter(|_| !ttf.is_empty()),
        max_time_to_fill_secs: ttf.last().copied(),
        spread_paid: order_lines
            .iter()
            .filter_map(|o| o.spread_paid)
            .reduce(|a, b| a + b),
    };

    // Guard actions of the day's cycles.
    let mut guard_counts: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut last_set: Option<(DateTime<Utc>, String)> = None;
    for c in store.cycles(u32::MAX).await? {
        if c.started_at.date_naive() != day {
            continue;
        }
        if last_set.as_ref().is_none_or(|(t, _)| c.started_at > *t) {
            last_set = Some((c.started_at, c.target_set_id.clone()));
        }
        let plan = store.guard_decisions(&c.cycle_id).await?;
        for a in CycleDecisions::from_plan(c, plan.as_ref()).actions {
            let key = (
                a.guard.unwrap_or_else(|| "plan".into()),
                a.action,
                a.reason.unwrap_or_default(),
            );
            *guard_counts.entry(key).or_default() += 1;
        }
    }
    let guards = guard_counts
        .into_iter()
        .map(|((guard, action, reason), count)| GuardCount {
            guard,
            action,
            reason,
            count,
        })
        .collect();

    let eods = store.eod_snapshots().await?;
    let eod_row = eods.iter().find(|r| r.date == day);
    let eod = eod_row.map(EodView::from_row);
    let equity_history = eods
        .iter()
        .filter(|r| r.date <= day)
        .map(EodView::from_row)
        .collect();

    let weights_target_set = last_set.map(|(_, id)| id);
    let mut weights = Vec::new();
    if let (Some(row), Some(eod)) = (eod_row, &eod) {
        let target: BTreeMap<String, Decimal> = weights_target_set
            .as_ref()
            .and_then(|id| sets.get(id))
            .map(|s| {
                s.targets
                    .iter()
                    .map(|t| (t.symbol.to_string(), t.weight))
                    .collect()
            })
            .unwrap_or_default();
        let mut achieved: BTreeMap<String, Decimal> = BTreeMap::new();
        if eod.equity > Decimal::ZERO {
            let prices = model::eod_prices(&row.snapshot);
            for p in row
                .snapshot
                .get("positions")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let (Some(sym), Some(qty)) = (
                    p.get(0).and_then(|v| v.as_str()),
                    p.get(1).and_then(model::json_decimal),
                ) else {
                    continue;
                };
                let Some(price) = prices.get(sym) else { continue };
                achieved.insert(sym.to_string(), (qty * price / eod.equity).round_dp(WEIGHT_DP));
            }
        }
        let symbols: std::collections::BTreeSet<&String> = target.keys().chain(achieved.keys()).collect();
        for s in symbols {
            let t = target.get(s).copied().unwrap_or_default();
            let a = achieved.get(s).copied().unwrap_or_default();
            weights.push(WeightLine {
                symbol: s.clone(),
                target: t,
                achieved: a,
                difference: (a - t).round_dp(WEIGHT_DP),
            });
        }
    }

    Ok(DayReport {
        day,
        account_id,
        audit_seq,
        truncated,
        target_sets,
        weights_target_set,
        weights,
        orders: order_lines,
        execution,
        slippage: slip.overall,
        slippage_per_symbol: slip.per_symbol,
        histogram: slip.histogram,
        shortfall: slip.shortfall,
        guards,
        kill_switch,
        reconciliations,
        alerts,
        eod,
        equity_history,
    })
}
