//! Load-benchmark target: a dashboard over a big store.
//!
//! ```text
//! load_server --db PATH [--port 18080] [--years 10] [--fills 1000000]
//! ```
//!
//! On first use the store at PATH is filled through the real `Store::append_batch`
//! path with `--years` of sessions (one cycle, ~N/sessions fills and one EOD
//! snapshot per session); later runs reuse it. Then it serves the dashboard
//! on 127.0.0.1:PORT until Ctrl-C. `bench/load.sh` drives it with wrk.

use chrono::{Duration, NaiveDate};
use keel_domain::{Event, Order, OrderType, Side, Symbol, TimeInForce};
use keel_server::ServerConfig;
use keel_store::{SqliteStore, Store};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Instruments traded by the synthetic history.
const SYMBOLS: usize = 50;
/// Events per durable batch while seeding.
const BATCH: usize = 5_000;
/// Fills per order.
const FILLS_PER_ORDER: u64 = 2;

struct Args {
    db: String,
    port: u16,
    years: i32,
    fills: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        db: String::new(),
        port: 18080,
        years: 10,
        fills: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--db" => a.db = v,
            "--port" => a.port = v.parse().map_err(|e| format!("--port {v}: {e}"))?,
            "--years" => a.years = v.parse().map_err(|e| format!("--years {v}: {e}"))?,
            "--fills" => a.fills = v.parse().map_err(|e| format!("--fills {v}: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.db.is_empty() {
        return Err("--db PATH is required".into());
    }
    Ok(a)
}

fn symbol(i: usize) -> Result<Symbol, String> {
    Symbol::new(&format!("SYM{i:02}")).map_err(|e| e.to_string())
}

/// A deterministic, slowly drifting price per symbol and session.
fn price(sym: usize, day: usize) -> Decimal {
    let base = 50 + (sym as i64 * 37) % 400;
    let wiggle = ((day as i64 * 7 + sym as i64 * 13) % 41) - 20; // ±20 cents
    let drift = day as i64 * (sym as i64 % 5); // cents per session
    Decimal::new(base * 100 + drift + wiggle, 2)
}

async fn seed(store: &dyn Store, years: i32, fills: u64) -> Result<(), String> {
    let start = NaiveDate::from_ymd_opt(2016, 1, 4).ok_or("bad start date")?;
    let end = NaiveDate::from_ymd_opt(2016 + years, 1, 1).ok_or("bad end date")?;
    let sessions = keel_calendar::sessions(start, end);
    let per_day = (fills / FILLS_PER_ORDER).div_ceil(sessions.len().max(1) as u64);
    let syms: Vec<Symbol> = (0..SYMBOLS).map(symbol).collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH + 64);
    let mut cash = Decimal::new(100_000_000, 0);
    batch.push(Event::AccountOpened {
        account_id: "BENCH".into(),
        cash,
        at: sessions.first().ok_or("no sessions")?.open - Duration::hours(1),
    });
    let mut held: BTreeMap<usize, Decimal> = BTreeMap::new();
    let mut prev_equity = cash;
    let mut fill_no = 0u64;
    let mut order_no = 0u64;
    for (day, s) in sessions.iter().enumerate() {
        let cycle_id = format!("bench-{}#0", s.date);
        batch.push(Event::CycleStarted {
            cycle_id: cycle_id.clone(),
            target_set_id: format!("bench-{}", s.date),
            attempt: 0,
            at: s.open + Duration::minutes(30),
        });
        // Buy on even sessions, sell the same shares back on odd ones, so
        // positions stay bounded and no sell exceeds what is held.
        let side = if day % 2 == 0 { Side::Buy } else { Side::Sell };
        for k in 0..per_day {
            if fill_no >= fills {
                break;
            }
            let si = (k as usize) % SYMBOLS;
            let qty = Decimal::new(10, 0);
            let px = price(si, day);
            order_no += 1;
            let coid = format!("k-bench-{order_no:09}");
            let at = s.open + Duration::minutes(31) + Duration::milliseconds(k as i64 * 50);
            batch.push(Event::OrderIntent {
                cycle_id: cycle_id.clone(),
                order: Order {
                    client_order_id: coid.clone(),
                    symbol: syms[si].clone(),
                    side,
                    qty,
                    order_type: OrderType::Market,
                    limit_price: None,
                    time_in_force: TimeInForce::Day,
                },
                arrival_price: px,
                arrival_spread: None,
                at,
            });
            for (j, q) in [Decimal::new(6, 0), Decimal::new(4, 0)].into_iter().enumerate() {
                fill_no += 1;
                let slip = Decimal::new(((fill_no * 7) % 11) as i64 - 4, 2);
                let fpx = if side == Side::Buy { px + slip } else { px - slip };
                batch.push(Event::OrderFilled {
                    client_order_id: coid.clone(),
                    fill_id: format!("BF{fill_no:010}"),
                    symbol: syms[si].clone(),
                    side,
                    qty: q,
                    price: fpx,
                    at: at + Duration::milliseconds(10 + j as i64),
                });
                cash -= side.sign() * q * fpx;
                *held.entry(si).or_default() += side.sign() * q;
            }
        }
        batch.push(Event::CycleFinished {
            cycle_id,
            outcome: "submitted".into(),
            at: s.open + Duration::minutes(45),
        });
        let mut positions = Vec::new();
        let (mut gross, mut net) = (Decimal::ZERO, Decimal::ZERO);
        for (&si, &q) in held.iter().filter(|(_, q)| !q.is_zero()) {
            let close = price(si, day);
            positions.push((syms[si].clone(), q, close));
            gross += (q * close).abs();
            net += q * close;
        }
        let equity = cash + net;
        batch.push(Event::EodSnapshot {
            date: s.date,
            equity,
            cash,
            gross_exposure: gross,
            net_exposure: net,
            day_pnl: equity - prev_equity,
            positions,
            slippage_mean_bps: Some(Decimal::new(12, 1)),
            at: s.close + Duration::minutes(5),
        });
        prev_equity = equity;
        if batch.len() >= BATCH {
            store.append_batch(&batch).await.map_err(|e| e.to_string())?;
            batch.clear();
            if day % 250 == 0 {
                eprintln!(
                    "seeded {} sessions, {fill_no} fills ({:.0} s)",
                    day + 1,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    store.append_batch(&batch).await.map_err(|e| e.to_string())?;
    eprintln!(
        "seeded {} sessions, {fill_no} fills, {order_no} orders in {:.0} s",
        sessions.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("load_server: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let a = args()?;
    let store = Arc::new(SqliteStore::open(&a.db).await.map_err(|e| e.to_string())?);
    let (head, _) = store.audit_head().await.map_err(|e| e.to_string())?;
    if head == 0 {
        seed(store.as_ref(), a.years, a.fills).await?;
    } else {
        eprintln!("reusing {} ({head} audit rows)", a.db);
    }
    let cfg = ServerConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], a.port)),
        ..ServerConfig::default()
    };
    eprintln!("serving on http://{}/", cfg.bind);
    keel_server::serve(cfg, store, None, None, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}
