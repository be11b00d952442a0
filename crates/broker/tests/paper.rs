//! Behaviour of the paper broker through the public `Broker` API.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel_broker::{
    universe, Broker, BrokerError, BrokerEvent, FaultConfig, MarketData, PaperBroker, PaperConfig,
};
use keel_calendar::Session;
use keel_domain::{Clock, FixedClock, Order, OrderStatus, OrderType, Side, Symbol, TimeInForce};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

/// Tuesday 2026-03-10, a regular session (13:30–20:00 UTC).
fn session() -> Session {
    keel_calendar::session(NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()).unwrap()
}

fn mkt(id: &str, s: &str, side: Side, qty: Decimal) -> Order {
    Order {
        client_order_id: id.to_string(),
        symbol: sym(s),
        side,
        qty,
        order_type: OrderType::Market,
        limit_price: None,
        time_in_force: TimeInForce::Day,
    }
}

fn lmt(id: &str, s: &str, side: Side, qty: Decimal, limit: Decimal, tif: TimeInForce) -> Order {
    Order {
        client_order_id: id.to_string(),
        symbol: sym(s),
        side,
        qty,
        order_type: OrderType::Limit,
        limit_price: Some(limit),
        time_in_force: tif,
    }
}

fn quiet() -> PaperConfig {
    PaperConfig {
        partial_fill_prob: 0.0,
        ..PaperConfig::default()
    }
}

struct Venue {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<FixedClock>,
    broker: PaperBroker,
}

async fn venue(cfg: PaperConfig, at: DateTime<Utc>) -> Venue {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper.db");
    let clock = Arc::new(FixedClock::new(at));
    let broker = PaperBroker::open(&path, cfg, clock.clone()).await.unwrap();
    Venue {
        _dir: dir,
        path,
        clock,
        broker,
    }
}

async fn reopen(path: &Path, cfg: PaperConfig, clock: Arc<FixedClock>) -> PaperBroker {
    PaperBroker::open(path, cfg, clock).await.unwrap()
}

fn round_cents(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn expected_buy_price(seed: u64, s: &str, at: DateTime<Utc>) -> Decimal {
    let q = universe::quote(seed, &sym(s), at).unwrap();
    round_cents(q.ask * (Decimal::ONE + dec!(0.0002)))
}

fn expected_sell_price(seed: u64, s: &str, at: DateTime<Utc>) -> Decimal {
    let q = universe::quote(seed, &sym(s), at).unwrap();
    round_cents(q.bid * (Decimal::ONE - dec!(0.0002)))
}

/// A scripted day of trading; returns every event and the final account.
async fn scripted_run(seed: u64, poll_every_minute: bool) -> (Vec<(u64, BrokerEvent)>, String) {
    let s = session();
    let cfg = PaperConfig {
        seed,
        partial_fill_prob: 0.5,
        fill_delay_secs: 90,
        ..PaperConfig::default()
    };
    let v = venue(cfg, s.open + Duration::minutes(5)).await;
    let b = &v.broker;
    let names = ["AAPL", "MSFT", "NVDA", "JPM", "BRK.B", "XOM"];
    for (i, n) in names.iter().enumerate() {
        b.submit(&mkt(
            &format!("buy-{n}"),
            n,
            Side::Buy,
            Decimal::from(10 + i as i64 * 7),
        ))
        .await
        .unwrap();
        v.clock.advance(Duration::seconds(17));
    }
    // Limits just under the market: some fill later in the day, some expire.
    for n in names {
        let q = universe::quote(seed, &sym(n), v.clock.now()).unwrap();
        let limit = round_cents(q.bid * dec!(0.995));
        b.submit(&lmt(
            &format!("lmt-{n}"),
            n,
            Side::Buy,
            dec!(5),
            limit,
            TimeInForce::Day,
        ))
        .await
        .unwrap();
    }
    let end = s.close + Duration::minutes(1);
    if poll_every_minute {
        while v.clock.now() < end {
            v.clock.advance(Duration::minutes(1));
            b.open_orders().await.unwrap();
        }
    }
    v.clock.set(end);
    let acct = b.account().await.unwrap();
    let pos = b.positions().await.unwrap();
    let events = b.events_since(0).await.unwrap();
    (events, format!("{acct:?} {pos:?}"))
}

#[tokio::test]
async fn deterministic_from_seed_and_clock() {
    let (e1, a1) = scripted_run(7, false).await;
    let (e2, a2) = scripted_run(7, false).await;
    assert_eq!(e1, e2);
    assert_eq!(a1, a2);
    assert!(e1.iter().any(|(_, e)| matches!(e, BrokerEvent::Fill { .. })));
    assert!(e1.iter().any(|(_, e)| matches!(e, BrokerEvent::Expired { .. })));
    let (e3, _) = scripted_run(8, false).await;
    assert_ne!(e1, e3, "a different seed gives a different market");
}

#[tokio::test]
async fn outcome_does_not_depend_on_polling_frequency() {
    let (sparse, a1) = scripted_run(11, false).await;
    let (dense, a2) = scripted_run(11, true).await;
    let strip = |v: Vec<(u64, BrokerEvent)>| v.into_iter().map(|(_, e)| e).collect::<Vec<_>>();
    assert_eq!(strip(sparse), strip(dense));
    assert_eq!(a1, a2);
}

#[tokio::test]
async fn partial_fill_completes_after_delay() {
    let s = session();
    let cfg = PaperConfig {
        partial_fill_prob: 1.0,
        fill_delay_secs: 120,
        ..PaperConfig::default()
    };
    let t0 = s.open + Duration::hours(1);
    let v = venue(cfg, t0).await;
    let b = &v.broker;
    let o = b.submit(&mkt("p1", "AAPL", Side::Buy, dec!(100))).await.unwrap();
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    assert!(
        o.filled_qty >= dec!(20) && o.filled_qty <= dec!(80),
        "{}",
        o.filled_qty
    );
    assert_eq!(o.fills.len(), 1);
    assert_eq!(o.fills[0].price, expected_buy_price(42, "AAPL", t0));
    let open = b.open_orders().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].remaining(), dec!(100) - o.filled_qty);

    v.clock.advance(Duration::seconds(119));
    let mid = b.order_by_client_id("p1").await.unwrap().unwrap();
    assert_eq!(mid.status, OrderStatus::PartiallyFilled);

    v.clock.advance(Duration::seconds(1));
    let done = b.order_by_client_id("p1").await.unwrap().unwrap();
    assert_eq!(done.status, OrderStatus::Filled);
    assert_eq!(done.filled_qty, dec!(100));
    assert_eq!(done.fills.len(), 2);
    assert_eq!(done.fills[1].at, t0 + Duration::seconds(120));
    assert_eq!(
        done.fills[1].price,
        expected_buy_price(42, "AAPL", t0 + Duration::seconds(120))
    );
    assert_eq!(done.fills.iter().map(|f| f.qty).sum::<Decimal>(), dec!(100));
    let notional: Decimal = done.fills.iter().map(|f| f.qty * f.price).sum();
    assert_eq!(done.avg_fill_price, Some((notional / dec!(100)).round_dp(6)));
    assert!(b.open_orders().await.unwrap().is_empty());

    let pos = b.positions().await.unwrap();
    assert_eq!(pos.len(), 1);
    assert_eq!(pos[0].qty, dec!(100));
    assert_eq!(b.account().await.unwrap().cash, dec!(1_000_000) - notional);

    let kinds: Vec<_> = b
        .events_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind())
        .collect();
    assert_eq!(kinds, ["accepted", "fill", "fill"]);
}

