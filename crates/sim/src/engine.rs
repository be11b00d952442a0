//! One simulation run: the day loop, the steps, faults, crashes, restarts.

use crate::allocator::{Allocator, SetKind};
use crate::broker::{closes_end, lock, transform_closes, ClosesFault, Gap, Market, Observed, SimBroker};
use crate::checker::{oracle_scale, verify_and_rebuild, Checker, StepView};
use crate::crash::CrashSwitch;
use crate::profile::FaultRates;
use crate::pump::{events_emitted, StreamFaults, StreamPump};
use crate::rng::{mix, Rng};
use crate::store::SimStore;
use crate::trace::Trace;
use crate::{PlantedBug, SimConfig, SimReport, Violation};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel_broker::{universe, FaultConfig, PaperBroker, PaperConfig};
use keel_calendar::Session;
use keel_domain::{Clock, FixedClock, KillSource, Symbol};
use keel_intake::IntakeConfig;
use keel_planner::RiskConfig;
use keel_store::{SqliteStore, Store};
use keel_worker::{CycleOutcome, KillSwitchConfig, SubmitOutcome, Worker, WorkerConfig};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Chance per day of an evening outage (with [`SimConfig::outages`]).
const OUTAGE_PER_DAY: f64 = 0.05;

/// The account id of every simulated run.
const ACCOUNT: &str = "sim";

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// Half an hour before the open: operator, morning target set, a cycle (market closed).
    PreOpen,
    /// A cycle during the session (index from 0).
    Cycle(u32),
    /// Just after the close: the EOD snapshot.
    Close,
    /// The evening, faults quiet: sync, EOD if missing, and the nightly checks.
    Night,
}

impl StepKind {
    fn label(self) -> String {
        match self {
            StepKind::PreOpen => "pre-open".into(),
            StepKind::Cycle(i) => format!("cycle {}", i + 1),
            StepKind::Close => "close".into(),
            StepKind::Night => "night".into(),
        }
    }
}

/// The first session of a seed-derived start: somewhere in 2021–2025, so a
/// sweep sees every kind of holiday, early close and DST switch.
fn default_start(seed: u64) -> NaiveDate {
    let base = NaiveDate::from_ymd_opt(2021, 1, 4).unwrap_or_default();
    base + Duration::days((mix(seed ^ 0x0053_5441_5254) % 1800) as i64)
}

/// Sessions on or after `start`.
fn sessions(start: NaiveDate, days: u32) -> Vec<Session> {
    let mut out = Vec::with_capacity(days as usize);
    let mut d = start;
    for _ in 0..days {
        let s = keel_calendar::next_session_on_or_after(d);
        d = s.date.succ_opt().unwrap_or(s.date);
        out.push(s);
    }
    out
}

/// Runs one simulation. Never panics on a keel failure: every problem is a
/// [`Violation`] in the report (a harness failure is the `sim_harness` one).
pub async fn run(cfg: &SimConfig) -> SimReport {
    let started = std::time::Instant::now();
    let start = cfg.start.unwrap_or_else(|| default_start(cfg.seed));
    let days = sessions(start, cfg.days);
    let mut report = SimReport {
        seed: cfg.seed,
        ..SimReport::default()
    };
    let Some(first) = days.first() else {
        report.elapsed = started.elapsed();
        return report;
    };
    let mut sim = match Sim::new(cfg, first).await {
        Ok(s) => s,
        Err(e) => {
            report.violations.push(Violation {
                seed: cfg.seed,
                day: 0,
                date: first.date,
                step: 0,
                step_label: "setup".into(),
                at: first.open,
                invariant: "sim_harness".into(),
                detail: e,
                trace: Vec::new(),
                reproduce: cfg.command(1),
            });
            report.elapsed = started.elapsed();
            return report;
        }
    };
    let mut violation = None;
    for (i, s) in days.iter().enumerate() {
        sim.day = i as u32 + 1;
        sim.date = s.date;
        sim.day_step = 0;
        report.days = sim.day;
        if let Err(v) = sim.day(s).await {
            violation = Some(v);
            break;
        }
    }
    if violation.is_none() {
        let t0 = std::time::Instant::now();
        if let Err((inv, detail)) = verify_and_rebuild(&sim.store).await {
            violation = Some(sim.violation(inv, detail));
        }
        sim.phase("final rebuild", t0);
    }
    sim.finish(&mut report).await;
    report.violations.extend(violation);
    report.elapsed = started.elapsed();
    report
}

