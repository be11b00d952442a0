//! Shared test fixtures: a realistic store history, an in-test control port,
//! and the formatting the dashboard uses, so tests can compare page text
//! with store values.
#![allow(dead_code)] // each test binary uses a different subset

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use keel_domain::{
    client_order_id, Event, KillSource, Order, OrderStatus, OrderType, Side, Symbol, Target, TargetSet,
    TimeInForce,
};
use keel_server::{ControlError, ControlPort};
use keel_store::{FillFilter, SqliteStore, Store};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Text that would inject elements and run script if it were ever parsed as HTML.
pub const HOSTILE: &str = r#"<script>window.__pwned=1</script><img id="pwned" src="x" onerror="window.__pwned=2"><b id="pwned-b">bold</b> & "q""#;

/// The account id the fixture uses.
pub const ACCOUNT: &str = "PAPER-0001";

/// The instruments and their base prices.
pub const UNIVERSE: &[(&str, &str)] = &[
    ("AAPL", "190.00"),
    ("JPM", "170.00"),
    ("MSFT", "410.00"),
    ("NVDA", "480.00"),
    ("SPY", "470.00"),
    ("XOM", "105.00"),
];

pub fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn at(date: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(h, m, 0).unwrap_or_default())
}

fn r2(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Deterministic price of `symbol` on trading day `i`.
pub fn price(symbol: &str, i: usize) -> Decimal {
    let base = UNIVERSE
        .iter()
        .find(|(s, _)| *s == symbol)
        .map(|(_, p)| d(p))
        .unwrap_or(Decimal::ONE_HUNDRED);
    let k = Decimal::from(symbol.len() as i64 + i as i64 * 3);
    let drift = Decimal::from((i as i64 % 3) - 1) * d("0.004") + k * d("0.0007");
    r2(base * (Decimal::ONE + drift))
}

/// What the fixture wrote, for assertions.
pub struct Seeded {
    pub days: Vec<NaiveDate>,
    pub kill_reason: String,
    pub rejected_reason: String,
    pub blocked_detail: String,
    pub cycles: Vec<String>,
}

/// The trading days of the fixture (Mon 2026-01-05 .. Fri 2026-01-09), then
/// one more session (Mon 2026-01-12) that ends with the kill switch engaged.
pub fn days() -> Vec<NaiveDate> {
    [
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
        "2026-01-09",
        "2026-01-12",
    ]
    .iter()
    .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default())
    .collect()
}

async fn append(store: &dyn Store, ev: Event) {
    store
        .append(&ev)
        .await
        .unwrap_or_else(|e| panic!("append {}: {e}", ev.event_id()));
}

