//! `keel status`: what the store says, marked at the paper market's prices.

use crate::commands::Env;
use crate::error::{input, CliError};
use anyhow::Context;
use keel_domain::Decimal;
use serde::Serialize;

/// One position line.
#[derive(Debug, Serialize)]
struct PositionLine {
    symbol: String,
    qty: Decimal,
    avg_cost: Decimal,
    price: Decimal,
    market_value: Decimal,
    weight: Decimal,
    unrealized_pnl: Decimal,
}

/// The whole status report (`--json` prints exactly this).
#[derive(Debug, Serialize)]
struct Status {
    account_id: String,
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
    let mut lines = Vec::new();
    let (mut gross, mut net) = (Decimal::ZERO, Decimal::ZERO);
    for (sym, p) in &positions {
        let price = keel_broker::universe::quote(env.cfg.paper.seed, sym, now)
            .map(|q| q.reference())
            .unwrap_or(p.avg_cost);
        let mv = p.qty * price;
        gross += mv.abs();
        net += mv;
        lines.push(PositionLine {
            symbol: sym.to_string(),
            qty: p.qty,
            avg_cost: p.avg_cost,
            price,
            market_value: mv.round_dp(2),
            weight: Decimal::ZERO,
            unrealized_pnl: ((price - p.avg_cost) * p.qty).round_dp(2),
        });
    }
    let equity = cash + net;
    for l in &mut lines {
        if equity > Decimal::ZERO {
            l.weight = (l.market_value / equity).round_dp(4);
        }
    }
    let status = Status {
        account_id: env.cfg.account_id.clone(),
        as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cash,
        equity: equity.round_dp(2),
        gross_exposure: gross.round_dp(2),
        net_exposure: net.round_dp(2),
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
        eod_snapshots: store.eod_snapshots().await.context("reading snapshots")?.len(),
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
            "\n{:<12} {:>10} {:>10} {:>10} {:>14} {:>8} {:>12}",
            "symbol", "qty", "avg", "price", "value", "weight", "unrl pnl"
        );
        for p in &status.positions {
            println!(
                "{:<12} {:>10} {:>10} {:>10} {:>14} {:>8} {:>12}",
                p.symbol,
                p.qty,
                p.avg_cost.round_dp(2),
                p.price,
                p.market_value,
                p.weight,
                p.unrealized_pnl
            );
        }
    }
    Ok(())
}
