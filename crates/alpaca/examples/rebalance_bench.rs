//! Benchmark: the adapter's request budget under a large rebalance, against
//! a running `alpaca-fake` (see `crates/alpaca/bench/rebalance.sh`, which
//! starts the fakes and runs this).
//!
//! 1. **Paced**: a rebalance of `--orders` orders (default 500) — the reads a
//!    cycle makes (account, positions, open orders, quotes, assets), then one
//!    submit per order — under a budget of `--rpm` requests per minute,
//!    against a fake enforcing the same budget. Alpaca's real budget is 200
//!    per minute (500 orders: about 2.6 minutes); the run is scaled down in
//!    time by raising both sides' budget to `--rpm` (default 600: about a
//!    minute). Passes when no request met a 429 and the whole rebalance took
//!    at most 5% longer than the bound `requests / rpm`.
//! 2. **Unpaced**: the time from the first request to the last
//!    acknowledgement of `--fast-orders` orders (default 100), with the
//!    adapter's widest budget (10,000 per minute, burst 50) against a fake
//!    with an unlimited one.
//!
//! ```text
//! cargo run -p keel-alpaca --example rebalance_bench -- \
//!     --paced 127.0.0.1:PORT --unpaced 127.0.0.1:PORT2 [--orders 500] [--rpm 600] [--fast-orders 100]
//! ```
//!
//! Orders are 1-share limit buys 5% under the market, spread over the
//! universe's symbols, so they rest: the measurement is the venue round
//! trip and the pacing, not matching.

use keel_alpaca::{AlpacaConfig, Credentials};
use keel_broker::{Broker, MarketData};
use keel_domain::{Clock, Decimal, Order, OrderType, Side, Symbol, SystemClock, TimeInForce};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    paced: Option<String>,
    unpaced: Option<String>,
    orders: usize,
    rpm: u32,
    fast_orders: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        paced: None,
        unpaced: None,
        orders: 500,
        rpm: 600,
        fast_orders: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} = {v:?}: {e}"));
        match flag.as_str() {
            "--paced" => a.paced = Some(val()?),
            "--unpaced" => a.unpaced = Some(val()?),
            "--orders" => a.orders = num(val()?)?.clamp(1, 5_000) as usize,
            "--rpm" => a.rpm = num(val()?)?.clamp(2, 10_000) as u32,
            "--fast-orders" => a.fast_orders = num(val()?)?.clamp(1, 5_000) as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn venue(addr: &str, key: &str, rpm: u32, burst: u32) -> Result<keel_alpaca::Venue, String> {
    let cfg = AlpacaConfig {
        trading_url: Some(format!("http://{addr}")),
        data_url: Some(format!("http://{addr}")),
        stream_url: Some(format!("ws://{addr}/stream")),
        requests_per_minute: rpm,
        burst,
        ..Default::default()
    };
    // One budget per key in a process: each run gets its own key.
    let creds = Credentials::new(key, "bench-secret").map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    keel_alpaca::connect(&cfg, creds, clock).map_err(|e| e.to_string())
}

/// Resting 1-share buys 5% under the market, `n` of them over the universe.
async fn orders(market: &dyn MarketData, n: usize, tag: &str) -> Result<Vec<Order>, String> {
    let symbols: Vec<Symbol> = keel_broker::universe::symbols();
    let quotes = market.quotes(&symbols).await.map_err(|e| e.to_string())?;
    let assets = market.assets(&symbols).await.map_err(|e| e.to_string())?;
    let priced: Vec<_> = quotes
        .values()
        .filter(|q| assets.get(&q.symbol).is_some_and(|a| a.tradable))
        .collect();
    if priced.is_empty() {
        return Err("the venue quoted nothing".into());
    }
    let nonce = std::process::id();
    Ok((0..n)
        .map(|i| {
            let q = priced[i % priced.len()];
            Order {
                client_order_id: format!("bench-{tag}-{nonce}-{i}"),
                symbol: q.symbol.clone(),
                side: Side::Buy,
                qty: Decimal::ONE,
                order_type: OrderType::Limit,
                limit_price: Some((q.bid * Decimal::new(95, 2)).round_dp(2)),
                time_in_force: TimeInForce::Day,
            }
        })
        .collect())
}

/// The reads a cycle makes before it sends.
async fn cycle_reads(broker: &dyn Broker, market: &dyn MarketData) -> Result<(), String> {
    let e = |e: keel_broker::BrokerError| e.to_string();
    broker.account().await.map_err(e)?;
    broker.positions().await.map_err(e)?;
    broker.open_orders().await.map_err(e)?;
    let symbols = keel_broker::universe::symbols();
    market.quotes(&symbols).await.map_err(e)?;
    market.assets(&symbols).await.map_err(e)?;
    Ok(())
}

async fn send_all(broker: &dyn Broker, orders: &[Order]) -> Result<(), String> {
    for o in orders {
        broker
            .submit(o)
            .await
            .map_err(|e| format!("{}: {e}", o.client_order_id))?;
    }
    Ok(())
}

async fn paced(addr: &str, n: usize, rpm: u32) -> Result<bool, String> {
    let burst = 5;
    let v = venue(addr, "bench-paced", rpm, burst)?;
    let (broker, market) = (v.broker(), v.market());
    // Built before the clock starts: the bench measures the rebalance, not its setup.
    let list = orders(market.as_ref(), n, "paced").await?;
    let before = v.stats();
    let start = Instant::now();
    cycle_reads(broker.as_ref(), market.as_ref()).await?;
    send_all(broker.as_ref(), &list).await?;
    let took = start.elapsed();
    let after = v.stats();
    let requests = after.requests - before.requests;
    let throttled = after.throttled - before.throttled;
    let bound = Duration::from_secs_f64(requests as f64 * 60.0 / f64::from(rpm));
    let ratio = took.as_secs_f64() / bound.as_secs_f64();
    println!(
        "paced: {n} orders, {requests} requests at {rpm}/min (burst {burst}) in {:.2} s; bound {:.2} s; \
         ratio {ratio:.3}; 429s {throttled}; paced waits {:.2} s",
        took.as_secs_f64(),
        bound.as_secs_f64(),
        after.waited.saturating_sub(before.waited).as_secs_f64()
    );
    Ok(throttled == 0 && ratio <= 1.05)
}

async fn unpaced(addr: &str, n: usize) -> Result<(), String> {
    let v = venue(addr, "bench-unpaced", 10_000, 50)?;
    let (broker, market) = (v.broker(), v.market());
    let list = orders(market.as_ref(), n, "fast").await?;
    let start = Instant::now();
    cycle_reads(broker.as_ref(), market.as_ref()).await?;
    send_all(broker.as_ref(), &list).await?;
    let took = start.elapsed();
    let s = v.stats();
    println!(
        "unpaced: {n} orders, cycle start to last acknowledgement {:.0} ms ({:.1} ms per order); 429s {}",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / n as f64,
        s.throttled
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rebalance_bench: {e}");
            std::process::exit(2);
        }
    };
    let mut ok = true;
    if let Some(addr) = &a.paced {
        match paced(addr, a.orders, a.rpm).await {
            Ok(pass) => {
                println!("paced: {}", if pass { "PASS" } else { "FAIL" });
                ok &= pass;
            }
            Err(e) => {
                eprintln!("paced run failed: {e}");
                ok = false;
            }
        }
    }
    if let Some(addr) = &a.unpaced {
        if let Err(e) = unpaced(addr, a.fast_orders).await {
            eprintln!("unpaced run failed: {e}");
            ok = false;
        }
    }
    std::process::exit(if ok { 0 } else { 1 });
}
