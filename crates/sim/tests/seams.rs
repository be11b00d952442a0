//! The seams the simulator added to other crates behave as documented:
//! `PaperBroker::open_in_memory` is the same venue without a file,
//! `PaperBroker::inspect` changes nothing (not even the fault sequence, which
//! determinism depends on), and `SqliteStore::open_unsynced` persists across
//! a reopen within the process.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{Broker, FaultConfig, PaperBroker, PaperConfig};
use keel_domain::{Clock, Event, FixedClock, Order, OrderType, Side, Symbol, TimeInForce};
use keel_store::{SqliteStore, Store};
use rust_decimal::Decimal;
use std::sync::Arc;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn t0() -> DateTime<Utc> {
    "2026-03-10T15:00:00Z".parse().unwrap()
}

fn order(id: &str, side: Side, qty: i64) -> Order {
    Order {
        client_order_id: id.into(),
        symbol: Symbol::new("AAPL").unwrap(),
        side,
        qty: Decimal::from(qty),
        order_type: OrderType::Market,
        limit_price: None,
        time_in_force: TimeInForce::Day,
    }
}

/// Outcomes of a fixed script of calls, with or without inspections in between.
async fn script(inspect: bool) -> (Vec<String>, Decimal) {
    let clock = Arc::new(FixedClock::new(t0()));
    let cfg = PaperConfig {
        account_id: "seam".into(),
        seed: 3,
        partial_fill_prob: 0.5,
        faults: FaultConfig {
            timeout_before_send: 0.3,
            server_error: 0.2,
            ..FaultConfig::default()
        },
        ..PaperConfig::default()
    };
    let b = PaperBroker::open_in_memory(cfg, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("in-memory venue");
    let mut out = Vec::new();
    for i in 0..40 {
        clock.advance(Duration::seconds(45));
        let r = b.submit(&order(&format!("o{i}"), Side::Buy, 10 + i)).await;
        out.push(format!("{:?}", r.map(|o| (o.status, o.filled_qty))));
        if inspect {
            let l = b.inspect().await.expect("inspect");
            let l2 = b.inspect().await.expect("inspect again");
            assert_eq!(l, l2, "looking twice sees the same books");
        }
        out.push(format!("{:?}", b.account().await.map(|a| a.cash)));
    }
    let cash = b.inspect().await.expect("inspect").cash;
    (out, cash)
}

#[test]
fn inspect_is_free_of_side_effects_and_the_memory_venue_trades() {
    let (plain, cash_a) = block_on(script(false));
    let (looked, cash_b) = block_on(script(true));
    assert_eq!(plain, looked, "inspecting changed what the venue did");
    assert_eq!(cash_a, cash_b);
    assert!(
        cash_a < Decimal::from(1_000_000),
        "the venue traded: cash {cash_a}"
    );
    assert!(
        plain.iter().any(|l| l.contains("Retryable")),
        "faults were injected"
    );
}

#[test]
fn inspect_matches_the_venue_api() {
    block_on(async {
        let clock = Arc::new(FixedClock::new(t0()));
        let cfg = PaperConfig {
            account_id: "seam".into(),
            partial_fill_prob: 1.0,
            ..PaperConfig::default()
        };
        let b = PaperBroker::open_in_memory(cfg, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        b.submit(&order("a", Side::Buy, 100)).await.unwrap();
        let l = b.inspect().await.unwrap();
        assert_eq!(l.cash, b.account().await.unwrap().cash);
        assert_eq!(l.positions, b.positions().await.unwrap());
        let open: Vec<_> = l.open_orders.iter().map(|o| o.to_open_order()).collect();
        assert_eq!(open, b.open_orders().await.unwrap());
        assert_eq!(open.len(), 1, "a partial fill leaves the rest working");
        // The rest fills a minute later: inspect sees it without any venue call.
        clock.advance(Duration::minutes(2));
        let l = b.inspect().await.unwrap();
        assert!(l.open_orders.is_empty());
        assert_eq!(l.positions[0].qty, Decimal::from(100));
    });
}

#[test]
fn unsynced_store_survives_a_reopen() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.db");
        let s = SqliteStore::open_unsynced(&path).await.unwrap();
        s.append(&Event::AccountOpened {
            account_id: "seam".into(),
            cash: Decimal::from(5),
            at: t0(),
        })
        .await
        .unwrap();
        let head = s.audit_head().await.unwrap();
        s.close().await;
        let s = SqliteStore::open_unsynced(&path).await.unwrap();
        assert_eq!(s.audit_head().await.unwrap(), head);
        assert_eq!(s.cash().await.unwrap(), Decimal::from(5));
        assert!(s.verify_chain().await.unwrap().first_bad.is_none());
    });
}
