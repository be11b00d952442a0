//! `keel demo`: a scripted allocator trading several simulated days on the
//! embedded paper broker, with a simulated clock stepping through each session.

use crate::commands::Env;
use crate::config::KeelConfig;
use crate::error::{input, CliError};
use anyhow::Context;
use chrono::{Duration, NaiveDate, Utc};
use keel_domain::{Clock, Decimal, FixedClock};
use keel_worker::CycleOutcome;
use std::path::Path;
use std::sync::Arc;

/// Marks a directory as demo-owned, so `keel demo` only ever deletes its own.
const MARKER: &str = ".keel-demo";

/// Minutes between simulated cycles.
const CYCLE_EVERY_MIN: i64 = 10;

/// Runs the demo into a fresh `dir`.
pub async fn run(
    days: u32,
    seed: u64,
    dir: &Path,
    serve: bool,
    bind: Option<String>,
    before: Option<NaiveDate>,
) -> Result<(), CliError> {
    if days == 0 || days > 2_000 {
        return Err(input(format!("--days = {days}: must be between 1 and 2000")));
    }
    let mut cfg = KeelConfig {
        data_dir: dir.to_path_buf(),
        ..KeelConfig::default()
    };
    if let Some(b) = bind {
        // Checked before the simulation, so a typo does not cost the run.
        b.parse::<std::net::SocketAddr>().map_err(|e| {
            input(format!(
                "--bind = {b:?}: not an address like 127.0.0.1:8080 ({e})"
            ))
        })?;
        cfg.server.bind = b;
    }
    fresh_dir(dir)?;
    cfg.account_id = "demo".into();
    cfg.paper.seed = seed;
    cfg.paper.account_id = cfg.account_id.clone();
    let toml = toml::to_string_pretty(&cfg).context("rendering the demo config")?;
    std::fs::write(dir.join("keel.toml"), toml).context("writing the demo's keel.toml")?;
    // The only wall-clock read: which recent sessions to simulate.
    let sessions = recent_sessions(before.unwrap_or_else(|| Utc::now().date_naive()), days);
    let Some(first) = sessions.first() else {
        return Err(input("no sessions to simulate"));
    };
    let clock = Arc::new(FixedClock::new(first.open));
    let env = Env {
        cfg,
        clock: clock.clone(),
    };
    let worker = env.worker().await?;
    let key = crate::commands::audit_key(&env)?;
    worker.recover().await.context("opening the demo account")?;
    println!(
        "keel demo: {} trading days from {} to {} on the paper broker (seed {seed}), state in {}",
        sessions.len(),
        first.date,
        sessions.last().map(|s| s.date).unwrap_or(first.date),
        dir.display()
    );
    for (i, s) in sessions.iter().enumerate() {
        let start = s.open + Duration::minutes(15);
        clock.set(start);
        let set_json = allocator_target_set(seed, s.date, start, s.close - Duration::minutes(5));
        let set = keel_intake::parse_json(
            "demo allocator",
            set_json.as_bytes(),
            &env.cfg.intake,
            clock.now(),
        )
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("demo allocator wrote a bad set: {e}")))?;
        worker
            .submit_target_set(set)
            .await
            .context("queueing the day's targets")?;
        let mut t = start;
        let (mut cycles, mut sent) = (0u32, 0u32);
        while t < s.close - Duration::minutes(5) {
            clock.set(t);
            match worker.cycle().await {
                Ok(CycleOutcome::Submitted { sent: n, .. }) => sent += n,
                Ok(_) => {}
                Err(e) => println!("  {} cycle failed closed: {e}", t.format("%H:%M")),
            }
            crate::integrity::checkpoint(&env, worker.store().as_ref(), key.as_ref()).await?;
            cycles += 1;
            t += Duration::minutes(CYCLE_EVERY_MIN);
        }
        clock.set(s.close + Duration::minutes(1));
        worker.maybe_eod().await.context("end-of-day snapshot")?;
        crate::integrity::checkpoint(&env, worker.store().as_ref(), key.as_ref()).await?;
        let store = worker.store();
        let eod = store.eod_snapshots().await.context("reading snapshots")?;
        let last = eod.last();
        let fills = store
            .fills(&keel_store::FillFilter {
                day: Some(s.date),
                ..Default::default()
            })
            .await
            .context("reading fills")?;
        println!(
            "[{}/{}] {}  equity {:>14}  day P&L {:>12}  gross {:>14}  cycles {cycles:>3}  orders {sent:>3}  fills {:>3}",
            i + 1,
            sessions.len(),
            s.date,
            last.map(|e| keel_domain::valuation::fmt_money(e.equity)).unwrap_or_default(),
            last.map(|e| keel_domain::valuation::fmt_money(e.day_pnl)).unwrap_or_default(),
            last.map(|e| keel_domain::valuation::fmt_money(e.gross_exposure)).unwrap_or_default(),
            fills.len()
        );
    }
    let report = worker
        .store()
        .verify_chain()
        .await
        .context("verifying the audit log")?;
    println!(
        "done: audit chain {} ({} events). Inspect with: keel status --data-dir {}",
        if report.first_bad.is_none() {
            "verified"
        } else {
            "BROKEN"
        },
        report.events,
        dir.display()
    );
    if serve {
        println!("serving the dashboard; Ctrl-C to stop");
        let store = worker.store().clone();
        crate::serve::serve(&env, store, None, crate::commands::shutdown_signal()).await?;
    }
    Ok(())
}

