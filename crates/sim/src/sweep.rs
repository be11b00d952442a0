//! Many seeds in a row, summed up.

use crate::{fmt_counts, run, FaultProfile, SimConfig, Violation};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// The seeds run.
    pub seeds: Range<u64>,
    /// Sessions simulated, all seeds together.
    pub days: u64,
    /// Steps run.
    pub steps: u64,
    /// Injected faults by kind, all seeds together.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Worker crashes that landed (each restarted from the store).
    pub crashes: u64,
    /// Orders that reached the venue.
    pub orders: u64,
    /// Fills at the venue.
    pub fills: u64,
    /// Target sets by kind and outcome.
    pub target_sets: BTreeMap<String, u64>,
    /// Kill-switch engagements by source, and releases.
    pub kill_switch: BTreeMap<String, u64>,
    /// Every violation found (at most one per seed: a run stops at its first).
    pub violations: Vec<Violation>,
    /// Wall time of the sweep.
    pub elapsed: Duration,
}

impl SweepReport {
    /// Simulated trading days per wall-clock minute.
    pub fn days_per_minute(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.days as f64 * 60.0 / secs
        } else {
            0.0
        }
    }

    /// True when no invariant was violated.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sweep seeds {}..{}: {} days simulated, {} steps, {} orders, {} fills",
            self.seeds.start, self.seeds.end, self.days, self.steps, self.orders, self.fills
        )?;
        writeln!(f, "  faults injected: {}", fmt_counts(&self.faults_by_kind))?;
        writeln!(f, "  crashes (restarted from the store): {}", self.crashes)?;
        writeln!(f, "  target sets: {}", fmt_counts(&self.target_sets))?;
        writeln!(f, "  kill switch: {}", fmt_counts(&self.kill_switch))?;
        writeln!(
            f,
            "  violations: {}{}",
            self.violations.len(),
            if self.violations.is_empty() {
                String::new()
            } else {
                let seeds: Vec<String> = self.violations.iter().map(|v| v.seed.to_string()).collect();
                format!(" (seeds {})", seeds.join(", "))
            }
        )?;
        writeln!(
            f,
            "  {:.1}s wall, {:.1} days/second, {:.0} days/minute",
            self.elapsed.as_secs_f64(),
            self.days_per_minute() / 60.0,
            self.days_per_minute()
        )
    }
}

/// Runs `days` sessions for every seed in `seeds` under `profile`, one seed
/// after another on the calling task, with a progress bar on stderr when
/// `progress` is set.
pub async fn sweep(seeds: Range<u64>, days: u32, profile: FaultProfile, progress: bool) -> SweepReport {
    sweep_with(seeds, progress, |seed| SimConfig::new(seed, days, profile)).await
}

/// [`sweep`] with a configuration per seed (planted bugs, start dates, cadence).
pub async fn sweep_with(seeds: Range<u64>, progress: bool, config: impl Fn(u64) -> SimConfig) -> SweepReport {
    let started = std::time::Instant::now();
    let n = seeds.end.saturating_sub(seeds.start);
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(n);
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} seeds  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = SweepReport {
        seeds: seeds.clone(),
        ..SweepReport::default()
    };
    for seed in seeds {
        let r = run(&config(seed)).await;
        out.days += u64::from(r.days);
        out.steps += r.steps;
        out.crashes += r.crashes;
        out.orders += r.orders;
        out.fills += r.fills;
        for (k, v) in r.faults_by_kind {
            *out.faults_by_kind.entry(k).or_default() += v;
        }
        for (k, v) in r.target_sets {
            *out.target_sets.entry(k).or_default() += v;
        }
        for (k, v) in r.kill_switch {
            *out.kill_switch.entry(k).or_default() += v;
        }
        for v in r.violations {
            bar.suspend(|| eprint!("{v}"));
            out.violations.push(v);
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} days, {:.0} days/min, {} violation(s)",
            out.days,
            out.days as f64 * 60.0 / secs,
            out.violations.len()
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.elapsed = started.elapsed();
    out
}