#[tokio::test]
async fn day_limit_expires_at_the_close_and_gtc_does_not() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(2)).await;
    let b = &v.broker;
    let q = universe::quote(42, &sym("MSFT"), v.clock.now()).unwrap();
    let far = round_cents(q.bid * dec!(0.5));
    let day = b
        .submit(&lmt("d1", "MSFT", Side::Buy, dec!(10), far, TimeInForce::Day))
        .await
        .unwrap();
    assert_eq!(day.status, OrderStatus::Accepted);
    b.submit(&lmt("g1", "MSFT", Side::Buy, dec!(10), far, TimeInForce::Gtc))
        .await
        .unwrap();
    let bp = b.account().await.unwrap().buying_power;
    assert_eq!(
        bp,
        dec!(1_000_000) - dec!(20) * far,
        "resting buys reserve buying power"
    );

    v.clock.set(s.close - Duration::seconds(1));
    assert_eq!(b.open_orders().await.unwrap().len(), 2);

    v.clock.set(s.close + Duration::hours(3));
    let d1 = b.order_by_client_id("d1").await.unwrap().unwrap();
    assert_eq!(d1.status, OrderStatus::Expired);
    assert_eq!(d1.filled_qty, Decimal::ZERO);
    let g1 = b.order_by_client_id("g1").await.unwrap().unwrap();
    assert_eq!(g1.status, OrderStatus::Accepted);
    let open = b.open_orders().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_order_id, "g1");
    let events = b.events_since(0).await.unwrap();
    assert!(events.iter().any(|(_, e)| e
        == &BrokerEvent::Expired {
            client_order_id: "d1".into()
        }));
    assert_eq!(b.account().await.unwrap().cash, dec!(1_000_000));
    assert_eq!(
        b.account().await.unwrap().buying_power,
        dec!(1_000_000) - dec!(10) * far
    );
}

#[tokio::test]
async fn order_received_while_closed_works_from_the_next_open() {
    let s = session();
    let next = keel_calendar::next_session_on_or_after(s.date.succ_opt().unwrap());
    let v = venue(quiet(), s.close + Duration::hours(2)).await;
    let b = &v.broker;
    let o = b.submit(&mkt("night", "JPM", Side::Buy, dec!(3))).await.unwrap();
    assert_eq!(o.status, OrderStatus::Accepted);
    v.clock.set(next.open - Duration::seconds(1));
    assert_eq!(b.open_orders().await.unwrap().len(), 1);
    v.clock.set(next.open + Duration::minutes(30));
    let o = b.order_by_client_id("night").await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.fills[0].at, next.open);
    assert_eq!(o.fills[0].price, expected_buy_price(42, "JPM", next.open));
}

