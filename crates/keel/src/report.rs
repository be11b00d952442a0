//! Human-readable rendering of a plan for `keel plan`.

use chrono::{DateTime, Utc};
use keel_domain::TargetSet;
use keel_planner::{Outcome, Plan};
use keel_worker::DryRun;
use std::io::{self, Write};

/// Writes a dry run: what the next cycle would do, then the plan.
pub fn write_dry_run(out: &mut impl Write, set: &TargetSet, dry: &DryRun) -> io::Result<()> {
    write_plan(out, set, dry.at, &dry.plan)?;
    writeln!(
        out,
        "\ncycle {} (attempt {}): {}",
        dry.cycle_id,
        dry.attempt,
        if dry.would_send {
            format!(
                "the next cycle at this instant would send these {} order(s)",
                dry.plan.orders.len()
            )
        } else {
            "the next cycle at this instant would send nothing".to_string()
        }
    )?;
    for h in &dry.holds {
        writeln!(out, "  WOULD NOT SEND: {h}")?;
    }
    for n in &dry.notes {
        writeln!(out, "  note: {n}")?;
    }
    Ok(())
}

/// Writes every proposed order and every guard decision with its reason.
pub fn write_plan(out: &mut impl Write, set: &TargetSet, now: DateTime<Utc>, plan: &Plan) -> io::Result<()> {
    writeln!(
        out,
        "plan for target set {} at {} (dry run: nothing sent, nothing written)",
        set.id,
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    writeln!(
        out,
        "equity {}  vol scale {}  gross {} -> {}  net {} -> {}",
        plan.equity.round_dp(2),
        plan.vol_scale.normalize(),
        plan.exposure.gross_before.round_dp(2),
        plan.exposure.gross_after.round_dp(2),
        plan.exposure.net_before.round_dp(2),
        plan.exposure.net_after.round_dp(2),
    )?;
    for b in &plan.plan_blocks {
        writeln!(
            out,
            "PLAN BLOCKED by {:?}: {} — {}",
            b.guard,
            b.reason.as_str(),
            b.detail
        )?;
    }
    writeln!(out, "\norders ({}):", plan.orders.len())?;
    for o in &plan.orders {
        let px = o
            .limit_price
            .map(|p| format!("limit {}", p.normalize()))
            .unwrap_or_else(|| "market".into());
        writeln!(
            out,
            "  {:<4} {:>10} {:<12} {:<16} {:?}  {}",
            o.side.as_str().to_uppercase(),
            o.qty.normalize(),
            o.symbol,
            px,
            o.time_in_force,
            o.client_order_id
        )?;
    }
    writeln!(out, "\ndecisions ({}):", plan.decisions.len())?;
    for d in &plan.decisions {
        let verdict = match &d.outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Resize {
                qty, reason, detail, ..
            } => format!("resize to {}: {} — {detail}", qty.normalize(), reason.as_str()),
            Outcome::Block { reason, detail, .. } => format!("BLOCK {}: {detail}", reason.as_str()),
        };
        writeln!(
            out,
            "  {:<12} {:<4} proposed {:>10} final {:>10}  {}",
            d.symbol,
            d.side.as_str(),
            d.proposed_qty.normalize(),
            d.final_qty.normalize(),
            verdict
        )?;
        for s in &d.steps {
            writeln!(
                out,
                "      {:?}: {} -> {} ({}: {})",
                s.guard,
                s.from.normalize(),
                s.to.normalize(),
                s.reason.as_str(),
                s.detail
            )?;
        }
    }
    Ok(())
}
