//! Property: for any event sequence, the incrementally maintained projections
//! equal the ones rebuilt from the log, batching does not matter, replaying
//! changes nothing, and positions/cash match an independent exact model.

mod common;

use common::*;
use keel_domain::{Event, OrderStatus, Side};
use keel_store::{SqliteStore, Store};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "BRK.B", "SPY"];

/// A decimal `mantissa × 10^-scale`.
fn dec(mantissa: i64, scale: u32) -> Decimal {
    Decimal::new(mantissa, scale)
}

#[derive(Debug, Clone)]
enum Op {
    Intent {
        order: usize,
        sym: usize,
        sell: bool,
        qty: (i64, u32),
        arrival: (i64, u32),
    },
    Accept {
        order: usize,
    },
    Fill {
        order: usize,
        sym: usize,
        sell: bool,
        qty: (i64, u32),
        price: (i64, u32),
    },
    Close {
        order: usize,
        status: usize,
    },
    Kill {
        release: bool,
    },
    Repeat {
        back: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let qty = (1i64..5_000, 0u32..3);
    let price = (1i64..2_000_000, 0u32..5);
    prop_oneof![
        1 => (0usize..6, 0usize..4, any::<bool>(), qty.clone(), price.clone())
            .prop_map(|(order, sym, sell, qty, arrival)| Op::Intent { order, sym, sell, qty, arrival }),
        1 => (0usize..6).prop_map(|order| Op::Accept { order }),
        4 => (0usize..7, 0usize..4, any::<bool>(), qty, price)
            .prop_map(|(order, sym, sell, qty, price)| Op::Fill { order, sym, sell, qty, price }),
        1 => (0usize..6, 0usize..4).prop_map(|(order, status)| Op::Close { order, status }),
        1 => any::<bool>().prop_map(|release| Op::Kill { release }),
        1 => (0usize..20).prop_map(|back| Op::Repeat { back }),
    ]
}

/// Turns ops into events; order 6 is one keel never placed (a manual trade).
fn events(ops: &[Op]) -> Vec<Event> {
    let mut out = vec![account("250000.00")];
    for (i, op) in ops.iter().enumerate() {
        let at = i as i64 + 1;
        let side = |sell: bool| if sell { Side::Sell } else { Side::Buy };
        let ev = match op {
            Op::Intent {
                order,
                sym,
                sell,
                qty,
                arrival,
            } => Event::OrderIntent {
                cycle_id: "c".into(),
                order: keel_domain::Order {
                    client_order_id: format!("o{order}"),
                    symbol: common::sym(SYMBOLS[*sym]),
                    side: side(*sell),
                    qty: dec(qty.0, qty.1),
                    order_type: keel_domain::OrderType::Market,
                    limit_price: None,
                    time_in_force: keel_domain::TimeInForce::Day,
                },
                arrival_price: dec(arrival.0, arrival.1),
                arrival_spread: None,
                at: t(at),
            },
            Op::Accept { order } => Event::OrderAccepted {
                client_order_id: format!("o{order}"),
                broker_order_id: format!("B{order}"),
                at: t(at),
            },
            Op::Fill {
                order,
                sym,
                sell,
                qty,
                price,
            } => Event::OrderFilled {
                client_order_id: format!("o{order}"),
                fill_id: format!("f{i}"),
                symbol: common::sym(SYMBOLS[*sym]),
                side: side(*sell),
                qty: dec(qty.0, qty.1),
                price: dec(price.0, price.1),
                at: t(at),
            },
            Op::Close { order, status } => Event::OrderClosed {
                client_order_id: format!("o{order}"),
                status: [
                    OrderStatus::Canceled,
                    OrderStatus::Rejected,
                    OrderStatus::Expired,
                    OrderStatus::Filled,
                ][*status],
                reason: Some(format!("r{i}")),
                at: t(at),
            },
            Op::Kill { release: false } => kill(&format!("k{i}"), at),
            Op::Kill { release: true } => resume(&format!("r{i}"), at),
            Op::Repeat { back } => match out.len().checked_sub(back + 1) {
                Some(j) => out[j].clone(),
                None => continue,
            },
        };
        out.push(ev);
    }
    out
}

/// Expected cash and position quantities, from the fills alone, first
/// occurrence of each fill id only (the store must drop the repeats).
fn model(evs: &[Event]) -> (Decimal, BTreeMap<String, (Decimal, Decimal)>) {
    let mut seen = std::collections::BTreeSet::new();
    let mut cash = Decimal::ZERO;
    // symbol → (qty, total cost of the open quantity); average = cost / |qty|.
    let mut pos: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for ev in evs {
        if !seen.insert(ev.event_id()) {
            continue;
        }
        match ev {
            Event::AccountOpened { cash: c, .. } => cash += c,
            Event::OrderFilled {
                symbol,
                side,
                qty,
                price,
                ..
            } => {
                let signed = if *side == Side::Buy { *qty } else { -*qty };
                cash -= signed * price;
                let (q0, cost0) = pos.get(symbol.as_str()).copied().unwrap_or_default();
                let q1 = q0 + signed;
                let cost1 = if q0.is_zero() || (q0 > Decimal::ZERO) == (signed > Decimal::ZERO) {
                    cost0 + qty * price
                } else if q1.is_zero() || (q1 > Decimal::ZERO) == (q0 > Decimal::ZERO) {
                    cost0 * q1.abs() / q0.abs()
                } else {
                    q1.abs() * price
                };
                if q1.is_zero() {
                    pos.remove(symbol.as_str());
                } else {
                    pos.insert(symbol.to_string(), (q1, cost1));
                }
            }
            _ => {}
        }
    }
    (cash, pos)
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rebuild_equals_incremental(ops in prop::collection::vec(op(), 1..120), split in 1usize..40) {
        let evs = events(&ops);
        run(async {
            // Store A: appended in batches of `split`.
            let a = SqliteStore::open_in_memory().await.expect("open");
            for chunk in evs.chunks(split) {
                a.append_batch(chunk).await.expect("append");
            }
            let incremental = a.dump_projections().await.expect("dump");
            let head = a.audit_head().await.expect("head");

            a.rebuild_projections().await.expect("rebuild");
            assert_eq!(a.dump_projections().await.expect("dump"), incremental, "rebuild differs");

            // Store B: one event at a time.
            let b = SqliteStore::open_in_memory().await.expect("open");
            for ev in &evs {
                b.append(ev).await.expect("append");
            }
            assert_eq!(b.dump_projections().await.expect("dump"), incremental, "batching matters");
            assert_eq!(b.audit_head().await.expect("head"), head);

            // Replaying everything is a no-op.
            let again = a.append_batch(&evs).await.expect("replay");
            assert!(again.iter().all(Option::is_none));
            assert_eq!(a.dump_projections().await.expect("dump"), incremental);
            assert_eq!(a.audit_head().await.expect("head"), head);
            assert!(a.verify_chain().await.expect("verify").is_ok());
            // The in-memory replay of `keel audit verify` proves every projection.
            let proof = a.verify_log(None).await.expect("verify log");
            assert!(proof.chain.is_none() && proof.projections.is_empty(), "{:?}", proof.failures());

            // Independent exact model of cash and positions.
            let (cash, pos) = model(&evs);
            assert_eq!(a.cash().await.expect("cash"), cash);
            let got = a.positions().await.expect("positions");
            assert_eq!(
                got.keys().map(|s| s.to_string()).collect::<Vec<_>>(),
                pos.keys().cloned().collect::<Vec<_>>()
            );
            for (s, (q, cost)) in &pos {
                let row = &got[&common::sym(s)];
                assert_eq!(row.qty, *q, "{s} qty");
                // Average cost is a quotient: equal to the model's within
                // Decimal's 28-digit rounding, compared relative to its size.
                let expected = cost / q.abs();
                let tol = expected.abs() * Decimal::new(1, 20) + Decimal::new(1, 20);
                assert!((row.avg_cost - expected).abs() <= tol, "{s} avg {} vs {expected}", row.avg_cost);
            }
        });
    }
}

/// The digests of a verified state (its serialised form, for comparing).
fn digests(s: &keel_store::VerifiedState) -> serde_json::Value {
    serde_json::to_value(s).expect("state serialises")["digests"].clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Start-up's partial replay: proving the projections from a verified
    /// state of a prefix of the log gives the same verdict and the same state
    /// as replaying the whole log, on a store file (raw scan) and in memory
    /// (sqlx scan); and a projection edited afterwards is still named.
    #[test]
    fn replay_from_a_verified_state_equals_a_full_replay(
        ops in prop::collection::vec(op(), 1..100),
        cut in any::<prop::sample::Index>(),
        edit in any::<prop::sample::Index>(),
    ) {
        let evs = events(&ops);
        let k = cut.index(evs.len() + 1);
        run(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = SqliteStore::open(dir.path().join("keel.db")).await.expect("open");
            let memory = SqliteStore::open_in_memory().await.expect("open");
            for s in [&file, &memory] {
                s.append_batch(&evs[..k]).await.expect("append");
                let (r, state) = s.verify_log_from(None, None).await.expect("verify");
                assert!(r.is_ok(), "{:?}", r.failures());
                let state = state.expect("a verified log yields a state");
                assert_eq!(state.seq, s.audit_head().await.expect("head").0);
                s.append_batch(&evs[k..]).await.expect("append");

                let (fast, fast_state) = s.verify_log_from(None, Some(&state)).await.expect("verify");
                let (full, full_state) = s.verify_log_from(None, None).await.expect("verify");
                assert!(fast.is_ok() && full.is_ok(), "{:?} {:?}", fast.failures(), full.failures());
                assert_eq!(full.replayed_from, 1);
                // Either the state was continued, or an event needed a row it
                // does not hold (an order keel never placed) and all was replayed.
                assert!(
                    fast.replayed_from == state.seq + 1 || fast.replayed_from == 1,
                    "replayed from {}",
                    fast.replayed_from
                );
                let (fast_state, full_state) = (fast_state.expect("state"), full_state.expect("state"));
                assert_eq!((fast_state.seq, &fast_state.head), (full_state.seq, &full_state.head));
                assert_eq!(digests(&fast_state), digests(&full_state));

                // Any edit of any projection row is found from the state too.
                let dump = s.dump_projections().await.expect("dump");
                let rows: Vec<(String, String)> = dump
                    .iter()
                    .flat_map(|(t, rows)| rows.iter().map(move |r| (t.clone(), r[0].clone().unwrap_or_default())))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let (table, key) = &rows[edit.index(rows.len())];
                let key_col = keel_store_test_key_column(table);
                let mut c = s.pool().acquire().await.expect("conn");
                keel_store::Conn::exec(
                    &mut *c,
                    &format!("DELETE FROM {table} WHERE {key_col} = '{}'", key.replace('\'', "''")),
                    &[],
                )
                .await
                .expect("tamper");
                drop(c);
                let (r, st) = s.verify_log_from(None, Some(&fast_state)).await.expect("verify");
                assert!(st.is_none(), "a tampered store must not yield a state");
                assert!(
                    r.projections.iter().any(|p| p.starts_with(&format!("{table} {key}: missing"))),
                    "{table} {key}: {:?}",
                    r.projections
                );
            }
        });
    }
}

/// The key column of a projection table (its first column).
fn keel_store_test_key_column(table: &str) -> &'static str {
    match table {
        "account" => "id",
        "cash" | "kill_switch" | "reconciliations" => "id",
        "target_sets" => "id",
        "cycles" | "guard_decisions" => "cycle_id",
        "orders" => "client_order_id",
        "fills" => "fill_id",
        "positions" => "symbol",
        "eod_snapshots" => "date",
        other => panic!("unknown table {other}"),
    }
}