#[tokio::test]
async fn resting_limit_fills_when_the_quote_crosses_and_never_worse_than_limit() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::minutes(1)).await;
    let b = &v.broker;
    let t0 = v.clock.now();
    // Find a limit that the day's path will reach: the lowest ask later in the session.
    let later_min_ask = (10..380)
        .map(|m| {
            universe::quote(42, &sym("TSLA"), s.open + Duration::minutes(m))
                .unwrap()
                .ask
        })
        .min()
        .unwrap();
    let now_ask = universe::quote(42, &sym("TSLA"), t0).unwrap().ask;
    let limit = later_min_ask.max(now_ask * dec!(0.99)).min(now_ask - dec!(0.01));
    let o = b
        .submit(&lmt("l1", "TSLA", Side::Buy, dec!(4), limit, TimeInForce::Day))
        .await
        .unwrap();
    assert_eq!(
        o.status,
        OrderStatus::Accepted,
        "limit {limit} under ask {now_ask} rests"
    );
    v.clock.set(s.close);
    let o = b.order_by_client_id("l1").await.unwrap().unwrap();
    assert_eq!(
        o.status,
        OrderStatus::Filled,
        "limit {limit}, day's lowest ask {later_min_ask}"
    );
    let f = &o.fills[0];
    assert!(f.price <= limit);
    assert_eq!(
        f.at.timestamp() % 60,
        0,
        "resting orders are checked on whole minutes"
    );
    let q = universe::quote(42, &sym("TSLA"), f.at).unwrap();
    assert!(q.ask <= limit);
    // It filled at the first whole minute at which the quote crossed.
    let mut m = next_whole_minute(t0);
    while m < f.at {
        assert!(
            universe::quote(42, &sym("TSLA"), m).unwrap().ask > limit,
            "crossed earlier at {m}"
        );
        m += Duration::minutes(1);
    }
}

fn next_whole_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0).unwrap()
}

#[tokio::test]
async fn ioc_cancels_what_does_not_fill() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(1)).await;
    let b = &v.broker;
    let q = universe::quote(42, &sym("KO"), v.clock.now()).unwrap();
    let o = b
        .submit(&lmt(
            "i1",
            "KO",
            Side::Buy,
            dec!(10),
            round_cents(q.bid * dec!(0.9)),
            TimeInForce::Ioc,
        ))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Canceled);
    let o = b
        .submit(&lmt(
            "i2",
            "KO",
            Side::Buy,
            dec!(10),
            round_cents(q.ask * dec!(1.01)),
            TimeInForce::Ioc,
        ))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert!(o.fills[0].price <= round_cents(q.ask * dec!(1.01)));
}

#[tokio::test]
async fn duplicate_client_order_id_is_refused_without_state_change() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(1)).await;
    let b = &v.broker;
    let order = mkt("dup-1", "AAPL", Side::Buy, dec!(10));
    b.submit(&order).await.unwrap();
    let before = (
        b.account().await.unwrap(),
        b.positions().await.unwrap(),
        b.open_orders().await.unwrap(),
        b.events_since(0).await.unwrap(),
        b.orders().await.unwrap(),
    );
    // Same id, even with different contents.
    assert_eq!(b.submit(&order).await, Err(BrokerError::DuplicateClientOrderId));
    let other = mkt("dup-1", "MSFT", Side::Buy, dec!(1));
    assert_eq!(b.submit(&other).await, Err(BrokerError::DuplicateClientOrderId));
    let after = (
        b.account().await.unwrap(),
        b.positions().await.unwrap(),
        b.open_orders().await.unwrap(),
        b.events_since(0).await.unwrap(),
        b.orders().await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(
        b.submissions_received().await.unwrap(),
        vec![("dup-1".to_string(), 3)]
    );
}

