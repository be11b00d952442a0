//! `keel sim`: the command-line face of the simulator. The `keel` binary
//! flattens [`SimArgs`] into its `sim` verb and calls [`main`].

use crate::{run, sweep_with, FaultProfile, PlantedBug, SimConfig};
use chrono::NaiveDate;
use std::fmt;
use std::ops::Range;

/// Arguments of `keel sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Run one seed (default 1 when --seeds is not given).
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Sweep seeds A..B (B exclusive), one run per seed, with a progress bar and a summary.
    #[arg(long, value_name = "A..B", value_parser = parse_seed_range)]
    pub seeds: Option<Range<u64>>,
    /// Trading days (NYSE sessions) per seed.
    #[arg(long, default_value_t = 20)]
    pub days: u32,
    /// Fault profile: none, light or all.
    #[arg(long, default_value = "all", value_parser = parse_profile)]
    pub faults: FaultProfile,
    /// First day (YYYY-MM-DD); by default each seed picks its own in 2021–2025.
    #[arg(long, value_parser = parse_date)]
    pub start: Option<NaiveDate>,
    /// Simulated minutes between execution cycles.
    #[arg(long, default_value_t = 30)]
    pub cycle_every_min: u32,
    /// Plant a deliberate bug to watch the checker catch it
    /// (vol-brake-disabled, kill-switch-blind, market-hours-guard-off).
    #[arg(long, value_parser = parse_bug)]
    pub plant_bug: Option<PlantedBug>,
    /// Also take keel down for whole evenings now and then (exposes the
    /// missed-EOD gap; off by default).
    #[arg(long)]
    pub outages: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Why `keel sim` did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimFailure {
    /// Bad arguments (exit code 2).
    Usage(String),
    /// The simulator found violations, already printed (exit code 1).
    Violations(usize),
    /// The runtime could not start (exit code 1).
    Runtime(String),
}

impl SimFailure {
    /// The process exit code keel uses for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            SimFailure::Usage(_) => 2,
            SimFailure::Violations(_) | SimFailure::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimFailure::Usage(m) | SimFailure::Runtime(m) => f.write_str(m),
            SimFailure::Violations(n) => write!(f, "simulation found {n} invariant violation(s)"),
        }
    }
}

impl std::error::Error for SimFailure {}

/// Parses `A..B` (B exclusive, B > A).
pub fn parse_seed_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--seeds = {s:?}: expected A..B, e.g. 0..100"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|e| format!("--seeds = {s:?}: start {a:?} is not a seed ({e})"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|e| format!("--seeds = {s:?}: end {b:?} is not a seed ({e})"))?;
    if b <= a {
        return Err(format!("--seeds = {s:?}: the range is empty (end is exclusive)"));
    }
    Ok(a..b)
}

fn parse_profile(s: &str) -> Result<FaultProfile, String> {
    s.parse().map_err(|e: String| format!("--faults = {s:?}: {e}"))
}

fn parse_bug(s: &str) -> Result<PlantedBug, String> {
    s.parse().map_err(|e: String| format!("--plant-bug = {s:?}: {e}"))
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("--start = {s:?}: not a YYYY-MM-DD date ({e})"))
}

/// Runs `keel sim` on its own single-threaded runtime (call it outside any
/// other runtime), printing the report to stdout and violations with their
/// traces to stderr.
pub fn main(args: &SimArgs) -> Result<(), SimFailure> {
    if args.days == 0 || args.days > 1_000_000 {
        return Err(SimFailure::Usage(format!(
            "--days = {}: must be between 1 and 1000000",
            args.days
        )));
    }
    if !(1..=390).contains(&args.cycle_every_min) {
        return Err(SimFailure::Usage(format!(
            "--cycle-every-min = {}: must be between 1 and 390",
            args.cycle_every_min
        )));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SimFailure::Runtime(format!("starting the async runtime: {e}")))?;
    let config = |seed| SimConfig {
        seed,
        days: args.days,
        faults: args.faults,
        start: args.start,
        plant_bug: args.plant_bug,
        cycle_every_min: args.cycle_every_min,
        outages: args.outages,
    };
    // The worker logs every kill and retry it survives; in a simulation
    // those are the point, and the report counts them, so keep them off the
    // terminal (KEEL_SIM_TRACE=1 shows the simulator's own step trace).
    let quiet = tracing::subscriber::NoSubscriber::default();
    let violations = tracing::subscriber::with_default(quiet, || match &args.seeds {
        Some(range) => {
            let r = rt.block_on(sweep_with(range.clone(), !args.no_progress, config));
            print!("{r}");
            r.violations.len()
        }
        None => {
            let r = rt.block_on(run(&config(args.seed.unwrap_or(1))));
            print!("{r}");
            r.violations.len()
        }
    });
    if violations == 0 {
        Ok(())
    } else {
        Err(SimFailure::Violations(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from(["keel", "--seed", "7", "--days", "3", "--faults", "light"]).unwrap();
        assert_eq!(
            (c.sim.seed, c.sim.days, c.sim.faults),
            (Some(7), 3, FaultProfile::Light)
        );
        let c = Cli::try_parse_from(["keel", "--seeds", "0..200", "--days", "10"]).unwrap();
        assert_eq!(c.sim.seeds, Some(0..200));
        assert_eq!(c.sim.faults, FaultProfile::All);
        assert!(Cli::try_parse_from(["keel", "--seeds", "5..5"]).is_err());
        assert!(Cli::try_parse_from(["keel", "--seeds", "x..5"]).is_err());
        assert!(Cli::try_parse_from(["keel", "--faults", "most"]).is_err());
        assert!(Cli::try_parse_from(["keel", "--seed", "1", "--seeds", "0..2"]).is_err());
        let c = Cli::try_parse_from(["keel", "--plant-bug", "market-hours-guard-off"]).unwrap();
        assert_eq!(c.sim.plant_bug, Some(PlantedBug::MarketHoursGuardOff));
    }
}