/// Writes several days of realistic history: account, target sets, cycles
/// with guard decisions (passes, resizes, blocks), intents, acks, partial
/// fills, a rejection, reconciliations, EOD snapshots, an open order and an
/// engaged kill switch whose reason is hostile markup.
pub async fn seed(store: &dyn Store) -> Seeded {
    let days = days();
    let opening = d("1000000");
    append(
        store,
        Event::AccountOpened {
            account_id: ACCOUNT.to_string(),
            cash: opening,
            at: at(days[0], 13, 0),
        },
    )
    .await;
    let weights: BTreeMap<&str, Decimal> = [
        ("AAPL", d("0.12")),
        ("JPM", d("0.06")),
        ("MSFT", d("0.10")),
        ("NVDA", d("0.08")),
        ("SPY", d("0.30")),
        ("XOM", d("0.05")),
    ]
    .into_iter()
    .collect();
    let rejected_reason = format!("insufficient buying power {HOSTILE}");
    let blocked_detail = format!("XOM is on the restricted list {HOSTILE}");
    let mut prev_equity = opening;
    let mut cycles = Vec::new();
    let mut fill_no = 0u32;

    for (i, &day) in days.iter().enumerate() {
        let last_day = i == days.len() - 1;
        let set_id = format!("alloc-{day}");
        let scale = Decimal::ONE + Decimal::from(i as i64) * d("0.01");
        let set = TargetSet {
            id: set_id.clone(),
            as_of: at(day, 15, 0),
            valid_until: Some(at(day, 15, 20)),
            targets: weights
                .iter()
                .map(|(s, w)| Target {
                    symbol: sym(s),
                    weight: r2(*w * scale * d("100")) / d("100"),
                })
                .collect(),
            liquidate: false,
        };
        append(
            store,
            Event::TargetSetQueued {
                set: set.clone(),
                at: at(day, 15, 1),
            },
        )
        .await;
        let cycle_id = format!("{set_id}#0");
        cycles.push(cycle_id.clone());
        append(
            store,
            Event::CycleStarted {
                cycle_id: cycle_id.clone(),
                target_set_id: set_id.clone(),
                attempt: 0,
                at: at(day, 15, 2),
            },
        )
        .await;

        // Size the trades from the store's own book.
        let cash = store.cash().await.unwrap_or_default();
        let pos = store.positions().await.unwrap_or_default();
        let equity = cash
            + pos
                .iter()
                .map(|(s, p)| p.qty * price(s.as_str(), i))
                .sum::<Decimal>();
        let mut decisions = Vec::new();
        let mut orders = Vec::new();
        for t in &set.targets {
            let s = t.symbol.as_str();
            let px = price(s, i);
            let held = pos.get(&t.symbol).map(|p| p.qty).unwrap_or_default();
            let want = (t.weight * equity / px).floor();
            let delta = want - held;
            if delta.is_zero() {
                continue;
            }
            let side = if delta > Decimal::ZERO {
                Side::Buy
            } else {
                Side::Sell
            };
            let proposed = delta.abs();
            let coid = client_order_id(ACCOUNT, &set_id, &t.symbol, side, 0);
            let (outcome, final_qty, steps) = if s == "XOM" && !last_day {
                let o = json!({"kind": "block", "guard": "restricted_list", "reason": "restricted_symbol", "detail": blocked_detail});
                (o, Decimal::ZERO, json!([]))
            } else if s == "NVDA" && side == Side::Buy {
                let to = (proposed * d("0.8")).floor();
                let detail = format!("weight after order would be {} > max 0.064", t.weight);
                (
                    json!({"kind": "resize", "qty": to.to_string(), "guard": "max_position_weight", "reason": "max_position_weight", "detail": detail}),
                    to,
                    json!([{"guard": "max_position_weight", "from": proposed.to_string(), "to": to.to_string(), "reason": "max_position_weight", "detail": detail}]),
                )
            } else if last_day {
                let detail = format!("kill switch engaged: {HOSTILE}");
                (
                    json!({"kind": "block", "guard": "kill_switch", "reason": "kill_switch", "detail": detail}),
                    Decimal::ZERO,
                    json!([]),
                )
            } else {
                (json!({"kind": "pass"}), proposed, json!([]))
            };
            decisions.push(json!({
                "symbol": s, "side": side.as_str(), "risk_reducing": side == Side::Sell,
                "target_weight": t.weight.to_string(), "position": held.to_string(),
                "target_qty": want.to_string(), "reference_price": px.to_string(), "limit_price": null,
                "proposed_qty": proposed.to_string(), "final_qty": final_qty.to_string(),
                "client_order_id": coid, "steps": steps, "outcome": outcome,
            }));
            if final_qty > Decimal::ZERO {
                orders.push((t.symbol.clone(), side, final_qty, px, coid));
            }
        }
        // The last day shows the automatic kill in action: the whole plan is
        // blocked, and the one order sent before it stays open.
        let plan_blocks = if last_day {
            json!([{"guard": "kill_switch", "reason": "kill_switch", "detail": format!("kill switch engaged: {HOSTILE}")}])
        } else {
            json!([])
        };
        append(
            store,
            Event::GuardDecisions {
                cycle_id: cycle_id.clone(),
                decisions: json!({
                    "orders": [], "decisions": decisions, "vol_scale": "1", "equity": equity.to_string(),
                    "exposure": {"gross_before": "0", "net_before": "0", "gross_after": "0", "net_after": "0"},
                    "plan_blocks": plan_blocks,
                }),
                at: at(day, 15, 2),
            },
        )
        .await;

        for (k, (symbol, side, qty, px, coid)) in orders.iter().enumerate() {
            let t0 = at(day, 15, 3) + Duration::seconds(k as i64);
            append(
                store,
                Event::OrderIntent {
                    cycle_id: cycle_id.clone(),
                    order: Order {
                        client_order_id: coid.clone(),
                        symbol: symbol.clone(),
                        side: *side,
                        qty: *qty,
                        order_type: OrderType::Market,
                        limit_price: None,
                        time_in_force: TimeInForce::Day,
                    },
                    arrival_price: *px,
                    arrival_spread: None,
                    at: t0,
                },
            )
            .await;
            if symbol.as_str() == "JPM" && i == 2 {
                append(
                    store,
                    Event::OrderClosed {
                        client_order_id: coid.clone(),
                        status: OrderStatus::Rejected,
                        reason: Some(rejected_reason.clone()),
                        at: t0 + Duration::seconds(1),
                    },
                )
                .await;
                continue;
            }
            append(
                store,
                Event::OrderAccepted {
                    client_order_id: coid.clone(),
                    broker_order_id: format!("B-{coid}"),
                    at: t0 + Duration::seconds(1),
                },
            )
            .await;
            // Two partial fills with small, varied slippage.
            let first = (*qty * d("0.6")).floor().max(Decimal::ONE).min(*qty);
            let parts: Vec<Decimal> = if first < *qty {
                vec![first, *qty - first]
            } else {
                vec![first]
            };
            // The last day's order stays partially filled (open).
            let parts = if last_day {
                vec![first.min(*qty - Decimal::ONE).max(Decimal::ONE)]
            } else {
                parts
            };
            for (j, q) in parts.iter().enumerate() {
                fill_no += 1;
                let bps = Decimal::from((fill_no as i64 * 7) % 13 - 4);
                let signed = if *side == Side::Buy { bps } else { -bps };
                let fpx = r2(*px * (Decimal::ONE + signed / d("10000")));
                append(
                    store,
                    Event::OrderFilled {
                        client_order_id: coid.clone(),
                        fill_id: format!("F{fill_no:05}"),
                        symbol: symbol.clone(),
                        side: *side,
                        qty: *q,
                        price: fpx,
                        at: t0 + Duration::seconds(2 + j as i64 * 30),
                    },
                )
                .await;
            }
        }

        if last_day {
            append(
                store,
                Event::KillSwitchEngaged {
                    reason: format!("daily loss limit {HOSTILE}"),
                    source: KillSource::Automatic,
                    at: at(day, 15, 10),
                },
            )
            .await;
            append(
                store,
                Event::CycleFinished {
                    cycle_id: cycle_id.clone(),
                    outcome: "blocked: kill switch".to_string(),
                    at: at(day, 15, 10),
                },
            )
            .await;
            break;
        }
        append(
            store,
            Event::CycleFinished {
                cycle_id: cycle_id.clone(),
                outcome: "submitted".to_string(),
                at: at(day, 15, 5),
            },
        )
        .await;
        append(
            store,
            Event::TargetSetCompleted {
                target_set_id: set_id.clone(),
                at: at(day, 15, 6),
            },
        )
        .await;
        append(
            store,
            Event::Reconciled {
                ok: true,
                differences: vec![],
                scope: Some(keel_domain::ReconScope {
                    symbols: 6,
                    store_cash: store.cash().await.unwrap_or_default(),
                    broker_cash: store.cash().await.unwrap_or_default(),
                    cash_tolerance: d("0.01"),
                    qty_tolerance: Decimal::ZERO,
                }),
                at: at(day, 20, 55),
            },
        )
        .await;

        // End of day: mark at the close.
        let cash = store.cash().await.unwrap_or_default();
        let pos = store.positions().await.unwrap_or_default();
        let close = |s: &str| r2(price(s, i) * d("1.002"));
        let mut gross = Decimal::ZERO;
        let mut net = Decimal::ZERO;
        let mut rows = Vec::new();
        for (s, p) in &pos {
            let mv = p.qty * close(s.as_str());
            gross += mv.abs();
            net += mv;
            rows.push((s.clone(), p.qty, close(s.as_str())));
        }
        let equity = cash + net;
        let fills = store
            .fills(&FillFilter {
                day: Some(day),
                ..FillFilter::default()
            })
            .await
            .unwrap_or_default();
        let slips: Vec<Decimal> = fills.iter().filter_map(|f| f.slippage_bps).collect();
        let slip_mean = if slips.is_empty() {
            None
        } else {
            Some((slips.iter().sum::<Decimal>() / Decimal::from(slips.len())).round_dp(4))
        };
        append(
            store,
            Event::EodSnapshot {
                date: day,
                equity,
                cash,
                gross_exposure: gross,
                net_exposure: net,
                day_pnl: equity - prev_equity,
                positions: rows,
                slippage_mean_bps: slip_mean,
                at: at(day, 21, 5),
            },
        )
        .await;
        prev_equity = equity;
    }
    Seeded {
        days,
        kill_reason: format!("daily loss limit {HOSTILE}"),
        rejected_reason,
        blocked_detail,
        cycles,
    }
}

