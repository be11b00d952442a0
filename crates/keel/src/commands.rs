//! Dispatch of each verb to the library crates.

use crate::cli::{AuditAction, Cli, Command, Common};
use crate::config::KeelConfig;
use crate::error::{input, CliError};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use keel_broker::PaperConfig;
use keel_domain::{AccountSnapshot, Clock, FixedClock, KillSource, SystemClock};
use keel_store::{Lease, Store};
use keel_worker::{SubmitOutcome, Worker};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Calendar { from, to } => calendar(&from, &to),
        Command::Sim(args) => keel_sim::cli::main(&args).map_err(|e| match e {
            keel_sim::cli::SimFailure::Usage(m) => input(m),
            other => CliError::Runtime(anyhow::anyhow!("{other}")),
        }),
        Command::Init { schema: true, .. } => {
            print!("{}", crate::config_schema::schema_text());
            Ok(())
        }
        Command::Init { path, .. } => init(&path),
        Command::Plan {
            targets,
            id,
            json,
            common,
        } => plan(&targets, id.as_deref(), json, &common),
        Command::Demo {
            days,
            seed,
            dir,
            no_serve,
        } => block_on(crate::demo::run(days, seed, &dir, !no_serve)),
        Command::Serve { common } => {
            let env = Env::load(&common)?;
            block_on(serve(env))
        }
        Command::Run { common } => {
            let envs = Env::load_accounts(&common)?;
            block_on(crate::runner::run(envs))
        }
        Command::Migrate { common } => {
            let envs = Env::load_accounts(&common)?;
            block_on(crate::export::migrate(envs))
        }
        Command::Export { to, from, common } => {
            let env = Env::load(&common)?;
            block_on(crate::export::export(env, from.as_deref(), &to))
        }
        Command::Submit { file, id, common } => {
            let env = Env::load(&common)?;
            block_on(submit(env, &file, id.as_deref()))
        }
        Command::Cycle { common } => {
            let env = Env::load(&common)?;
            block_on(cycle(env))
        }
        Command::Status { json, common } => {
            let env = Env::load(&common)?;
            block_on(crate::status::print(env, json))
        }
        Command::Kill { reason, common } => {
            let env = Env::load(&common)?;
            block_on(kill(env, &reason, true))
        }
        Command::Resume { reason, common } => {
            let env = Env::load(&common)?;
            block_on(kill(env, &reason, false))
        }
        Command::Audit {
            action: AuditAction::Verify { common },
        } => {
            let env = Env::load(&common)?;
            block_on(audit_verify(env))
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(f: F) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(f)
}

/// Parses `--at`.
pub fn parse_at(at: Option<&str>) -> Result<Option<DateTime<Utc>>, CliError> {
    at.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| input(format!("--at = {s:?}: not an RFC 3339 time ({e})")))
    })
    .transpose()
}

/// Configuration, clock and paths for one command.
pub struct Env {
    /// The loaded configuration.
    pub cfg: KeelConfig,
    /// The clock (system, or fixed by `--at`).
    pub clock: Arc<dyn Clock>,
}

impl Env {
    /// Loads config and clock from the shared options, for the one account
    /// the command acts on: `--account`, or the only one configured.
    pub fn load(common: &Common) -> Result<Self, CliError> {
        let mut envs = Self::load_accounts(common)?;
        if envs.len() > 1 {
            let ids: Vec<&str> = envs.iter().map(|e| e.cfg.account_id.as_str()).collect();
            return Err(input(format!(
                "the config lists {} accounts ({}): pass --account ID",
                envs.len(),
                ids.join(", ")
            )));
        }
        Ok(envs.remove(0))
    }

    /// One environment per configured account (just `--account` when given),
    /// sharing the clock.
    pub fn load_accounts(common: &Common) -> Result<Vec<Self>, CliError> {
        let base = Self::load_file(common)?;
        let all = base.cfg.account_configs().map_err(input)?;
        let chosen: Vec<_> = match &common.account {
            None => all,
            Some(id) => {
                let ids: Vec<String> = all.iter().map(|c| c.account_id.clone()).collect();
                let one: Vec<_> = all.into_iter().filter(|c| &c.account_id == id).collect();
                if one.is_empty() {
                    return Err(input(format!(
                        "--account = {id:?}: not configured (accounts: {})",
                        ids.join(", ")
                    )));
                }
                one
            }
        };
        Ok(chosen
            .into_iter()
            .map(|cfg| Env {
                cfg,
                clock: base.clock.clone(),
            })
            .collect())
    }