/// The world of one run.
struct Sim {
    cfg: SimConfig,
    seed: u64,
    rates: FaultRates,
    bug: Option<PlantedBug>,
    cycle_every: Duration,
    _dir: tempfile::TempDir,
    db_path: PathBuf,
    clock: Arc<FixedClock>,
    paper: Arc<PaperBroker>,
    crash: Arc<CrashSwitch>,
    market: Arc<Mutex<Market>>,
    obs: Arc<Mutex<Observed>>,
    store: Arc<SqliteStore>,
    worker: Worker,
    /// The configuration keel is meant to run with (the checker's reference).
    risk: RiskConfig,
    /// What the worker actually runs with (differs only under a planted bug).
    worker_risk: RiskConfig,
    wcfg: WorkerConfig,
    kcfg: KillSwitchConfig,
    intake: IntakeConfig,
    checker: Checker,
    pump: StreamPump,
    alloc: Allocator,
    trace: Trace,
    rng_market: Rng,
    rng_crash: Rng,
    rng_op: Rng,
    /// Injected faults counted by the simulator (stream, market data, operator).
    tally: BTreeMap<String, u64>,
    sets: BTreeMap<String, u64>,
    crashes: u64,
    steps: u64,
    release_attempts: u64,
    // Position in the run.
    day: u32,
    date: NaiveDate,
    day_step: u32,
    label: String,
    // The day's plan.
    day_gap: Option<(u32, Gap)>,
    day_spike: Option<Vec<f64>>,
    day_kill_step: Option<u32>,
    /// A venue storm at this cycle: every submit rejected (true) or most
    /// answers lost (false), enough to trip the automatic kill triggers.
    day_storm: Option<(u32, bool)>,
    /// A target set whose delivery the worker died during; delivered again next step.
    undelivered: Option<crate::allocator::Delivery>,
    /// Sessions of the run so far, today included.
    past_sessions: Vec<NaiveDate>,
    /// Evening outages enabled.
    outages: bool,
    rng_outage: Rng,
    /// keel is down (an outage); the next step restarts it.
    down: bool,
    /// Wall time per phase, for `KEEL_SIM_PROFILE` (reporting only).
    phases: BTreeMap<&'static str, std::time::Duration>,
}

