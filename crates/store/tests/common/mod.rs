//! Event builders and backend-independent scenarios shared by the SQLite and
//! PostgreSQL test suites, so both backends are held to the same behaviour.

#![allow(dead_code)] // each test binary uses a different subset

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use keel_domain::{
    Event, KillSource, Order, OrderStatus, OrderType, Side, Symbol, Target, TargetSet, TimeInForce,
};
use keel_store::{FillFilter, OrderFilter, Store};
use rust_decimal::Decimal;
use std::str::FromStr;

/// 2026-03-02 14:30:00 UTC plus `secs` seconds.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 30, 0)
        .single()
        .expect("valid base time")
        + Duration::seconds(secs)
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("bad decimal {s}: {e}"))
}

pub fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap_or_else(|e| panic!("bad symbol {s}: {e}"))
}

pub fn account(cash: &str) -> Event {
    Event::AccountOpened {
        account_id: "PA-TEST".into(),
        cash: d(cash),
        at: t(0),
    }
}

pub fn target_set(id: &str, at: i64) -> Event {
    Event::TargetSetQueued {
        set: TargetSet {
            id: id.into(),
            as_of: t(at),
            valid_until: Some(t(at + 600)),
            targets: vec![
                Target {
                    symbol: sym("AAPL"),
                    weight: d("0.05"),
                },
                Target {
                    symbol: sym("MSFT"),
                    weight: d("0.04"),
                },
            ],
            liquidate: false,
        },
        at: t(at),
    }
}

pub fn intent(coid: &str, cycle: &str, symbol: &str, side: Side, qty: &str, arrival: &str, at: i64) -> Event {
    Event::OrderIntent {
        cycle_id: cycle.into(),
        order: Order {
            client_order_id: coid.into(),
            symbol: sym(symbol),
            side,
            qty: d(qty),
            order_type: OrderType::Limit,
            limit_price: Some(d(arrival)),
            time_in_force: TimeInForce::Day,
        },
        arrival_price: d(arrival),
        arrival_spread: None,
        at: t(at),
    }
}

pub fn fill(coid: &str, fill_id: &str, symbol: &str, side: Side, qty: &str, price: &str, at: i64) -> Event {
    Event::OrderFilled {
        client_order_id: coid.into(),
        fill_id: fill_id.into(),
        symbol: sym(symbol),
        side,
        qty: d(qty),
        price: d(price),
        at: t(at),
    }
}

pub fn kill(reason: &str, at: i64) -> Event {
    Event::KillSwitchEngaged {
        reason: reason.into(),
        source: KillSource::Cli,
        at: t(at),
    }
}

pub fn resume(reason: &str, at: i64) -> Event {
    Event::KillSwitchReleased {
        reason: reason.into(),
        source: KillSource::Http,
        at: t(at),
    }
}