#[tokio::test]
async fn cash_and_positions_are_exact() {
    let s = session();
    let t0 = s.open + Duration::hours(1);
    let v = venue(quiet(), t0).await;
    let b = &v.broker;
    let p_buy = expected_buy_price(42, "AAPL", t0);
    let o = b.submit(&mkt("b1", "AAPL", Side::Buy, dec!(10))).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.avg_fill_price, Some(p_buy));
    let cash1 = dec!(1_000_000) - dec!(10) * p_buy;
    assert_eq!(b.account().await.unwrap().cash, cash1);

    v.clock.advance(Duration::minutes(10));
    let t1 = v.clock.now();
    let p_buy2 = expected_buy_price(42, "AAPL", t1);
    b.submit(&mkt("b2", "AAPL", Side::Buy, dec!(5))).await.unwrap();
    let cash2 = cash1 - dec!(5) * p_buy2;
    let pos = b.positions().await.unwrap();
    assert_eq!(pos[0].qty, dec!(15));
    assert_eq!(
        pos[0].avg_cost,
        ((dec!(10) * p_buy + dec!(5) * p_buy2) / dec!(15)).round_dp(6)
    );

    v.clock.advance(Duration::minutes(10));
    let t2 = v.clock.now();
    let p_sell = expected_sell_price(42, "AAPL", t2);
    b.submit(&mkt("s1", "AAPL", Side::Sell, dec!(6))).await.unwrap();
    let cash3 = cash2 + dec!(6) * p_sell;
    let acct = b.account().await.unwrap();
    assert_eq!(acct.cash, cash3);
    let pos = b.positions().await.unwrap();
    assert_eq!(pos[0].qty, dec!(9));
    assert_eq!(
        pos[0].avg_cost,
        ((dec!(10) * p_buy + dec!(5) * p_buy2) / dec!(15)).round_dp(6)
    );
    let last = universe::quote(42, &sym("AAPL"), t2).unwrap().last;
    assert_eq!(acct.equity, cash3 + dec!(9) * last);

    // Selling more than held is refused; so is a sell that would exceed held minus open sells.
    let err = b
        .submit(&mkt("s2", "AAPL", Side::Sell, dec!(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Rejected { reason } if reason.contains("insufficient quantity")),
        "{err:?}"
    );
    let high = round_cents(last * dec!(2));
    b.submit(&lmt("s3", "AAPL", Side::Sell, dec!(6), high, TimeInForce::Gtc))
        .await
        .unwrap();
    let err = b
        .submit(&mkt("s4", "AAPL", Side::Sell, dec!(4)))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }));
    // Never held: refused.
    assert!(matches!(
        b.submit(&mkt("s5", "MSFT", Side::Sell, dec!(1))).await,
        Err(BrokerError::Rejected { .. })
    ));
    // Buying beyond cash is refused (no margin) and changes nothing but the rejected record.
    let err = b
        .submit(&mkt("b3", "NVDA", Side::Buy, dec!(100000)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Rejected { reason } if reason.contains("buying power")),
        "{err:?}"
    );
    assert_eq!(b.account().await.unwrap().cash, cash3);
    let rejected = b.order_by_client_id("b3").await.unwrap().unwrap();
    assert_eq!(rejected.status, OrderStatus::Rejected);
    assert!(b
        .events_since(0)
        .await
        .unwrap()
        .iter()
        .any(|(_, e)| matches!(e, BrokerEvent::Rejected { client_order_id, .. } if client_order_id == "b3")));
    // Invalid orders are refused too.
    assert!(matches!(
        b.submit(&mkt("z0", "AAPL", Side::Buy, dec!(0))).await,
        Err(BrokerError::Rejected { .. })
    ));
    assert!(matches!(
        b.submit(&mkt("z1", "ZZZZ", Side::Buy, dec!(1))).await,
        Err(BrokerError::Rejected { .. })
    ));
    // Fills in the table sum to the cash change.
    let orders = b.orders().await.unwrap();
    let spent: Decimal = orders
        .iter()
        .flat_map(|o| o.fills.iter().map(move |f| o.side.sign() * f.qty * f.price))
        .sum();
    assert_eq!(dec!(1_000_000) - spent, cash3);
}

#[tokio::test]
async fn shorting_only_when_enabled() {
    let s = session();
    let cfg = PaperConfig {
        allow_short: true,
        ..quiet()
    };
    let t0 = s.open + Duration::hours(1);
    let v = venue(cfg, t0).await;
    let b = &v.broker;
    let o = b.submit(&mkt("sh", "XOM", Side::Sell, dec!(5))).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    let pos = b.positions().await.unwrap();
    assert_eq!(pos[0].qty, dec!(-5));
    assert_eq!(
        b.account().await.unwrap().cash,
        dec!(1_000_000) + dec!(5) * expected_sell_price(42, "XOM", t0)
    );
    b.submit(&mkt("cover", "XOM", Side::Buy, dec!(5))).await.unwrap();
    assert!(b.positions().await.unwrap().is_empty());
}

#[tokio::test]
async fn cancel_semantics() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(1)).await;
    let b = &v.broker;
    let q = universe::quote(42, &sym("PG"), v.clock.now()).unwrap();
    b.submit(&lmt(
        "c1",
        "PG",
        Side::Buy,
        dec!(3),
        round_cents(q.bid * dec!(0.8)),
        TimeInForce::Gtc,
    ))
    .await
    .unwrap();
    b.cancel("c1").await.unwrap();
    assert_eq!(
        b.order_by_client_id("c1").await.unwrap().unwrap().status,
        OrderStatus::Canceled
    );
    b.cancel("c1").await.unwrap(); // idempotent
    b.submit(&mkt("c2", "PG", Side::Buy, dec!(1))).await.unwrap();
    assert!(matches!(b.cancel("c2").await, Err(BrokerError::Rejected { .. })));
    assert!(matches!(
        b.cancel("nope").await,
        Err(BrokerError::Rejected { .. })
    ));
    let canceled: Vec<_> = b
        .events_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| matches!(e, BrokerEvent::Canceled { .. }))
        .collect();
    assert_eq!(canceled.len(), 1);
    assert_eq!(
        b.account().await.unwrap().buying_power,
        b.account().await.unwrap().cash
    );
}