    /// The config file as written (top level plus `[[accounts]]`) and the clock.
    fn load_file(common: &Common) -> Result<Self, CliError> {
        // A data directory carries its own keel.toml (written by `keel demo`), so
        // `--data-dir D` alone sees the same account, seed and limits that created D.
        let implied = common
            .data_dir
            .as_ref()
            .map(|d| d.join("keel.toml"))
            .filter(|p| p.exists());
        let mut cfg = KeelConfig::load(common.config.as_deref().or(implied.as_deref()))?;
        if let Some(d) = &common.data_dir {
            cfg.data_dir = d.clone();
        }
        // The second live signal; checked wherever the venue is opened (venue.rs).
        cfg.broker.live_flag = common.live;
        let clock: Arc<dyn Clock> = match parse_at(common.at.as_deref())? {
            Some(t) => Arc::new(FixedClock::new(t)),
            None => Arc::new(SystemClock),
        };
        Ok(Self { cfg, clock })
    }

    /// Opens the store (creating the data directory): SQLite, or the
    /// account's PostgreSQL schema when `store.url` is set.
    pub async fn store(&self) -> Result<Arc<dyn Store>, CliError> {
        Ok(crate::stores::open(&self.cfg).await?.store())
    }

    /// The paper broker's settings, under this config's account id.
    pub fn paper_config(&self) -> PaperConfig {
        PaperConfig {
            account_id: self.cfg.account_id.clone(),
            ..self.cfg.paper.clone()
        }
    }

    /// Opens the store and the paper broker and builds a worker over them.
    pub async fn worker(&self) -> Result<Worker, CliError> {
        let store = self.store().await?;
        self.worker_over(store, false).await
    }

    /// A worker that trades under `lease`: every append carries its fencing
    /// token (the database refuses a stale holder's writes) and nothing is
    /// sent to the broker once the lease is no longer held. The paper venue
    /// is opened afresh, so it starts from what the previous holder left.
    pub async fn leased_worker(&self, lease: &Arc<Lease>) -> Result<Worker, CliError> {
        let store: Arc<dyn Store> = Arc::new(lease.fenced_store());
        Ok(self.worker_over(store, false).await?.with_lease(lease.clone()))
    }

    /// [`Env::leased_worker`] for a long-running loop (`keel run`): a venue
    /// with a trade stream (Alpaca's trade_updates) listens to it as well.
    pub async fn streaming_worker(&self, lease: &Arc<Lease>) -> Result<Worker, CliError> {
        let store: Arc<dyn Store> = Arc::new(lease.fenced_store());
        Ok(self.worker_over(store, true).await?.with_lease(lease.clone()))
    }

    async fn worker_over(&self, store: Arc<dyn Store>, stream: bool) -> Result<Worker, CliError> {
        let venue = crate::venue::open(self, stream).await?;
        Ok(Worker::new(
            self.cfg.account_id.clone(),
            store,
            venue.broker,
            venue.market,
            self.clock.clone(),
            self.cfg.risk(),
            self.cfg.worker.clone(),
            self.cfg.kill_switch.clone(),
        ))
    }
}

fn parse_date(flag: &str, s: &str) -> Result<NaiveDate, CliError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| input(format!("--{flag} = {s:?}: not a date in YYYY-MM-DD form ({e})")))
}

/// The widest range keel prints in one call; beyond it the output is almost certainly a typo.
const MAX_CALENDAR_DAYS: i64 = 366 * 200;

fn calendar(from: &str, to: &str) -> Result<(), CliError> {
    let from_d = parse_date("from", from)?;
    let to_d = parse_date("to", to)?;
    if to_d < from_d {
        return Err(input(format!("--to = {to} is before --from = {from}")));
    }
    if (to_d - from_d).num_days() > MAX_CALENDAR_DAYS {
        return Err(input(format!(
            "--from {from} --to {to}: range longer than 200 years"
        )));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let fmt = "%Y-%m-%dT%H:%M:%SZ";
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "date,open_utc,close_utc")?;
        for s in keel_calendar::sessions(from_d, to_d) {
            writeln!(out, "{},{},{}", s.date, s.open.format(fmt), s.close.format(fmt))?;
        }
        out.flush()
    };
    write().map_err(|e| CliError::Runtime(anyhow::anyhow!("writing to stdout: {e}")))
}

