//! `keel status`: what the store says, marked by the one valuation rule
//! (`keel_domain::valuation`) at the prices keel recorded, as the dashboard does.

use crate::commands::Env;
use crate::error::{input, CliError};
use anyhow::Context;
use keel_domain::valuation::{self, money, PriceSource};
use keel_domain::Decimal;
use serde::Serialize;

/// One position line.
#[derive(Debug, Serialize)]
struct PositionLine {
    symbol: String,
    qty: Decimal,
    avg_cost: Decimal,
    price: Decimal,
    price_source: PriceSource,
    market_value: Decimal,
    weight: Decimal,
    unrealized_pnl: Decimal,
}

/// The whole status report (`--json` prints exactly this).
#[derive(Debug, Serialize)]
struct Status {
    account_id: String,
    /// `PAPER (embedded)`, `PAPER (alpaca)` or `LIVE (alpaca)`.
    venue: &'static str,
    as_of: String,
    cash: Decimal,
    equity: Decimal,
    gross_exposure: Decimal,
    net_exposure: Decimal,
    positions: Vec<PositionLine>,
    open_orders: usize,
    kill_switch: Option<keel_store::KillState>,
    last_cycle: Option<keel_store::CycleRow>,
    queued_target_sets: Vec<String>,
    eod_snapshots: usize,
    audit_events: u64,
    /// What the audit chain protects against (keyed or accidents only).
    audit_protection: &'static str,
}

/// Prints the status of the configured account.
pub async fn print(env: Env, json: bool) -> Result<(), CliError> {
    let path = env.cfg.store_path();
    if crate::stores::missing(&env.cfg) {
        return Err(input(format!(
            "{}: no keel state here yet (try `keel demo` or `keel submit`)",
            path.display()
        )));
    }
    let store = env.store().await?;
    let now = env.clock.now();
    let cash = store.cash().await.context("reading cash")?;
    let positions = store.positions().await.context("reading positions")?;
    let eods = store.eod_snapshots().await.context("reading snapshots")?;
    // The one valuation, at the prices keel recorded (latest fill or close),
    // exactly as the dashboard marks: see keel_domain::valuation.
    let marks = keel_store::marks::recorded_marks(store.as_ref(), positions.keys(), &eods)
        .await
        .context("reading marks")?;
    let v = valuation::mark(cash, positions.iter().map(|(s, p)| (s, p.qty, p.avg_cost)), |s| {
        marks.get(s).cloned()
    });
    let lines: Vec<PositionLine> = v
        .positions
        .iter()
        .map(|p| PositionLine {
            symbol: p.symbol.to_string(),
            qty: valuation::plain(p.qty),
            avg_cost: valuation::plain(p.avg_cost),
            price: valuation::plain(p.mark.price),
            price_source: p.mark.source,
            market_value: money(p.market_value),
            weight: v.weight(p.market_value).unwrap_or_default(),
            unrealized_pnl: money(p.unrealized_pnl),
        })
        .collect();
    let status = Status {
        account_id: env.cfg.account_id.clone(),
        venue: env.cfg.broker.mode().label(),
        as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cash: money(v.cash),
        equity: money(v.equity),
        gross_exposure: money(v.gross),
        net_exposure: money(v.net),
        positions: lines,
        open_orders: store.open_orders().await.context("reading orders")?.len(),
        kill_switch: store.kill_switch().await.context("reading the kill switch")?,
        last_cycle: store
            .cycles(1)
            .await
            .context("reading cycles")?
            .into_iter()
            .next(),
        queued_target_sets: store
            .queued_target_sets()
            .await
            .context("reading target sets")?
            .into_iter()
            .map(|s| s.id)
            .collect(),
        eod_snapshots: eods.len(),
        audit_events: store.audit_head().await.context("reading the audit log")?.0,
        audit_protection: keel_store::chain::protection(crate::commands::audit_key(&env)?.as_ref()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("rendering status")?
        );
        return Ok(());
    }
    println!("account {}  as of {}", status.account_id, status.as_of);
    println!("venue: {}", status.venue);
    println!(
        "equity {}  cash {}  gross {}  net {}",
        status.equity, status.cash, status.gross_exposure, status.net_exposure
    );
    match &status.kill_switch {
        Some(k) => println!(
            "KILL SWITCH ENGAGED since {} ({:?}): {}",
            k.at, k.source, k.reason
        ),
        None => println!("kill switch: released"),
    }
    match &status.last_cycle {
        Some(c) => println!(
            "last cycle {} at {}: {}",
            c.cycle_id,
            c.started_at,
            c.outcome.as_deref().unwrap_or("unfinished")
        ),
        None => println!("no cycle yet"),
    }
    println!(
        "open orders {}  queued sets {:?}",
        status.open_orders, status.queued_target_sets
    );
    println!(
        "eod snapshots {}  audit events {}",
        status.eod_snapshots, status.audit_events
    );
    println!("audit log: {}", status.audit_protection);
    if !status.positions.is_empty() {
        println!(
            "\n{:<12} {:>10} {:>10} {:>10} {:>5} {:>14} {:>8} {:>12}",
            "symbol", "qty", "avg", "price", "from", "value", "weight", "unrl pnl"
        );
        for p in &status.positions {
            println!(
                "{:<12} {:>10} {:>10} {:>10} {:>5} {:>14} {:>8} {:>12}",
                p.symbol,
                p.qty,
                money(p.avg_cost),
                p.price,
                source_label(p.price_source),
                p.market_value,
                p.weight,
                p.unrealized_pnl
            );
        }
    }
    Ok(())
}

/// A short column label for a mark's origin.
fn source_label(s: PriceSource) -> &'static str {
    match s {
        PriceSource::Quote => "quote",
        PriceSource::Fill => "fill",
        PriceSource::Eod => "close",
        PriceSource::Cost => "cost",
        PriceSource::Unknown => "-",
    }
}