fn harness(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Sim {
    async fn new(cfg: &SimConfig, first: &Session) -> Result<Self, String> {
        let rates = cfg.faults.rates();
        let clock = Arc::new(FixedClock::new(first.open - Duration::hours(1)));
        // tmpfs when there is one: the store is reopened after every crash,
        // and nothing here needs to reach a disk.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("keel-sim-").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("keel-sim-").tempdir()
        }
        .map_err(harness)?;
        let db_path = dir.path().join("keel.db");
        let paper_cfg = PaperConfig {
            account_id: ACCOUNT.to_string(),
            initial_cash: Decimal::from(1_000_000),
            seed: cfg.seed,
            slippage_bps: Decimal::TWO,
            partial_fill_prob: rates.partial_fill,
            fill_delay_secs: 60,
            allow_short: false,
            // Opened quiet: the account is opened before the faults start.
            faults: FaultConfig::default(),
        };
        let paper = Arc::new(
            PaperBroker::open_in_memory(paper_cfg, clock.clone())
                .await
                .map_err(harness)?,
        );
        let store = Arc::new(SqliteStore::open_unsynced(&db_path).await.map_err(harness)?);
        // keel's defaults, except a no-trade band of 25 bps of equity: the
        // default 2 bps is below one share of most of the universe, so every
        // retry cycle would re-trade the prices' drift since the last one.
        let mut risk = RiskConfig::default();
        risk.guards.no_trade_band.min_weight = Decimal::new(25, 4);
        let mut worker_risk = risk.clone();
        match cfg.plant_bug {
            Some(PlantedBug::VolBrakeDisabled) => worker_risk.guards.volatility_brake.enabled = false,
            Some(PlantedBug::MarketHoursGuardOff) => worker_risk.guards.market_hours.enabled = false,
            _ => {}
        }
        // No backoff: the simulated clock does not move while the worker
        // waits, so waiting would only cost wall time.
        let wcfg = WorkerConfig {
            retry_backoff_ms: 0,
            ..WorkerConfig::default()
        };
        let kcfg = KillSwitchConfig::default();
        let crash = Arc::new(CrashSwitch::default());
        let market = Arc::new(Mutex::new(Market::default()));
        let obs = Arc::new(Mutex::new(Observed::default()));
        let worker = build_worker(
            &store,
            &paper,
            &clock,
            &crash,
            &market,
            &obs,
            &worker_risk,
            &risk,
            &wcfg,
            &kcfg,
            cfg.plant_bug,
        );
        let sim = Self {
            cfg: cfg.clone(),
            seed: cfg.seed,
            rates,
            bug: cfg.plant_bug,
            cycle_every: Duration::minutes(i64::from(cfg.cycle_every_min.clamp(1, 390))),
            _dir: dir,
            db_path,
            clock,
            paper,
            crash,
            market,
            obs,
            store,
            worker,
            checker: Checker::new(ACCOUNT, risk.clone()),
            risk,
            worker_risk,
            wcfg,
            kcfg,
            intake: IntakeConfig::default(),
            pump: StreamPump::new(cfg.seed),
            alloc: Allocator::new(cfg.seed),
            trace: Trace::default(),
            rng_market: Rng::new(cfg.seed, "market"),
            rng_crash: Rng::new(cfg.seed, "crash"),
            rng_op: Rng::new(cfg.seed, "operator"),
            tally: BTreeMap::new(),
            sets: BTreeMap::new(),
            crashes: 0,
            steps: 0,
            release_attempts: 0,
            day: 0,
            date: first.date,
            day_step: 0,
            label: String::new(),
            day_gap: None,
            day_spike: None,
            day_kill_step: None,
            day_storm: None,
            undelivered: None,
            past_sessions: Vec::new(),
            outages: cfg.outages,
            rng_outage: Rng::new(cfg.seed, "outage"),
            down: false,
            phases: BTreeMap::new(),
        };
        sim.worker.recover().await.map_err(harness)?;
        sim.paper.set_faults(sim.rates.venue).await.map_err(harness)?;
        Ok(sim)
    }

    fn rebuild_worker(&mut self) {
        self.worker = build_worker(
            &self.store,
            &self.paper,
            &self.clock,
            &self.crash,
            &self.market,
            &self.obs,
            &self.worker_risk,
            &self.risk,
            &self.wcfg,
            &self.kcfg,
            self.bug,
        );
    }

    fn count(&mut self, kind: &str) {
        *self.tally.entry(kind.to_string()).or_default() += 1;
    }

    fn note(&mut self, line: String) {
        self.trace.push(line);
    }

    fn violation(&self, invariant: &str, detail: String) -> Violation {
        Violation {
            seed: self.seed,
            day: self.day,
            date: self.date,
            step: self.day_step,
            step_label: self.label.clone(),
            at: self.clock.now(),
            invariant: invariant.to_string(),
            detail,
            trace: self.trace.lines(),
            reproduce: self.cfg.command(self.day),
        }
    }

    /// One trading day.
    async fn day(&mut self, s: &Session) -> Result<(), Violation> {
        let first_cycle = s.open + Duration::minutes(6);
        let last_cycle = s.close - Duration::minutes(5);
        let mut times = Vec::new();
        // Some days a cycle fires inside the opening buffer, where the
        // market-hours guard must block everything.
        if self.rng_market.chance(0.25) {
            times.push(s.open + Duration::minutes(2));
        }
        let mut t = first_cycle;
        while t < last_cycle {
            times.push(t);
            t += self.cycle_every;
        }
        self.past_sessions.push(s.date);
        self.plan_day(times.len() as u32);
        self.step(s, StepKind::PreOpen, s.open - Duration::minutes(30))
            .await?;
        for (i, t) in times.into_iter().enumerate() {
            self.step(s, StepKind::Cycle(i as u32), t).await?;
        }
        if self.outages && self.rng_outage.chance(OUTAGE_PER_DAY) {
            // keel is down from the close until the next morning: no EOD
            // step, no night; the next pre-open starts it from the store.
            self.note(format!("  OUTAGE: keel down from the close of {}", s.date));
            self.count("worker_outage");
            self.down = true;
            return Ok(());
        }
        self.step(s, StepKind::Close, s.close + Duration::minutes(1))
            .await?;
        self.step(s, StepKind::Night, s.close + Duration::minutes(90))
            .await
    }

    /// The day's market events and operator plan.
    fn plan_day(&mut self, cycles: u32) {
        let r = self.rates.clone();
        let rng = &mut self.rng_market;
        self.day_gap = if rng.chance(r.price_gap_day) {
            // Half the gaps hit while the morning set is still trading, where
            // the daily-loss trigger is evaluated.
            let span = if rng.chance(0.5) { 2 } else { cycles.max(1) };
            let from = rng.below(u64::from(span)) as u32;
            let symbols = if rng.chance(0.4) {
                None
            } else {
                let names = self.alloc.last_symbols();
                let mut pick = BTreeSet::new();
                for _ in 0..rng.range(1, 3) {
                    if let Some(s) = rng.pick(&names) {
                        pick.insert(s.clone());
                    }
                }
                Some(pick)
            };
            let factor = if rng.chance(0.6) {
                Decimal::new(880 + rng.range(0, 90) as i64, 3)
            } else {
                Decimal::new(1030 + rng.range(0, 50) as i64, 3)
            };
            Some((from, Gap { symbols, factor }))
        } else {
            None
        };
        self.day_spike = if rng.chance(r.vol_spike_day) {
            let k = rng.range(3, 6);
            Some(
                (0..k)
                    .map(|i| {
                        let m = 0.04 + rng.unit() * 0.05;
                        if i % 2 == 0 {
                            -m
                        } else {
                            m
                        }
                    })
                    .collect(),
            )
        } else {
            None
        };
        self.day_storm = self.rng_market.chance(r.storm_day).then(|| {
            let step = self.rng_market.below(3) as u32;
            let rejects = self.rng_market.chance(0.5);
            (step, rejects)
        });
        self.day_kill_step = self
            .rng_op
            .chance(r.operator_kill_day)
            .then(|| self.rng_op.below(u64::from(cycles.max(1))) as u32);
    }

    /// Market-data faults for a step.
    fn set_market(&mut self, kind: StepKind, quiet: bool) {
        let mut m = Market::default();
        if !quiet {
            if let (StepKind::Cycle(i), Some((from, gap))) = (kind, self.day_gap.clone()) {
                if i >= from {
                    m.gap = Some(gap.clone());
                    if i == from {
                        let what = gap
                            .symbols
                            .as_ref()
                            .map(|s| s.iter().map(Symbol::as_str).collect::<Vec<_>>().join(","))
                            .unwrap_or_else(|| "whole market".into());
                        self.note(format!("  fault: price gap x{} on {what}", gap.factor));
                        self.count("price_gap");
                    }
                }
            }
            if let Some(moves) = self.day_spike.clone() {
                m.closes = ClosesFault::Spike(moves.clone());
                if kind == StepKind::PreOpen {
                    self.note(format!("  fault: volatility spike in reference closes {moves:?}"));
                    self.count("vol_spike");
                }
            }
            let r = self.rates.clone();
            if matches!(kind, StepKind::Cycle(_)) && self.rng_market.chance(r.vol_outage_step) {
                let keep = self.rng_market.below(21) as usize;
                m.closes = ClosesFault::Outage(keep);
                self.note(format!("  fault: reference closes cut to {keep}"));
                self.count("vol_data_outage");
            }
            if self.rng_market.chance(r.stale_quote_step) {
                let names = if self.rng_market.chance(0.2) {
                    universe::symbols()
                } else {
                    let mut v = self.alloc.last_symbols();
                    let k = self.rng_market.range(1, 4) as usize;
                    let mut pick = Vec::new();
                    for _ in 0..k {
                        if let Some(s) = self.rng_market.pick(&v) {
                            pick.push(s.clone());
                        }
                    }
                    v.clear();
                    pick
                };
                let age = self.rng_market.range(90, 1800) as i64;
                self.note(format!("  fault: {} quote(s) stale by {age}s", names.len()));
                self.count("stale_quote");
                for s in names {
                    m.stale.insert(s, age);
                }
            }
        }
        *lock(&self.market) = m;
    }

    /// One step: pump the stream, maybe arm a crash, act, restart if dead, check.
    async fn step(&mut self, s: &Session, kind: StepKind, at: DateTime<Utc>) -> Result<(), Violation> {
        self.clock.set(at);
        self.steps += 1;
        self.day_step += 1;
        self.label = kind.label();
        self.trace.step(format!(
            "[day {} {} step {} {} {}]",
            self.day,
            self.date,
            self.day_step,
            self.label,
            at.format("%H:%M")
        ));
        let quiet = kind == StepKind::Night;
        if self.down {
            self.down = false;
            self.note("  keel starts again after the outage".into());
            self.restart().await?;
        }
        lock(&self.obs).begin_step();
        self.set_market(kind, quiet);
        let storm = match (kind, self.day_storm) {
            (StepKind::Cycle(i), Some((at, rejects))) if i == at => Some(rejects),
            _ => None,
        };
        if quiet {
            self.set_venue_faults(FaultConfig::default()).await?;
        } else if let Some(rejects) = storm {
            let mut f = self.rates.venue;
            if rejects {
                f.reject = 1.0;
                self.count("reject_storm");
            } else {
                f.timeout_after_send = 0.6;
                self.count("timeout_storm");
            }
            self.note(format!(
                "  fault: venue storm ({})",
                if rejects { "rejects" } else { "lost answers" }
            ));
            self.set_venue_faults(f).await?;
        }
        let faults = if quiet {
            StreamFaults::default()
        } else {
            StreamFaults {
                reorder: self.rates.reorder_batch,
                disconnect: self.rates.disconnect,
            }
        };
        let t0 = std::time::Instant::now();
        if let Err(e) = self
            .pump
            .pump(
                &self.paper,
                self.store.as_ref(),
                at,
                faults,
                &mut self.tally,
                &mut self.trace,
            )
            .await
        {
            return Err(self.violation("idempotent_append", e));
        }
        self.phase("pump", t0);
        let t0 = std::time::Instant::now();
        if !quiet && self.rng_crash.chance(self.rates.crash_step) {
            let n = self.rng_crash.below(48);
            let after = self.rng_crash.chance(0.5);
            self.crash.arm(n, after);
        }
        let mut kill_ack = false;
        match kind {
            StepKind::PreOpen => {
                self.operator_morning(at).await;
                self.deliver_pending().await;
                if let Some(k) = self.alloc.choose(true) {
                    self.deliver(k, s).await;
                }
                kill_ack |= self.cycle().await;
            }
            StepKind::Cycle(i) => {
                if self.day_kill_step == Some(i) && self.alive() {
                    self.count("operator_kill");
                    match self
                        .worker
                        .engage_kill("operator: manual stop", KillSource::Cli)
                        .await
                    {
                        Ok(()) => {
                            self.note("  operator: kill switch engaged".into());
                            kill_ack = true;
                        }
                        Err(e) => self.note(format!("  operator: kill failed closed: {e}")),
                    }
                }
                self.deliver_pending().await;
                if let Some(k) = self.alloc.choose(false) {
                    self.deliver(k, s).await;
                }
                kill_ack |= self.cycle().await;
            }
            StepKind::Close => {
                if self.alive() {
                    match self.worker.maybe_eod().await {
                        Ok(d) => self.note(format!("  eod: {d:?}")),
                        Err(e) => self.note(format!("  eod failed: {e}")),
                    }
                }
            }
            StepKind::Night => {
                self.crash.disarm();
                if let Err(e) = self.worker.recover().await {
                    self.note(format!("  night: recover failed: {e}"));
                }
                match self.worker.maybe_eod().await {
                    Ok(Some(d)) => self.note(format!("  night: late eod {d}")),
                    Ok(None) => {}
                    Err(e) => self.note(format!("  night: eod failed: {e}")),
                }
            }
        }
        self.phase(if quiet { "night actions" } else { "worker" }, t0);
        if storm.is_some() {
            self.set_venue_faults(self.rates.venue).await?;
        }
        let died = self.crash.died();
        let t0 = std::time::Instant::now();
        if let Some(place) = &died {
            self.crashes += 1;
            self.note(format!("  CRASH {place}; restarting from the store"));
            self.restart().await?;
        } else {
            self.crash.disarm();
        }
        self.phase("restart", t0);
        let t0 = std::time::Instant::now();
        self.check(kill_ack && died.is_none()).await?;
        self.phase("check", t0);
        let t0 = std::time::Instant::now();
        if died.is_some() {
            if let Err((inv, d)) = self.checker.after_restart(&self.store).await {
                return Err(self.violation(inv, d));
            }
        }
        self.phase("check after restart", t0);
        let t0 = std::time::Instant::now();
        if quiet {
            if let Err((inv, d)) = self
                .checker
                .nightly(&self.store, &self.paper, s.date, &self.past_sessions)
                .await
            {
                return Err(self.violation(inv, d));
            }
            self.set_venue_faults(self.rates.venue).await?;
        }
        self.phase("check nightly", t0);
        Ok(())
    }

    fn phase(&mut self, name: &'static str, since: std::time::Instant) {
        *self.phases.entry(name).or_default() += since.elapsed();
    }

    async fn set_venue_faults(&mut self, f: FaultConfig) -> Result<(), Violation> {
        self.paper
            .set_faults(f)
            .await
            .map_err(|e| self.violation("sim_harness", e.to_string()))
    }

    fn alive(&self) -> bool {
        self.crash.died().is_none()
    }

    /// The per-step checks.
    async fn check(&mut self, kill_ack: bool) -> Result<(), Violation> {
        let oracle = if self.risk.guards.volatility_brake.enabled {
            let b = &self.risk.guards.volatility_brake;
            let now = self.clock.now();
            let reference = Symbol::new(&b.reference_symbol).ok();
            let closes = reference
                .map(|s| universe::daily_closes(self.seed, &s, closes_end(now), b.closes_needed()))
                .unwrap_or_default();
            let fault = lock(&self.market).closes.clone();
            Some(oracle_scale(b, &transform_closes(&fault, closes)))
        } else {
            None
        };
        let (stale, submits, by_id) = {
            let o = lock(&self.obs);
            (
                o.stale_served.clone(),
                o.venue_submits.clone(),
                o.submits_by_id.clone(),
            )
        };
        for s in &submits {
            self.trace.push(format!(
                "  venue: {} {} {} -> {}",
                s.side, s.symbol, s.client_order_id, s.outcome
            ));
        }
        let view = StepView {
            oracle_scale: oracle,
            stale: &stale,
            venue_submits: &submits,
            submits_by_id: &by_id,
            kill_acknowledged: kill_ack,
            release_attempts: self.release_attempts,
        };
        let r = self
            .checker
            .after_step(&self.store, &self.paper, &view, &mut self.trace)
            .await;
        r.map_err(|(inv, d)| self.violation(inv, d))
    }

    /// The operator's morning: an engaged kill switch from a previous day is
    /// reviewed and usually released.
    async fn operator_morning(&mut self, now: DateTime<Utc>) {
        let Some(since) = self.checker.kill_since() else {
            return;
        };
        if since >= now - Duration::hours(6)
            || !self.rng_op.chance(self.rates.operator_release)
            || !self.alive()
        {
            return;
        }
        self.release_attempts += 1;
        match self
            .worker
            .release_kill("operator: reviewed overnight", KillSource::Cli)
            .await
        {
            Ok(r) => self.note(format!("  operator: release -> {r}")),
            Err(e) => self.note(format!("  operator: release failed: {e}")),
        }
    }

    async fn deliver_pending(&mut self) {
        if let Some(d) = self.undelivered.take() {
            self.submit(d).await;
        }
    }

    async fn deliver(&mut self, kind: SetKind, s: &Session) {
        let d = self.alloc.write(kind, self.clock.now(), s.close);
        *self.sets.entry(kind.as_str().to_string()).or_default() += 1;
        self.submit(d).await;
    }

    /// Hands a target set to intake and the worker.
    async fn submit(&mut self, d: crate::allocator::Delivery) {
        if !self.alive() {
            self.undelivered = Some(d);
            return;
        }
        let now = self.clock.now();
        let outcome = match keel_intake::parse_json("allocator", d.json.as_bytes(), &self.intake, now) {
            Err(e) => {
                self.note(format!("  allocator: {} refused at intake: {e}", d.kind.as_str()));
                "refused_at_intake"
            }
            Ok(set) => {
                let id = set.id.clone();
                match self.worker.submit_target_set(set).await {
                    Ok(SubmitOutcome::Queued) => {
                        self.note(format!("  allocator: {} {id} queued", d.kind.as_str()));
                        "queued"
                    }
                    Ok(SubmitOutcome::AlreadyKnown(st)) => {
                        self.note(format!(
                            "  allocator: {} {id} already known ({st})",
                            d.kind.as_str()
                        ));
                        "already_known"
                    }
                    Err(e) => {
                        self.note(format!("  allocator: {id} not queued: {e}"));
                        if !self.alive() {
                            // The file stays in the inbox; the next incarnation takes it.
                            self.undelivered = Some(d);
                        }
                        return;
                    }
                }
            }
        };
        *self.sets.entry(outcome.to_string()).or_default() += 1;
    }

    /// Runs a cycle; true when it acknowledged an engaged kill switch.
    async fn cycle(&mut self) -> bool {
        if !self.alive() {
            return false;
        }
        match self.worker.cycle().await {
            Ok(CycleOutcome::Killed(reason)) => {
                self.note(format!("  cycle: killed ({reason})"));
                true
            }
            Ok(CycleOutcome::Idle | CycleOutcome::MarketClosed) => false,
            Ok(o) => {
                self.note(format!("  cycle: {o:?}"));
                false
            }
            Err(e) => {
                self.note(format!("  cycle failed closed: {e}"));
                false
            }
        }
    }

    /// Restarts the dead worker from the persisted store, as after `kill -9`.
    async fn restart(&mut self) -> Result<(), Violation> {
        self.store.close().await;
        let store = SqliteStore::open_unsynced(&self.db_path)
            .await
            .map_err(|e| self.violation("sim_harness", format!("reopening the store: {e}")))?;
        self.store = Arc::new(store);
        self.crash.reset();
        self.rebuild_worker();
        if let Err(e) = self.worker.recover().await {
            self.note(format!("  restart: recover failed closed: {e}"));
        }
        Ok(())
    }

    /// Fills in the report's totals.
    async fn finish(&mut self, report: &mut SimReport) {
        // Drain the stream so dropped events can be counted.
        let _ = self
            .pump
            .pump(
                &self.paper,
                self.store.as_ref(),
                self.clock.now(),
                StreamFaults::default(),
                &mut self.tally,
                &mut self.trace,
            )
            .await;
        let mut faults = self.tally.clone();
        for (k, v) in &lock(&self.obs).faults {
            *faults.entry((*k).to_string()).or_default() += v;
        }
        if let Ok(orders) = self.paper.orders().await {
            let partial = orders
                .iter()
                .filter(|o| o.fills.len() > 1 || o.fills.first().is_some_and(|f| f.qty < o.qty))
                .count() as u64;
            if partial > 0 {
                faults.insert("partial_fill".into(), partial);
            }
            let dropped = events_emitted(&orders).saturating_sub(self.pump.distinct_seen());
            if dropped > 0 {
                faults.insert("drop_event".into(), dropped);
            }
            report.orders = orders.len() as u64;
            report.fills = orders.iter().map(|o| o.fills.len() as u64).sum();
        }
        faults.retain(|_, v| *v > 0);
        if std::env::var_os("KEEL_SIM_PROFILE").is_some() {
            for (k, v) in &self.phases {
                eprintln!("profile seed {}: {k:>20} {:>8.3}s", self.seed, v.as_secs_f64());
            }
            for (k, (n, t)) in self.crash.profile() {
                eprintln!(
                    "calls seed {}: {k:>30} {n:>6} {:>8.3}s",
                    self.seed,
                    t.as_secs_f64()
                );
            }
        }
        report.faults_by_kind = faults;
        report.crashes = self.crashes;
        report.steps = self.steps;
        report.target_sets = self.sets.clone();
        report.kill_switch = self.checker.kill_stats.clone();
        if let Ok((seq, hash)) = self.store.audit_head().await {
            report.audit_events = seq;
            report.final_audit_hash = hash;
        }
        self.store.close().await;
    }
}

#[allow(clippy::too_many_arguments)] // the parts of one world, wired once
fn build_worker(
    store: &Arc<SqliteStore>,
    paper: &Arc<PaperBroker>,
    clock: &Arc<FixedClock>,
    crash: &Arc<CrashSwitch>,
    market: &Arc<Mutex<Market>>,
    obs: &Arc<Mutex<Observed>>,
    worker_risk: &RiskConfig,
    risk: &RiskConfig,
    wcfg: &WorkerConfig,
    kcfg: &KillSwitchConfig,
    bug: Option<PlantedBug>,
) -> Worker {
    let inner: Arc<dyn Store> = store.clone();
    let store: Arc<dyn Store> = Arc::new(SimStore::new(
        inner,
        crash.clone(),
        bug == Some(PlantedBug::KillSwitchBlind),
    ));
    let broker = Arc::new(SimBroker::new(
        paper.clone(),
        clock.clone(),
        crash.clone(),
        market.clone(),
        obs.clone(),
        risk.guards.stale_quote.max_age_secs as i64,
    ));
    Worker::new(
        ACCOUNT,
        store,
        broker.clone(),
        broker,
        clock.clone(),
        worker_risk.clone(),
        wcfg.clone(),
        kcfg.clone(),
    )
}
