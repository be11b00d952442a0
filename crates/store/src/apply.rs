//! The one place where events change projection tables.
//!
//! Both the live append path and `rebuild_projections` call [`apply`], inside
//! the same transaction as the audit insert, so the projections are by
//! construction a pure function of the log (invariant 6).

use crate::codec::{self, fmt_computed, fmt_dec, fmt_time};
use crate::conn::{exec, fetch_one, Conn, Val};
use crate::error::StoreError;
use keel_domain::{Event, OrderStatus, Side};
use rust_decimal::{Decimal, RoundingStrategy};

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

/// Applies one event to the projections. `event_id` is only for error messages.
pub(crate) async fn apply<C: Conn + ?Sized>(c: &mut C, ev: &Event, event_id: &str) -> Result<(), StoreError> {
    let ctx = |what: &str| format!("applying {event_id}: {what}");
    match ev {
        Event::AccountOpened { account_id, cash, at } => {
            let existing = fetch_one(
                c,
                "account",
                "reading account",
                "SELECT id FROM account LIMIT 1",
                &[],
            )
            .await?;
            if let Some(row) = existing {
                let id = row.text(0, "id")?;
                if &id != account_id {
                    // One store tracks one broker account: pointing keel at a
                    // different account with the old store must fail closed.
                    return Err(StoreError::Refused {
                        event_id: event_id.to_string(),
                        why: format!("store already tracks account {id:?}, not {account_id:?}"),
                    });
                }
            }
            exec(
                c,
                &ctx("insert account"),
                "INSERT INTO account (id, cash, opened_at) VALUES ($1, $2, $3)",
                &[Val::t(account_id), Val::t(fmt_dec(*cash)), Val::t(fmt_time(*at))],
            )
            .await?;
            add_cash(c, *cash, event_id).await?;
        }
        Event::TargetSetQueued { set, at } => {
            let payload = serde_json::to_string(set).map_err(|source| StoreError::Encode {
                event_id: event_id.to_string(),
                source,
            })?;
            exec(
                c,
                &ctx("insert target set"),
                "INSERT INTO target_sets (id, payload, status, queued_at) VALUES ($1, $2, 'queued', $3)",
                &[Val::t(&set.id), Val::t(payload), Val::t(fmt_time(*at))],
            )
            .await?;
        }
        Event::CycleStarted {
            cycle_id,
            target_set_id,
            attempt,
            at,
        } => {
            exec(
                c,
                &ctx("insert cycle"),
                "INSERT INTO cycles (cycle_id, target_set_id, attempt, started_at) VALUES ($1, $2, $3, $4)",
                &[
                    Val::t(cycle_id),
                    Val::t(target_set_id),
                    Val::i(i64::from(*attempt)),
                    Val::t(fmt_time(*at)),
                ],
            )
            .await?;
            exec(
                c,
                &ctx("mark target set executing"),
                "UPDATE target_sets SET status = 'executing' WHERE id = $1 AND status = 'queued'",
                &[Val::t(target_set_id)],
            )
            .await?;
        }
        Event::GuardDecisions {
            cycle_id, decisions, ..
        } => {
            exec(
                c,
                &ctx("insert guard decisions"),
                "INSERT INTO guard_decisions (cycle_id, decisions) VALUES ($1, $2)",
                &[Val::t(cycle_id), Val::t(decisions.to_string())],
            )
            .await?;
        }
        Event::OrderIntent {
            cycle_id,
            order,
            arrival_price,
            at,
        } => {
            let t = fmt_time(*at);
            exec(
                c,
                &ctx("insert order"),
                "INSERT INTO orders (client_order_id, cycle_id, symbol, side, qty, order_type, limit_price, \
                 tif, status, broker_order_id, filled_qty, avg_fill_price, arrival_price, reason, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'intent', NULL, '0', NULL, $9, NULL, $10, $10)",
                &[
                    Val::t(&order.client_order_id),
                    Val::t(cycle_id),
                    Val::t(order.symbol.as_str()),
                    Val::t(codec::side_str(order.side)),
                    Val::t(fmt_dec(order.qty)),
                    Val::t(codec::order_type_str(order.order_type)),
                    Val::ot(order.limit_price.map(fmt_dec)),
                    Val::t(codec::tif_str(order.time_in_force)),
                    Val::t(fmt_dec(*arrival_price)),
                    Val::t(t),
                ],
            )
            .await?;
        }
        Event::OrderAccepted {
            client_order_id,
            broker_order_id,
            at,
        } => {
            // An ack can arrive after fills or a cancel (streams reorder), so it
            // only moves an order out of `intent`, never backwards.
            exec(
                c,
                &ctx("mark order accepted"),
                "UPDATE orders SET broker_order_id = $2, updated_at = $3, \
                 status = CASE WHEN status = 'intent' THEN 'accepted' ELSE status END \
                 WHERE client_order_id = $1",
                &[
                    Val::t(client_order_id),
                    Val::t(broker_order_id),
                    Val::t(fmt_time(*at)),
                ],
            )
            .await?;
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
            apply_fill(
                c,
                event_id,
                client_order_id,
                fill_id,
                symbol.as_str(),
                *side,
                *qty,
                *price,
                *at,
            )
            .await?;
        }
        Event::OrderClosed {
            client_order_id,
            status,
            reason,
            at,
        } => {
            exec(
                c,
                &ctx("close order"),
                "UPDATE orders SET status = $2, reason = $3, updated_at = $4 WHERE client_order_id = $1",
                &[
                    Val::t(client_order_id),
                    Val::t(status.as_str()),
                    Val::ot(reason.clone()),
                    Val::t(fmt_time(*at)),
                ],
            )
            .await?;
        }
        Event::CycleFinished {
            cycle_id,
            outcome,
            at,
        } => {
            exec(
                c,
                &ctx("finish cycle"),
                "UPDATE cycles SET finished_at = $2, outcome = $3 WHERE cycle_id = $1",
                &[Val::t(cycle_id), Val::t(fmt_time(*at)), Val::t(outcome)],
            )
            .await?;
        }
        Event::TargetSetCompleted { target_set_id, .. } => {
            exec(
                c,
                &ctx("complete target set"),
                "UPDATE target_sets SET status = 'completed' WHERE id = $1",
                &[Val::t(target_set_id)],
            )
            .await?;
        }
        Event::KillSwitchEngaged { reason, source, at } => {
            // Sticky (invariant 4): a second engagement while engaged keeps the
            // first reason, which is the one an operator needs to investigate;
            // the later one is still in the audit log.
            exec(
                c,
                &ctx("engage kill switch"),
                "INSERT INTO kill_switch (id, engaged, reason, source, at) VALUES (1, 1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET engaged = 1, reason = excluded.reason, \
                 source = excluded.source, at = excluded.at WHERE kill_switch.engaged = 0",
                &[
                    Val::t(reason),
                    Val::t(codec::kill_source_str(*source)),
                    Val::t(fmt_time(*at)),
                ],
            )
            .await?;
        }
        Event::KillSwitchReleased { reason, source, at } => {
            exec(
                c,
                &ctx("release kill switch"),
                "INSERT INTO kill_switch (id, engaged, reason, source, at) VALUES (1, 0, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET engaged = 0, reason = excluded.reason, \
                 source = excluded.source, at = excluded.at",
                &[
                    Val::t(reason),
                    Val::t(codec::kill_source_str(*source)),
                    Val::t(fmt_time(*at)),
                ],
            )
            .await?;
        }
        Event::Reconciled { ok, differences, at } => {
            let diffs = serde_json::to_string(differences).map_err(|source| StoreError::Encode {
                event_id: event_id.to_string(),
                source,
            })?;
            exec(
                c,
                &ctx("record reconciliation"),
                "INSERT INTO reconciliations (id, ok, differences, at) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET ok = excluded.ok, differences = excluded.differences, \
                 at = excluded.at",
                &[Val::i(i64::from(*ok)), Val::t(diffs), Val::t(fmt_time(*at))],
            )
            .await?;
        }
        Event::EodSnapshot {
            date,
            equity,
            cash,
            gross_exposure,
            net_exposure,
            day_pnl,
            ..
        } => {
            let snapshot = serde_json::to_string(ev).map_err(|source| StoreError::Encode {
                event_id: event_id.to_string(),
                source,
            })?;
            exec(
                c,
                &ctx("insert EOD snapshot"),
                "INSERT INTO eod_snapshots (date, snapshot, equity, cash, gross, net, day_pnl) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    Val::t(codec::fmt_date(*date)),
                    Val::t(snapshot),
                    Val::t(fmt_dec(*equity)),
                    Val::t(fmt_dec(*cash)),
                    Val::t(fmt_dec(*gross_exposure)),
                    Val::t(fmt_dec(*net_exposure)),
                    Val::t(fmt_dec(*day_pnl)),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// A fill moves four projections at once: the fill itself, its order, the
/// position and cash.
#[allow(clippy::too_many_arguments)] // the fields of one event, passed flat
async fn apply_fill<C: Conn + ?Sized>(
    c: &mut C,
    event_id: &str,
    client_order_id: &str,
    fill_id: &str,
    symbol: &str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let ctx = |what: &str| format!("applying {event_id}: {what}");
    let t = fmt_time(at);
    let order = fetch_one(
        c,
        "orders",
        &ctx("read order"),
        "SELECT client_order_id, qty, filled_qty, avg_fill_price, arrival_price, status \
         FROM orders WHERE client_order_id = $1",
        &[Val::t(client_order_id)],
    )
    .await?;

    // A fill for an order keel does not know (placed by hand at the broker)
    // still moved shares and cash, so it is recorded and applied to the
    // position and cash; only the order update and slippage are skipped.
    let mut slippage = None;
    if let Some(o) = order {
        let ordered = o.dec(1, "qty")?;
        let filled = o.dec(2, "filled_qty")?;
        let avg = o.opt_dec(3, "avg_fill_price")?.unwrap_or_default();
        let arrival = o.dec(4, "arrival_price")?;
        let status = o.parse(5, "status", |s| {
            OrderStatus::parse(s).ok_or_else(|| format!("{s:?} is not an order status"))
        })?;
        slippage = slippage_bps(side, price, arrival);
        let new_filled = filled + qty;
        let new_avg = (avg * filled + price * qty) / new_filled;
        let new_status = if new_filled >= ordered {
            OrderStatus::Filled
        } else if status.is_final() {
            // A late report of a fill made before the cancel/expiry: the
            // quantity counts, the final status stands.
            status
        } else {
            OrderStatus::PartiallyFilled
        };
        exec(
            c,
            &ctx("update order fill"),
            "UPDATE orders SET filled_qty = $2, avg_fill_price = $3, status = $4, updated_at = $5 \
             WHERE client_order_id = $1",
            &[
                Val::t(client_order_id),
                Val::t(fmt_computed(new_filled)),
                Val::t(fmt_computed(new_avg)),
                Val::t(new_status.as_str()),
                Val::t(t.clone()),
            ],
        )
        .await?;
    }

    exec(
        c,
        &ctx("insert fill"),
        "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, at, slippage_bps) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            Val::t(fill_id),
            Val::t(client_order_id),
            Val::t(symbol),
            Val::t(codec::side_str(side)),
            Val::t(fmt_dec(qty)),
            Val::t(fmt_dec(price)),
            Val::t(t),
            Val::ot(slippage.map(fmt_computed)),
        ],
    )
    .await?;

    let pos = fetch_one(
        c,
        "positions",
        &ctx("read position"),
        "SELECT symbol, qty, avg_cost FROM positions WHERE symbol = $1",
        &[Val::t(symbol)],
    )
    .await?;
    let before = match pos {
        Some(p) => Some((p.dec(1, "qty")?, p.dec(2, "avg_cost")?)),
        None => None,
    };
    match position_after(before, side.sign() * qty, price) {
        None => {
            exec(
                c,
                &ctx("delete flat position"),
                "DELETE FROM positions WHERE symbol = $1",
                &[Val::t(symbol)],
            )
            .await?;
        }
        Some((q, a)) => {
            exec(
                c,
                &ctx("upsert position"),
                "INSERT INTO positions (symbol, qty, avg_cost) VALUES ($1, $2, $3) \
                 ON CONFLICT (symbol) DO UPDATE SET qty = excluded.qty, avg_cost = excluded.avg_cost",
                &[Val::t(symbol), Val::t(fmt_computed(q)), Val::t(fmt_computed(a))],
            )
            .await?;
        }
    }

    // Buying spends cash, selling receives it; no fees are modelled here.
    add_cash(c, -side.sign() * qty * price, event_id).await
}

/// Adds `delta` to the single cash row (creating it at zero first).
async fn add_cash<C: Conn + ?Sized>(c: &mut C, delta: Decimal, event_id: &str) -> Result<(), StoreError> {
    let ctx = format!("applying {event_id}: update cash");
    let row = fetch_one(c, "cash", &ctx, "SELECT id, amount FROM cash WHERE id = 1", &[]).await?;
    let now = match row {
        Some(r) => r.dec(1, "amount")?,
        None => Decimal::ZERO,
    };
    exec(
        c,
        &ctx,
        "INSERT INTO cash (id, amount) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
        &[Val::t(fmt_computed(now + delta))],
    )
    .await?;
    Ok(())
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