fn fresh_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() {
        let owned = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !owned && !empty {
            return Err(input(format!(
                "--dir = {}: exists and was not created by keel demo; refusing to delete it",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"created by keel demo\n").context("writing the demo marker")?;
    Ok(())
}

/// The `n` most recent complete sessions before `today`, oldest first.
fn recent_sessions(today: NaiveDate, n: u32) -> Vec<keel_calendar::Session> {
    let mut out = Vec::with_capacity(n as usize);
    let mut d = today;
    for _ in 0..n {
        let s = keel_calendar::previous_session_before(d);
        d = s.date;
        out.push(s);
    }
    out.reverse();
    out
}

use keel_broker::universe::splitmix as mix;

/// The scripted allocator: 8–15 names with weights 3–9%, gross about 0.9,
/// drifting day to day so there is something to rebalance.
pub fn allocator_target_set(
    seed: u64,
    date: NaiveDate,
    as_of: chrono::DateTime<Utc>,
    valid_until: chrono::DateTime<Utc>,
) -> String {
    let universe = keel_broker::universe::symbols();
    let day = date.to_string();
    let mut h = mix(seed ^ 0xD1CE);
    for b in day.bytes() {
        h = mix(h ^ b as u64);
    }
    let k = 8 + (h % 8) as usize;
    let mut picked = Vec::new();
    let mut x = h;
    // A stable core (first names) plus a rotating tail, like a real book.
    while picked.len() < k.min(universe.len()) {
        x = mix(x);
        let idx = if picked.len() < 5 {
            picked.len() * 3 % universe.len()
        } else {
            (x % universe.len() as u64) as usize
        };
        if !picked.contains(&idx) {
            picked.push(idx);
        }
    }
    let raw: Vec<u64> = picked
        .iter()
        .map(|_| {
            x = mix(x);
            30 + x % 60
        })
        .collect();
    let total: u64 = raw.iter().sum();
    let targets: Vec<String> = picked
        .iter()
        .zip(&raw)
        .map(|(i, r)| {
            // weight = 0.9 * r / total, capped at 0.09, to 4 dp (exact decimal text).
            let w = (Decimal::from(*r) * Decimal::new(9, 1) / Decimal::from(total))
                .min(Decimal::new(9, 2))
                .round_dp(4);
            format!("{{\"symbol\":\"{}\",\"weight\":\"{}\"}}", universe[*i], w)
        })
        .collect();
    format!(
        "{{\"id\":\"demo-{day}\",\"as_of\":\"{}\",\"valid_until\":\"{}\",\"targets\":[{}]}}",
        as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        valid_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        targets.join(",")
    )
}