/// One trading day touching every event kind and every projection.
pub fn scenario() -> Vec<Event> {
    vec![
        account("100000.00"),
        target_set("set-1", 10),
        Event::CycleStarted {
            cycle_id: "c1".into(),
            target_set_id: "set-1".into(),
            attempt: 0,
            at: t(20),
        },
        Event::GuardDecisions {
            cycle_id: "c1".into(),
            decisions: serde_json::json!({"AAPL": "pass", "MSFT": {"resize": "0.5"}}),
            at: t(21),
        },
        intent("o-aapl", "c1", "AAPL", Side::Buy, "30", "100.00", 22),
        intent("o-msft", "c1", "MSFT", Side::Buy, "10", "400.00", 23),
        Event::OrderAccepted {
            client_order_id: "o-aapl".into(),
            broker_order_id: "B1".into(),
            at: t(24),
        },
        Event::OrderAccepted {
            client_order_id: "o-msft".into(),
            broker_order_id: "B2".into(),
            at: t(25),
        },
        fill("o-aapl", "f1", "AAPL", Side::Buy, "10", "100.10", 26),
        fill("o-aapl", "f2", "AAPL", Side::Buy, "20", "100.25", 27),
        fill("o-msft", "f3", "MSFT", Side::Buy, "4", "399.80", 28),
        Event::OrderClosed {
            client_order_id: "o-msft".into(),
            status: OrderStatus::Canceled,
            reason: Some("end of cycle".into()),
            at: t(29),
        },
        Event::CycleFinished {
            cycle_id: "c1".into(),
            outcome: "submitted".into(),
            at: t(30),
        },
        Event::TargetSetCompleted {
            target_set_id: "set-1".into(),
            at: t(31),
        },
        target_set("set-2", 40),
        Event::CycleStarted {
            cycle_id: "c2".into(),
            target_set_id: "set-2".into(),
            attempt: 0,
            at: t(41),
        },
        intent("o-aapl-s", "c2", "AAPL", Side::Sell, "30", "101.00", 42),
        fill("o-aapl-s", "f4", "AAPL", Side::Sell, "12", "100.90", 43),
        kill("daily loss", 44),
        kill("second trigger", 45),
        Event::Reconciled {
            ok: false,
            differences: vec!["AAPL: store 18, broker 17".into()],
            scope: None,
            at: t(46),
        },
        Event::EodSnapshot {
            date: NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date"),
            equity: d("100012.34"),
            cash: d("95428.20"),
            gross_exposure: d("3400.00"),
            net_exposure: d("3400.00"),
            day_pnl: d("12.34"),
            positions: vec![(sym("AAPL"), d("18"), d("100.5"))],
            slippage_mean_bps: Some(d("7.5")),
            at: t(47),
        },
    ]
}