fn faults(f: impl FnOnce(&mut FaultConfig)) -> FaultConfig {
    let mut c = FaultConfig::default();
    f(&mut c);
    c
}

#[tokio::test]
async fn each_fault_kind_produces_the_right_error() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(1)).await;
    let b = &v.broker;

    b.set_faults(faults(|f| f.timeout_before_send = 1.0))
        .await
        .unwrap();
    let e = b
        .submit(&mkt("f1", "AAPL", Side::Buy, dec!(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::Retryable {
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(b.account().await, Err(BrokerError::Retryable { .. })));

    b.set_faults(faults(|f| f.rate_limited = 1.0)).await.unwrap();
    let e = b
        .submit(&mkt("f1", "AAPL", Side::Buy, dec!(1)))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        BrokerError::Retryable {
            message: e
                .to_string()
                .trim_start_matches("retryable broker error: ")
                .to_string(),
            retry_after: Some(std::time::Duration::from_secs(1)),
        }
    );

    b.set_faults(faults(|f| f.server_error = 1.0)).await.unwrap();
    let e = b
        .submit(&mkt("f1", "AAPL", Side::Buy, dec!(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::Retryable {
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(b.positions().await, Err(BrokerError::Retryable { .. })));

    // None of those reached order handling: nothing exists, nothing was counted.
    b.set_faults(FaultConfig::default()).await.unwrap();
    assert_eq!(b.order_by_client_id("f1").await.unwrap(), None);
    assert!(b.submissions_received().await.unwrap().is_empty());
    // So retrying the same id is safe and works.
    assert_eq!(
        b.submit(&mkt("f1", "AAPL", Side::Buy, dec!(1)))
            .await
            .unwrap()
            .status,
        OrderStatus::Filled
    );

    b.set_faults(faults(|f| f.reject = 1.0)).await.unwrap();
    let e = b
        .submit(&mkt("f2", "AAPL", Side::Buy, dec!(1)))
        .await
        .unwrap_err();
    assert!(matches!(e, BrokerError::Rejected { .. }), "{e:?}");
    assert_eq!(
        b.order_by_client_id("f2").await.unwrap().unwrap().status,
        OrderStatus::Rejected
    );

    b.set_faults(faults(|f| f.timeout_after_send = 1.0))
        .await
        .unwrap();
    let e = b
        .submit(&mkt("f3", "AAPL", Side::Buy, dec!(2)))
        .await
        .unwrap_err();
    assert!(e.is_unknown_outcome(), "{e:?}");
    // Reads are unaffected by timeout_after_send: the order is findable.
    let found = b.order_by_client_id("f3").await.unwrap().unwrap();
    assert_eq!(found.status, OrderStatus::Filled);
    assert_eq!(found.filled_qty, dec!(2));

    let q = universe::quote(42, &sym("AAPL"), v.clock.now()).unwrap();
    b.set_faults(FaultConfig::default()).await.unwrap();
    b.submit(&lmt(
        "f4",
        "AAPL",
        Side::Buy,
        dec!(1),
        round_cents(q.bid * dec!(0.8)),
        TimeInForce::Gtc,
    ))
    .await
    .unwrap();
    b.set_faults(faults(|f| f.timeout_after_send = 1.0))
        .await
        .unwrap();
    assert!(b.cancel("f4").await.unwrap_err().is_unknown_outcome());
    b.set_faults(FaultConfig::default()).await.unwrap();
    assert_eq!(
        b.order_by_client_id("f4").await.unwrap().unwrap().status,
        OrderStatus::Canceled
    );

    let cursor = b.events_since(0).await.unwrap().last().unwrap().0;
    b.set_faults(faults(|f| f.drop_event = 1.0)).await.unwrap();
    b.submit(&mkt("f5", "MSFT", Side::Buy, dec!(1))).await.unwrap();
    assert!(b.events_since(cursor).await.unwrap().is_empty(), "events dropped");
    assert_eq!(
        b.order_by_client_id("f5").await.unwrap().unwrap().status,
        OrderStatus::Filled,
        "order state is intact even when its events are lost"
    );

    b.set_faults(faults(|f| f.duplicate_event = 1.0)).await.unwrap();
    b.submit(&mkt("f6", "MSFT", Side::Buy, dec!(1))).await.unwrap();
    let ev: Vec<_> = b
        .events_since(cursor)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0], ev[1]);
    assert_eq!(ev[2], ev[3]);
    assert_eq!(ev[0].kind(), "accepted");
    assert_eq!(ev[2].kind(), "fill");

    b.set_faults(faults(|f| f.delay_ms = 60)).await.unwrap();
    let started = std::time::Instant::now();
    b.account().await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(60));

    assert!(b.set_faults(faults(|f| f.reject = 1.5)).await.is_err());

    // Every id reached order handling at most once.
    let subs = b.submissions_received().await.unwrap();
    assert!(subs.iter().all(|(_, n)| *n == 1), "{subs:?}");
}

#[tokio::test]
async fn fault_decisions_are_reproducible_and_probabilistic() {
    async fn run() -> Vec<String> {
        let s = session();
        let cfg = PaperConfig {
            faults: FaultConfig {
                timeout_before_send: 0.1,
                timeout_after_send: 0.1,
                server_error: 0.1,
                rate_limited: 0.1,
                reject: 0.1,
                ..FaultConfig::default()
            },
            ..quiet()
        };
        let v = venue(cfg, s.open + Duration::hours(1)).await;
        let mut out = Vec::new();
        for i in 0..60 {
            let r = v
                .broker
                .submit(&mkt(&format!("o{i}"), "KO", Side::Buy, dec!(1)))
                .await;
            out.push(match r {
                Ok(o) => format!("ok {:?}", o.status),
                Err(e) => format!("{e:?}"),
            });
            v.clock.advance(Duration::seconds(5));
        }
        out
    }
    let a = run().await;
    assert_eq!(a, run().await);
    let oks = a.iter().filter(|s| s.starts_with("ok")).count();
    assert!((20..60).contains(&oks), "{oks} of 60 succeeded: {a:?}");
}

#[tokio::test]
async fn state_survives_reopening_and_events_resume_from_cursor() {
    let s = session();
    let cfg = PaperConfig {
        partial_fill_prob: 1.0,
        fill_delay_secs: 300,
        ..PaperConfig::default()
    };
    let v = venue(cfg.clone(), s.open + Duration::hours(1)).await;
    let b = &v.broker;
    b.submit(&mkt("r1", "AAPL", Side::Buy, dec!(50))).await.unwrap();
    b.submit(&mkt("r2", "META", Side::Buy, dec!(20))).await.unwrap();
    v.clock.advance(Duration::seconds(301));
    b.submit(&mkt("r3", "AAPL", Side::Sell, dec!(10))).await.unwrap(); // partially filled, rest pending
    let before = (
        b.account().await.unwrap(),
        b.positions().await.unwrap(),
        b.open_orders().await.unwrap(),
        b.orders().await.unwrap(),
        b.submissions_received().await.unwrap(),
    );
    let events = b.events_since(0).await.unwrap();
    let cursor = events.last().unwrap().0;
    assert_eq!(b.open_orders().await.unwrap().len(), 1);

    // Crash: drop without closing, then reopen the same file.
    let path = v.path.clone();
    let clock = v.clock.clone();
    drop(v.broker);
    let b = reopen(&path, cfg.clone(), clock.clone()).await;
    let after = (
        b.account().await.unwrap(),
        b.positions().await.unwrap(),
        b.open_orders().await.unwrap(),
        b.orders().await.unwrap(),
        b.submissions_received().await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(b.events_since(0).await.unwrap(), events);
    assert!(b.events_since(cursor).await.unwrap().is_empty());
    assert_eq!(
        b.submit(&mkt("r1", "AAPL", Side::Buy, dec!(50))).await,
        Err(BrokerError::DuplicateClientOrderId),
        "the venue remembers client order ids across restarts"
    );

    // The pending remainder completes after the restart; the stream resumes at the cursor.
    clock.advance(Duration::seconds(300));
    let new = b.events_since(cursor).await.unwrap();
    assert_eq!(new.len(), 1);
    assert!(new[0].0 > cursor);
    assert!(matches!(&new[0].1, BrokerEvent::Fill { client_order_id, .. } if client_order_id == "r3"));
    assert_eq!(
        b.positions()
            .await
            .unwrap()
            .iter()
            .find(|p| p.symbol == sym("AAPL"))
            .unwrap()
            .qty,
        dec!(40)
    );
    b.close().await;

    // Wrong account or seed for the file is refused.
    let wrong_acct = PaperConfig {
        account_id: "other".into(),
        ..cfg.clone()
    };
    assert!(PaperBroker::open(&path, wrong_acct, clock.clone()).await.is_err());
    let wrong_seed = PaperConfig {
        seed: 1,
        ..cfg.clone()
    };
    assert!(PaperBroker::open(&path, wrong_seed, clock.clone()).await.is_err());
}

#[tokio::test]
async fn usable_as_trait_object_with_snapshot_and_market_data() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::hours(1)).await;
    let now = v.clock.now();
    let path = v.path.clone();
    let clock = v.clock.clone();
    let paper = Arc::new(v.broker);
    let broker: Arc<dyn Broker> = paper.clone();
    let market: Arc<dyn MarketData> = paper;
    broker.submit(&mkt("t1", "V", Side::Buy, dec!(3))).await.unwrap();
    let snap = keel_broker::snapshot(broker.as_ref(), market.as_ref(), &[sym("AAPL")])
        .await
        .unwrap();
    assert_eq!(snap.account_id, "paper");
    assert_eq!(snap.held(&sym("V")), dec!(3));
    assert!(snap.quotes.contains_key(&sym("AAPL")));
    assert!(
        snap.quotes.contains_key(&sym("V")),
        "held symbols are always quoted"
    );
    assert_eq!(
        snap.quotes[&sym("AAPL")],
        universe::quote(42, &sym("AAPL"), now).unwrap()
    );
    assert_eq!(snap.equity, snap.marked_equity_last());

    let q = market.quotes(&[sym("AAPL"), sym("ZZZZ")]).await.unwrap();
    assert_eq!(q.len(), 1);
    let assets = market.assets(&[sym("AAPL"), sym("ZZZZ")]).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert!(assets[&sym("AAPL")].tradable);
    let adv = market.adv(&[sym("AAPL"), sym("ZZZZ")]).await.unwrap();
    assert_eq!(adv.len(), 1);
    // During the session, today's close is not yet part of the history.
    let closes = market.daily_closes(&sym("AAPL"), 5).await.unwrap();
    assert_eq!(closes, universe::daily_closes(42, &sym("AAPL"), s.date, 5));
    clock.set(s.close + Duration::minutes(1));
    let closes = market.daily_closes(&sym("AAPL"), 5).await.unwrap();
    assert_eq!(
        closes.last(),
        universe::session_close(42, &sym("AAPL"), s.date).as_ref()
    );
    let _ = path;
}