fn init(path: &Path) -> Result<(), CliError> {
    if path.exists() {
        return Err(input(format!(
            "{}: already exists; not overwriting",
            path.display()
        )));
    }
    std::fs::write(path, crate::config::example()).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The embedded paper account `keel plan` runs against: starting cash, no
/// positions, synthetic quotes for the built-in universe at `now`.
pub fn embedded_snapshot(cfg: &KeelConfig, now: DateTime<Utc>) -> AccountSnapshot {
    let cash = cfg.paper.initial_cash;
    AccountSnapshot {
        account_id: cfg.account_id.clone(),
        cash,
        equity: cash,
        buying_power: cash,
        positions: Default::default(),
        open_orders: Vec::new(),
        quotes: keel_broker::universe::quotes(cfg.paper.seed, now),
    }
}

/// What the embedded paper market knows for the guards: ADV and the
/// volatility brake's reference closes.
fn embedded_guard_state(
    cfg: &KeelConfig,
    snap: &AccountSnapshot,
    now: DateTime<Utc>,
) -> keel_planner::GuardState {
    let brake = &cfg.guards.volatility_brake;
    let reference_closes = keel_domain::Symbol::new(&brake.reference_symbol)
        .map(|s| {
            keel_broker::universe::daily_closes(cfg.paper.seed, &s, now.date_naive(), brake.closes_needed())
        })
        .unwrap_or_default();
    keel_planner::GuardState {
        adv: snap
            .quotes
            .keys()
            .filter_map(|s| keel_broker::universe::adv(s).map(|a| (s.clone(), a)))
            .collect(),
        reference_closes,
        ..Default::default()
    }
}

fn block_on_value<T, F: std::future::Future<Output = Result<T, CliError>>>(f: F) -> Result<T, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(f)
}

/// The snapshot and guard inputs `keel plan` reads from a configured venue.
async fn venue_plan_inputs(
    env: &Env,
    set: &keel_domain::TargetSet,
) -> Result<(AccountSnapshot, keel_planner::GuardState), CliError> {
    let venue = crate::venue::open(env, false).await?;
    let symbols: Vec<keel_domain::Symbol> = set.targets.iter().map(|t| t.symbol.clone()).collect();
    let snapshot = keel_broker::snapshot(venue.broker.as_ref(), venue.market.as_ref(), &symbols)
        .await
        .context("reading the venue's account")?;
    let brake = &env.cfg.guards.volatility_brake;
    let reference_closes = match keel_domain::Symbol::new(&brake.reference_symbol) {
        Ok(s) if brake.enabled && brake.builtin => venue
            .market
            .daily_closes(&s, brake.lookback_days as usize + 1)
            .await
            .context("reading the volatility brake's closes")?,
        _ => Vec::new(),
    };
    let quoted: Vec<keel_domain::Symbol> = snapshot.quotes.keys().cloned().collect();
    let adv = venue
        .market
        .adv(&quoted)
        .await
        .context("reading average daily volumes")?;
    Ok((
        snapshot,
        keel_planner::GuardState {
            adv,
            reference_closes,
            ..Default::default()
        },
    ))
}

fn plan(targets: &Path, id: Option<&str>, json: bool, common: &Common) -> Result<(), CliError> {
    let env = Env::load(common)?;
    let now = env.clock.now();
    let set = keel_intake::read_file(targets, id, &env.cfg.intake, now).map_err(input)?;
    let (snapshot, state) = match env.cfg.broker.kind {
        crate::venue::BrokerKind::Paper => {
            let snapshot = embedded_snapshot(&env.cfg, now);
            let state = embedded_guard_state(&env.cfg, &snapshot, now);
            (snapshot, state)
        }
        // A real venue: its account, positions, orders and prices (read only).
        crate::venue::BrokerKind::Alpaca => block_on_value(venue_plan_inputs(&env, &set))?,
    };
    let input_ = keel_planner::PlanInput {
        account_id: &env.cfg.account_id,
        targets: &set,
        snapshot: &snapshot,
        now,
        attempt: 0,
        state: &state,
    };
    let plan = keel_planner::plan(&input_, &env.cfg.risk());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let res = if json {
        serde_json::to_writer_pretty(&mut out, &plan)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        crate::report::write_plan(&mut out, &set, now, &plan)
    };
    res.and_then(|_| out.flush())
        .context("writing the plan to stdout")?;
    Ok(())
}