/// Checks every projection after [`scenario`], with exact decimals.
pub async fn check_scenario(s: &dyn Store) {
    let acct = s.account().await.expect("account").expect("account opened");
    assert_eq!(acct.account_id, "PA-TEST");
    assert_eq!(acct.opening_cash, d("100000.00"));
    assert_eq!(acct.opened_at, t(0));

    // 100000 − 10×100.10 − 20×100.25 − 4×399.80 + 12×100.90, exactly.
    let expected_cash = d("100000") - d("1001.0") - d("2005.0") - d("1599.2") + d("1210.8");
    assert_eq!(expected_cash, d("96605.6"));
    assert_eq!(s.cash().await.expect("cash"), expected_cash);

    let pos = s.positions().await.expect("positions");
    assert_eq!(pos.len(), 2);
    // AAPL: bought 10@100.10 and 20@100.25 → avg 100.20; sold 12 → 18 left at the same avg.
    assert_eq!(pos[&sym("AAPL")].qty, d("18"));
    assert_eq!(pos[&sym("AAPL")].avg_cost, d("100.2"));
    assert_eq!(pos[&sym("MSFT")].qty, d("4"));
    assert_eq!(pos[&sym("MSFT")].avg_cost, d("399.8"));

    let o = s.order("o-aapl").await.expect("order").expect("o-aapl exists");
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.filled_qty, d("30"));
    assert_eq!(o.avg_fill_price, Some(d("100.2")));
    assert_eq!(o.broker_order_id.as_deref(), Some("B1"));
    assert_eq!(o.created_at, t(22));
    assert_eq!(o.updated_at, t(27));
    let o = s.order("o-msft").await.expect("order").expect("o-msft exists");
    assert_eq!(o.status, OrderStatus::Canceled);
    assert_eq!(o.filled_qty, d("4"));
    assert_eq!(o.reason.as_deref(), Some("end of cycle"));
    let o = s
        .order("o-aapl-s")
        .await
        .expect("order")
        .expect("o-aapl-s exists");
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    assert!(s.order("nope").await.expect("order").is_none());

    let open = s.open_orders().await.expect("open orders");
    assert_eq!(
        open.iter()
            .map(|o| o.client_order_id.as_str())
            .collect::<Vec<_>>(),
        ["o-aapl-s"]
    );

    let all = s.orders(&OrderFilter::default()).await.expect("orders");
    assert_eq!(
        all.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(),
        ["o-aapl-s", "o-msft", "o-aapl"],
        "newest first"
    );
    let f = OrderFilter {
        symbol: Some(sym("AAPL")),
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(s.orders(&f).await.expect("orders")[0].client_order_id, "o-aapl-s");
    let f = OrderFilter {
        status: Some(OrderStatus::Canceled),
        day: NaiveDate::from_ymd_opt(2026, 3, 2),
        ..Default::default()
    };
    assert_eq!(s.orders(&f).await.expect("orders").len(), 1);
    let f = OrderFilter {
        day: NaiveDate::from_ymd_opt(2026, 3, 3),
        ..Default::default()
    };
    assert!(s.orders(&f).await.expect("orders").is_empty());

    let fills = s.fills(&FillFilter::default()).await.expect("fills");
    assert_eq!(
        fills.iter().map(|f| f.fill_id.as_str()).collect::<Vec<_>>(),
        ["f4", "f3", "f2", "f1"]
    );
    let by_id = |id: &str| {
        fills
            .iter()
            .find(|f| f.fill_id == id)
            .expect("fill present")
            .clone()
    };
    assert_eq!(
        by_id("f1").slippage_bps,
        Some(d("10")),
        "buy paid 0.10 over 100.00"
    );
    assert_eq!(by_id("f2").slippage_bps, Some(d("25")));
    assert_eq!(
        by_id("f3").slippage_bps,
        Some(d("-5")),
        "buy paid 0.20 under 400.00"
    );
    assert_eq!(
        by_id("f4").slippage_bps,
        Some(d("9.901")),
        "sell received 0.10 under 101.00"
    );
    let f = FillFilter {
        client_order_id: Some("o-aapl".into()),
        ..Default::default()
    };
    assert_eq!(s.fills(&f).await.expect("fills").len(), 2);
    let f = FillFilter {
        symbol: Some(sym("MSFT")),
        day: NaiveDate::from_ymd_opt(2026, 3, 2),
        limit: Some(10),
        ..Default::default()
    };
    assert_eq!(s.fills(&f).await.expect("fills").len(), 1);

    let cycles = s.cycles(10).await.expect("cycles");
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0].cycle_id, "c2");
    assert_eq!(cycles[0].finished_at, None);
    assert_eq!(cycles[1].outcome.as_deref(), Some("submitted"));
    assert_eq!(cycles[1].finished_at, Some(t(30)));
    assert_eq!(s.cycles(1).await.expect("cycles").len(), 1);
    assert_eq!(s.cycle_count_for_set("set-1").await.expect("count"), 1);
    assert_eq!(s.cycle_count_for_set("set-x").await.expect("count"), 0);

    assert_eq!(
        s.guard_decisions("c1").await.expect("decisions"),
        Some(serde_json::json!({"AAPL": "pass", "MSFT": {"resize": "0.5"}}))
    );
    assert_eq!(s.guard_decisions("c2").await.expect("decisions"), None);

    assert_eq!(
        s.target_set_status("set-1").await.expect("status").as_deref(),
        Some("completed")
    );
    assert_eq!(
        s.target_set_status("set-2").await.expect("status").as_deref(),
        Some("executing")
    );
    assert_eq!(s.target_set_status("set-9").await.expect("status"), None);
    let queued = s.queued_target_sets().await.expect("queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, "set-2");
    assert_eq!(queued[0].weight(&sym("AAPL")), d("0.05"));
    let executed = s.executed_target_set_ids().await.expect("executed");
    assert_eq!(executed.into_iter().collect::<Vec<_>>(), ["set-1", "set-2"]);

    let k = s.kill_switch().await.expect("kill").expect("engaged");
    assert_eq!(k.reason, "daily loss", "the first engagement's reason stays");
    assert_eq!(k.at, t(44));

    let r = s.last_reconciliation().await.expect("recon").expect("reconciled");
    assert!(!r.ok);
    assert_eq!(r.differences, ["AAPL: store 18, broker 17"]);

    let eods = s.eod_snapshots().await.expect("eod");
    assert_eq!(eods.len(), 1);
    assert_eq!(eods[0].equity, d("100012.34"));
    assert_eq!(eods[0].day_pnl, d("12.34"));
    assert_eq!(eods[0].snapshot["kind"], "eod_snapshot");
    assert!(s
        .has_eod(NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"))
        .await
        .expect("has"));
    assert!(!s
        .has_eod(NaiveDate::from_ymd_opt(2026, 3, 3).expect("date"))
        .await
        .expect("has"));

    let last = s.last_trade_times().await.expect("last trades");
    assert_eq!(last[&sym("AAPL")], t(43));
    assert_eq!(last[&sym("MSFT")], t(28));
    assert_eq!(s.order_times_since(t(23)).await.expect("times"), [t(23), t(42)]);

    let (seq, hash) = s.audit_head().await.expect("head");
    assert_eq!(seq, scenario().len() as u64);
    assert_eq!(hash.len(), 64);
    let page = s.audit_page(0, 3).await.expect("page");
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(page[0].prev_hash, keel_store::GENESIS_HASH);
    assert_eq!(page[1].prev_hash, page[0].hash);
    assert_eq!(page[0].event().expect("payload decodes"), account("100000.00"));
    assert_eq!(s.audit_page(seq - 1, 10).await.expect("page").len(), 1);
}

/// Appending everything twice changes nothing the second time.
pub async fn check_idempotent_replay(s: &dyn Store, dump: impl AsyncDump) {
    let evs = scenario();
    let first = s.append_batch(&evs).await.expect("append");
    assert_eq!(first, (1..=evs.len() as u64).map(Some).collect::<Vec<_>>());
    let head = s.audit_head().await.expect("head");
    let before = dump.dump().await;

    for ev in &evs {
        assert_eq!(s.append(ev).await.expect("re-append"), None, "{}", ev.event_id());
    }
    assert_eq!(
        s.append_batch(&evs).await.expect("re-append batch"),
        vec![None; evs.len()]
    );
    assert_eq!(s.audit_head().await.expect("head"), head);
    assert_eq!(dump.dump().await, before);
    check_scenario(s).await;
}

/// Batches are all-or-nothing, and duplicates inside a batch are skipped.
pub async fn check_batch_semantics(s: &dyn Store, dump: impl AsyncDump) {
    s.append(&account("1000")).await.expect("account");
    let head = s.audit_head().await.expect("head");
    let before = dump.dump().await;

    let bad = vec![
        intent("o1", "c1", "AAPL", Side::Buy, "5", "10", 1),
        fill("o1", "ok", "AAPL", Side::Buy, "5", "10", 2),
        fill("o1", "zero", "AAPL", Side::Buy, "0", "10", 3),
    ];
    let err = s
        .append_batch(&bad)
        .await
        .expect_err("zero-quantity fill is refused");
    assert!(err.to_string().contains("fill:zero"), "{err}");
    assert_eq!(
        s.audit_head().await.expect("head"),
        head,
        "nothing of the batch was written"
    );
    assert_eq!(dump.dump().await, before);
    assert!(s.order("o1").await.expect("order").is_none());

    let dup = vec![
        intent("o1", "c1", "AAPL", Side::Buy, "5", "10", 1),
        fill("o1", "f1", "AAPL", Side::Buy, "5", "10", 2),
        fill("o1", "f1", "AAPL", Side::Buy, "5", "10", 2),
    ];
    let r = s.append_batch(&dup).await.expect("append");
    assert_eq!(r, [Some(head.0 + 1), Some(head.0 + 2), None]);
    assert_eq!(s.cash().await.expect("cash"), d("950"));
    assert_eq!(s.positions().await.expect("positions")[&sym("AAPL")].qty, d("5"));

    // A second, different account is refused: one store tracks one account.
    let other = Event::AccountOpened {
        account_id: "OTHER".into(),
        cash: d("5"),
        at: t(9),
    };
    assert!(s.append(&other).await.is_err());
    assert_eq!(s.cash().await.expect("cash"), d("950"));
    assert!(s.verify_chain().await.expect("verify").is_ok());
}

/// Exact decimal arithmetic where binary floating point would drift.
pub async fn check_exact_money(s: &dyn Store) {
    s.append(&account("1000")).await.expect("account");
    let mut evs = vec![intent("o", "c", "XYZ", Side::Buy, "30", "0.1", 1)];
    for i in 0..30 {
        evs.push(fill("o", &format!("f{i}"), "XYZ", Side::Buy, "1", "0.1", 2 + i));
    }
    // 0.1 summed 30 times in f64 is 3.0000000000000013.
    s.append_batch(&evs).await.expect("append");
    assert_eq!(s.cash().await.expect("cash"), d("997"));
    let p = &s.positions().await.expect("positions")[&sym("XYZ")];
    assert_eq!((p.qty, p.avg_cost), (d("30"), d("0.1")));
    let o = s.order("o").await.expect("order").expect("exists");
    assert_eq!(
        (o.status, o.filled_qty, o.avg_fill_price),
        (OrderStatus::Filled, d("30"), Some(d("0.1")))
    );

    // Average of 1@10.01 and 2@10.02 is 10.01666…: kept to Decimal's 28 digits, not rounded to a float.
    s.append_batch(&[
        fill("", "g1", "ABC", Side::Buy, "1", "10.01", 40),
        fill("", "g2", "ABC", Side::Buy, "2", "10.02", 41),
    ])
    .await
    .expect("append");
    let p = &s.positions().await.expect("positions")[&sym("ABC")];
    assert_eq!(p.avg_cost, d("30.05") / d("3"));
    // Selling everything removes the row; cash is exact to the cent.
    s.append(&fill("", "g3", "ABC", Side::Sell, "3", "11.11", 42))
        .await
        .expect("append");
    assert!(!s.positions().await.expect("positions").contains_key(&sym("ABC")));
    assert_eq!(s.cash().await.expect("cash"), d("997") - d("30.05") + d("33.33"));
}

/// Rebuilding from the log reproduces the incrementally maintained state.
pub async fn check_rebuild(s: &dyn Store, dump: impl AsyncDump) {
    s.append_batch(&scenario()).await.expect("append");
    let before = dump.dump().await;
    s.rebuild_projections().await.expect("rebuild");
    assert_eq!(dump.dump().await, before);
    check_scenario(s).await;
}

/// Kill switch semantics within one store: sticky until released.
pub async fn check_kill_switch(s: &dyn Store) {
    assert!(s.kill_switch().await.expect("kill").is_none());
    s.append(&kill("reject storm", 1)).await.expect("engage");
    s.append(&kill("drawdown", 2)).await.expect("engage again");
    let k = s.kill_switch().await.expect("kill").expect("engaged");
    assert_eq!(
        (k.reason.as_str(), k.source, k.at),
        ("reject storm", KillSource::Cli, t(1))
    );
    s.append(&resume("checked", 3)).await.expect("release");
    assert!(s.kill_switch().await.expect("kill").is_none());
    s.append(&kill("manual", 4)).await.expect("engage");
    assert_eq!(
        s.kill_switch().await.expect("kill").expect("engaged").reason,
        "manual"
    );
}

/// Something that can dump a store's projections (inherent on SqlStore, not on the trait).
pub trait AsyncDump {
    fn dump(&self) -> impl std::future::Future<Output = Vec<(String, Vec<Vec<Option<String>>>)>>;
}

impl<DB> AsyncDump for &keel_store::SqlStore<DB>
where
    DB: sqlx::Database,
    DB::Connection: keel_store::Conn,
{
    async fn dump(&self) -> Vec<(String, Vec<Vec<Option<String>>>)> {
        self.dump_projections().await.expect("dump projections")
    }
}