trait MarkedLast {
    fn marked_equity_last(&self) -> Decimal;
}

impl MarkedLast for keel_domain::AccountSnapshot {
    /// The paper broker marks positions at the last trade price.
    fn marked_equity_last(&self) -> Decimal {
        self.cash
            + self
                .positions
                .values()
                .map(|p| p.qty * self.quotes[&p.symbol].last)
                .sum::<Decimal>()
    }
}

/// A faulty run interrupted by a crash and reopen makes exactly the same
/// decisions as an uninterrupted one: the fault counter is persisted.
#[tokio::test]
async fn fault_decisions_survive_restart() {
    let s = session();
    let cfg = PaperConfig {
        partial_fill_prob: 0.5,
        fill_delay_secs: 30,
        faults: FaultConfig {
            timeout_before_send: 0.15,
            timeout_after_send: 0.15,
            server_error: 0.1,
            rate_limited: 0.1,
            reject: 0.1,
            drop_event: 0.1,
            duplicate_event: 0.1,
            delay_ms: 0,
        },
        ..PaperConfig::default()
    };
    async fn step(b: &PaperBroker, i: usize) -> String {
        match b.submit(&mkt(&format!("o{i}"), "WMT", Side::Buy, dec!(7))).await {
            Ok(o) => format!("ok {:?} {}", o.status, o.filled_qty),
            Err(e) => format!("{e:?}"),
        }
    }
    let start = s.open + Duration::hours(1);
    let straight = venue(cfg.clone(), start).await;
    let mut a = Vec::new();
    for i in 0..40 {
        a.push(step(&straight.broker, i).await);
        straight.clock.advance(Duration::seconds(20));
    }
    let ea = straight.broker.events_since(0).await;

    let crashy = venue(cfg.clone(), start).await;
    let mut b = Vec::new();
    let mut broker = crashy.broker;
    for i in 0..40 {
        if i % 13 == 12 {
            drop(broker);
            broker = reopen(&crashy.path, cfg.clone(), crashy.clock.clone()).await;
        }
        b.push(step(&broker, i).await);
        crashy.clock.advance(Duration::seconds(20));
    }
    assert_eq!(a, b);
    assert_eq!(ea, broker.events_since(0).await);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Buy(usize, u32),
        Sell(usize, u32),
        LimitBuy(usize, u32, u32),
        Cancel(usize),
        Wait(u32),
    }

    const NAMES: [&str; 4] = ["AAPL", "INTC", "PFE", "COST"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize, 1..200u32).prop_map(|(s, q)| Op::Buy(s, q)),
            (0..4usize, 1..200u32).prop_map(|(s, q)| Op::Sell(s, q)),
            (0..4usize, 1..200u32, 950..1010u32).prop_map(|(s, q, p)| Op::LimitBuy(s, q, p)),
            (0..20usize).prop_map(Op::Cancel),
            (1..7200u32).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever happens, cash is the initial cash less the signed notional
        /// of every fill, positions are the signed sum of filled quantities,
        /// nothing is ever short (shorting off), and the fill events in the
        /// stream are exactly the fills on the orders.
        #[test]
        fn books_balance(ops in proptest::collection::vec(op(), 1..40), seed in 0u64..1000) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let cfg = PaperConfig { seed, ..PaperConfig::default() };
                let v = venue(cfg, session().open + Duration::minutes(10)).await;
                let b = &v.broker;
                for (i, op) in ops.iter().enumerate() {
                    let id = format!("o{i}");
                    let _ = match op {
                        Op::Buy(s, q) => b.submit(&mkt(&id, NAMES[*s], Side::Buy, Decimal::from(*q))).await.map(|_| ()),
                        Op::Sell(s, q) => b.submit(&mkt(&id, NAMES[*s], Side::Sell, Decimal::from(*q))).await.map(|_| ()),
                        Op::LimitBuy(s, q, p) => {
                            let bid = universe::quote(seed, &sym(NAMES[*s]), v.clock.now()).unwrap().bid;
                            let limit = round_cents(bid * Decimal::from(*p) / dec!(1000));
                            b.submit(&lmt(&id, NAMES[*s], Side::Buy, Decimal::from(*q), limit, TimeInForce::Gtc)).await.map(|_| ())
                        }
                        Op::Cancel(k) => b.cancel(&format!("o{k}")).await,
                        Op::Wait(secs) => { v.clock.advance(Duration::seconds(i64::from(*secs))); Ok(()) }
                    };
                }
                let acct = b.account().await.unwrap();
                let orders = b.orders().await.unwrap();
                let mut cash = dec!(1_000_000);
                let mut held = std::collections::BTreeMap::<Symbol, Decimal>::new();
                let mut fill_ids = std::collections::BTreeSet::new();
                for o in &orders {
                    prop_assert!(o.filled_qty <= o.qty);
                    prop_assert_eq!(o.fills.iter().map(|f| f.qty).sum::<Decimal>(), o.filled_qty);
                    for f in &o.fills {
                        cash -= o.side.sign() * f.qty * f.price;
                        *held.entry(o.symbol.clone()).or_default() += o.side.sign() * f.qty;
                        fill_ids.insert(f.fill_id.clone());
                        if let Some(l) = o.limit_price {
                            prop_assert!(f.price <= l);
                        }
                    }
                }
                prop_assert_eq!(acct.cash, cash);
                prop_assert!(acct.cash >= Decimal::ZERO || orders.iter().any(|o| o.order_type == OrderType::Market));
                let pos = b.positions().await.unwrap();
                for p in &pos {
                    prop_assert!(p.qty > Decimal::ZERO);
                    prop_assert_eq!(Some(&p.qty), held.get(&p.symbol));
                }
                prop_assert_eq!(pos.len(), held.values().filter(|q| !q.is_zero()).count());
                let streamed: std::collections::BTreeSet<_> = b.events_since(0).await.unwrap().into_iter().filter_map(|(_, e)| match e {
                    BrokerEvent::Fill { fill, .. } => Some(fill.fill_id),
                    _ => None,
                }).collect();
                prop_assert_eq!(streamed, fill_ids);
                let subs = b.submissions_received().await.unwrap();
                prop_assert!(subs.iter().all(|(_, n)| *n == 1));
                Ok(())
            })?;
        }
    }
}