async fn serve(env: Env) -> Result<(), CliError> {
    let store = env.store().await?;
    // Control needs the worker (to cancel orders on a kill); only open it when a token enables control.
    let worker = match crate::serve::server_config(&env)?.control_token {
        Some(_) => Some(Arc::new(env.worker().await?)),
        None => None,
    };
    crate::serve::serve(&env, store, worker, shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        // Without handlers, ctrl-c is still caught portably.
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn submit(env: Env, file: &Path, id: Option<&str>) -> Result<(), CliError> {
    let now = env.clock.now();
    let set = keel_intake::read_file(file, id, &env.cfg.intake, now).map_err(input)?;
    let worker = env.worker().await?;
    let set_id = set.id.clone();
    match worker
        .submit_target_set(set)
        .await
        .context("queueing the target set")?
    {
        SubmitOutcome::Queued => {
            println!("queued target set {set_id}");
            Ok(())
        }
        SubmitOutcome::AlreadyKnown(status) => Err(input(format!(
            "{}: id = {set_id:?}: a target set with this id was already submitted (status: {status}); \
             nothing changed",
            file.display()
        ))),
    }
}

async fn cycle(env: Env) -> Result<(), CliError> {
    // One cycle under the account's lease: waits (up to one TTL) for a
    // holder to go away, renews while the cycle runs, releases at the end.
    let backend = crate::stores::open(&env.cfg).await?;
    let lease = crate::runner::acquire_for_command(&env, &backend).await?;
    let renewer = crate::runner::spawn_renewal(lease.clone(), env.cfg.lease.renew_every());
    let result = async {
        let worker = env.leased_worker(&lease).await?;
        let outcome = worker.cycle().await.context("cycle")?;
        let eod = worker.maybe_eod().await.context("end-of-day snapshot")?;
        Ok::<_, CliError>((outcome, eod))
    }
    .await;
    renewer.abort();
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "releasing the lease failed; it expires by itself");
    }
    let (outcome, eod) = result?;
    println!(
        "{}",
        serde_json::to_string(&outcome).context("rendering the outcome")?
    );
    if let Some(d) = eod {
        println!("end-of-day snapshot recorded for {d}");
    }
    Ok(())
}

async fn kill(mut env: Env, reason: &str, engage: bool) -> Result<(), CliError> {
    if reason.trim().is_empty() {
        return Err(input("--reason = \"\": a reason is required"));
    }
    if engage {
        env.cfg.broker.allow_live_for_risk_reduction();
    }
    let worker = env.worker().await?;
    if engage {
        worker
            .engage_kill(reason, KillSource::Cli)
            .await
            .context("engaging the kill switch")?;
        println!("kill switch engaged: {}", keel_domain::log_safe(reason));
    } else if worker
        .release_kill(reason, KillSource::Cli)
        .await
        .context("releasing the kill switch")?
    {
        println!("kill switch released: {}", keel_domain::log_safe(reason));
    } else {
        println!("kill switch was not engaged; nothing changed");
    }
    Ok(())
}

async fn audit_verify(env: Env) -> Result<(), CliError> {
    let path = env.cfg.store_path();
    if crate::stores::missing(&env.cfg) {
        return Err(input(format!(
            "{}: no store here (run a command that writes first)",
            path.display()
        )));
    }
    let store = env.store().await?;
    let report = store.verify_chain().await.context("reading the audit log")?;
    match report.first_bad {
        None => {
            println!("audit chain ok: {} events", report.events);
            Ok(())
        }
        Some((seq, why)) => Err(CliError::Runtime(anyhow::anyhow!(
            "audit chain broken at sequence {seq}: {why} ({} events checked)",
            report.events
        ))),
    }
}