/// A fresh file-backed store in `dir`.
pub async fn open_store(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(dir.join("keel.db"))
            .await
            .unwrap_or_else(|e| panic!("open store: {e}")),
    )
}

/// Formats like the dashboard's `fmtDec(s, 2)`: half away from zero, commas.
pub fn fmt2(x: Decimal) -> String {
    let r = x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let neg = r.is_sign_negative() && !r.is_zero();
    let s = format!("{:.2}", r.abs());
    let (ip, fp) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (k, c) in ip.chars().enumerate() {
        if k > 0 && (ip.len() - k) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{fp}", if neg { "-" } else { "" })
}

/// The account as the test computes it independently from store queries:
/// each position marked at the newer of its last fill and last EOD close.
pub struct Expected {
    pub cash: Decimal,
    pub equity: Decimal,
    pub gross: Decimal,
    pub net: Decimal,
    pub marks: BTreeMap<String, Decimal>,
    pub day_pnl: Option<Decimal>,
}

pub async fn expected(store: &dyn Store) -> Expected {
    let cash = store.cash().await.unwrap_or_else(|e| panic!("cash: {e}"));
    let pos = store
        .positions()
        .await
        .unwrap_or_else(|e| panic!("positions: {e}"));
    let eod = store.eod_snapshots().await.unwrap_or_else(|e| panic!("eod: {e}"));
    let last = eod.last();
    let mut marks = BTreeMap::new();
    let (mut gross, mut net) = (Decimal::ZERO, Decimal::ZERO);
    for (s, p) in &pos {
        let fill = store
            .fills(&FillFilter {
                symbol: Some(s.clone()),
                limit: Some(1),
                ..FillFilter::default()
            })
            .await
            .unwrap_or_default()
            .into_iter()
            .next();
        let eod_px = last.and_then(|r| {
            let at: DateTime<Utc> = r.snapshot["at"].as_str()?.parse().ok()?;
            let px = r.snapshot["positions"]
                .as_array()?
                .iter()
                .find(|row| row[0].as_str() == Some(s.as_str()))?[2]
                .as_str()?
                .parse::<Decimal>()
                .ok()?;
            Some((px, at))
        });
        let px = match (fill, eod_px) {
            (Some(f), Some((e, eat))) => {
                if eat > f.at {
                    e
                } else {
                    f.price
                }
            }
            (Some(f), None) => f.price,
            (None, Some((e, _))) => e,
            (None, None) => p.avg_cost,
        };
        marks.insert(s.to_string(), px);
        gross += (p.qty * px).abs();
        net += p.qty * px;
    }
    let equity = cash + net;
    // Every fixture date is in the past, so day P&L is measured from the last close.
    let day_pnl = last.map(|r| equity - r.equity);
    Expected {
        cash,
        equity,
        gross,
        net,
        marks,
        day_pnl,
    }
}

/// A control port that does what the real one must: append audit events.
pub struct StoreControl {
    pub store: Arc<dyn Store>,
}

#[async_trait]
impl ControlPort for StoreControl {
    async fn engage_kill(&self, reason: &str) -> Result<(), ControlError> {
        self.store
            .append(&Event::KillSwitchEngaged {
                reason: reason.to_string(),
                source: KillSource::Http,
                at: Utc::now(),
            })
            .await
            .map(|_| ())
            .map_err(|e| ControlError::internal(e.to_string()))
    }

    async fn release_kill(&self, reason: &str) -> Result<bool, ControlError> {
        let engaged = self
            .store
            .kill_switch()
            .await
            .map_err(|e| ControlError::internal(e.to_string()))?
            .is_some();
        if !engaged {
            return Ok(false);
        }
        self.store
            .append(&Event::KillSwitchReleased {
                reason: reason.to_string(),
                source: KillSource::Http,
                at: Utc::now(),
            })
            .await
            .map(|_| true)
            .map_err(|e| ControlError::internal(e.to_string()))
    }

    async fn submit_target_set(
        &self,
        body: &[u8],
        _content_type: Option<&str>,
    ) -> Result<String, ControlError> {
        let set: TargetSet = serde_json::from_slice(body)
            .map_err(|e| ControlError::bad_request(format!("invalid target set: {e}")))?;
        let r = self
            .store
            .append(&Event::TargetSetQueued {
                set: set.clone(),
                at: Utc::now(),
            })
            .await
            .map_err(|e| ControlError::internal(e.to_string()))?;
        if r.is_none() {
            return Err(ControlError {
                status: 409,
                message: format!("target set {} was already submitted", set.id),
            });
        }
        Ok(set.id)
    }
}