/// `keel plan`'s view of the venue: reads see fills processed up to now, the
/// file is never written (the next real call sees exactly what it would have
/// without the look), and orders are refused.
#[tokio::test]
async fn read_only_open_sees_processed_fills_writes_nothing_and_refuses_orders() {
    let s = session();
    let v = venue(quiet(), s.open + Duration::minutes(30)).await;
    let order = mkt("ro-1", "AAPL", Side::Buy, dec!(10));
    v.broker.submit(&order).await.unwrap();
    v.broker.close().await;
    let later = s.open + Duration::minutes(40);
    assert!(
        PaperBroker::open_read_only(&v.path.with_extension("nope"), quiet(), v.clock.clone())
            .await
            .is_err()
    );
    let file_before = std::fs::read(&v.path).unwrap();
    let ro = PaperBroker::open_read_only(&v.path, quiet(), Arc::new(FixedClock::new(later)))
        .await
        .unwrap();
    let seen = ro.order_by_client_id("ro-1").await.unwrap().unwrap();
    assert_eq!(
        seen.status,
        OrderStatus::Filled,
        "processing up to now is visible"
    );
    assert_eq!(ro.positions().await.unwrap().len(), 1);
    assert!(matches!(
        ro.submit(&mkt("ro-2", "MSFT", Side::Buy, dec!(1))).await,
        Err(BrokerError::Other(_))
    ));
    assert!(ro.cancel("ro-1").await.is_err());
    ro.close().await;
    assert_eq!(
        std::fs::read(&v.path).unwrap(),
        file_before,
        "a read-only look changed the file"
    );
    // The real venue then processes the same instants itself.
    let rw = reopen(&v.path, quiet(), Arc::new(FixedClock::new(later))).await;
    assert_eq!(
        rw.order_by_client_id("ro-1").await.unwrap().unwrap().status,
        OrderStatus::Filled
    );
    assert_eq!(
        rw.submissions_received().await.unwrap(),
        vec![("ro-1".to_string(), 1)]
    );
}
