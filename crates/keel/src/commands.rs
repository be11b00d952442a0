//! Dispatch of each verb to the library crates.

use crate::cli::{AuditAction, Cli, Command, Common, NotifyAction};
use crate::config::KeelConfig;
use crate::error::{input, CliError};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use keel_broker::{Broker, MarketData, PaperBroker, PaperConfig};
use keel_domain::{Clock, FixedClock, KillSource, SystemClock};
use keel_store::{Lease, Store};
use keel_worker::{CycleOutcome, SubmitOutcome, Worker};
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
            bind,
            before,
        } => {
            let before = before.map(|d| parse_date("before", &d)).transpose()?;
            block_on(crate::demo::run(days, seed, &dir, !no_serve, bind, before))
        }
        Command::Serve { bind, common } => {
            let mut env = Env::load(&common)?;
            if let Some(b) = bind {
                env.cfg.server.bind = b;
            }
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
        Command::Cycle { json, common } => {
            let env = Env::load(&common)?;
            block_on(cycle(env, json))
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
        Command::Notify {
            action: NotifyAction::Test { common },
        } => {
            let env = Env::load(&common)?;
            block_on(notify_test(env))
        }
        Command::Report {
            day,
            format,
            out,
            common,
        } => {
            let env = Env::load(&common)?;
            block_on(crate::day_report::run(env, &day, format, out.as_deref()))
        }
        Command::Audit {
            action: AuditAction::Verify { common },
        } => {
            let env = Env::load(&common)?;
            block_on(audit_verify(env))
        }
        Command::Audit {
            action: AuditAction::Rekey { common },
        } => {
            let env = Env::load(&common)?;
            block_on(audit_rekey(env))
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(f: F) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(f);
    // Exit must not depend on what is still running. Dropping a runtime waits
    // without limit for blocking-pool threads (sqlx's file helpers, DNS
    // look-ups for a PostgreSQL host, tokio::fs) and for tasks that were
    // aborted but not yet polled to their end; bound that wait so a verb that
    // has finished its work always exits.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
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
        let (base, source) = Self::load_file(common)?;
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
        // One line, so an operator always sees which file, account and
        // directory a command acted on (never a silent fallback).
        let accounts: Vec<String> = chosen
            .iter()
            .map(|c| {
                format!(
                    "account {}, data directory {}",
                    c.account_id,
                    c.data_dir.display()
                )
            })
            .collect();
        eprintln!("keel: config {}; {}", source.describe(), accounts.join("; "));
        crate::discover::record_used(&source);
        Ok(chosen
            .into_iter()
            .map(|cfg| Env {
                cfg,
                clock: base.clock.clone(),
            })
            .collect())
    }

    /// The config file as written (top level plus `[[accounts]]`) and the
    /// clock, the file found by the documented order (see `discover.rs`).
    fn load_file(common: &Common) -> Result<(Self, crate::discover::ConfigSource), CliError> {
        let source = crate::discover::discover_here(common.config.as_deref(), common.data_dir.as_deref())?;
        let mut cfg = KeelConfig::load(source.path())?;
        if let Some(d) = &common.data_dir {
            cfg.data_dir = d.clone();
        }
        // The second live signal; checked wherever the venue is opened (venue.rs).
        cfg.broker.live_flag = common.live;
        let clock: Arc<dyn Clock> = match parse_at(common.at.as_deref())? {
            Some(t) => Arc::new(FixedClock::new(t)),
            None => Arc::new(SystemClock),
        };
        Ok((Self { cfg, clock }, source))
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

    /// A worker for `keel plan`: the same store and venue the cycle would
    /// use, opened so that nothing is written. A data directory with no
    /// store or no venue file yet plans against a fresh in-memory one (the
    /// embedded paper account with its starting cash), leaving nothing behind.
    pub async fn dry_run_worker(&self) -> anyhow::Result<Worker> {
        let store: Arc<dyn Store> = if crate::stores::missing(&self.cfg) {
            Arc::new(keel_store::SqliteStore::open_in_memory().await?)
        } else {
            crate::stores::open(&self.cfg)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .store()
        };
        let (broker, market): (Arc<dyn Broker>, Arc<dyn MarketData>) = match self.cfg.broker.kind {
            crate::venue::BrokerKind::Paper => {
                let path = self.cfg.paper_path();
                let broker = if path.is_file() {
                    PaperBroker::open_read_only(&path, self.paper_config(), self.clock.clone()).await
                } else {
                    PaperBroker::open_in_memory(self.paper_config(), self.clock.clone()).await
                }
                .with_context(|| format!("opening paper broker {} (read-only)", path.display()))?;
                let broker = Arc::new(broker);
                (broker.clone(), broker)
            }
            // A real venue is only read: the dry run never submits or cancels.
            crate::venue::BrokerKind::Alpaca => {
                let venue = crate::venue::open(self, false)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (venue.broker, venue.market)
            }
        };
        Ok(Worker::new(
            self.cfg.account_id.clone(),
            store,
            broker,
            market,
            self.clock.clone(),
            self.cfg.risk(),
            self.cfg.worker.clone(),
            self.cfg.kill_switch.clone(),
        ))
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

fn plan(targets: &Path, id: Option<&str>, json: bool, common: &Common) -> Result<(), CliError> {
    let env = Env::load(common)?;
    // The two-signal rule is a usage error (exit 2), checked before the venue opens.
    env.cfg.broker.check_live().map_err(input)?;
    let now = env.clock.now();
    // Read and validated once; the dry run and the report use this one set.
    let set = keel_intake::read_file(targets, id, &env.cfg.intake, now).map_err(input)?;
    let dry = block_on_value(async {
        let worker = env.dry_run_worker().await?;
        worker.dry_run(&set).await.context("planning (dry run)")
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let res = if json {
        serde_json::to_writer_pretty(&mut out, &dry)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        crate::report::write_dry_run(&mut out, &set, &dry)
    };
    res.and_then(|_| out.flush())
        .context("writing the plan to stdout")?;
    Ok(())
}

fn block_on_value<T, F: std::future::Future<Output = Result<T, anyhow::Error>>>(f: F) -> Result<T, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(f)?)
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
            crate::integrity::checkpoint(&env, worker.store().as_ref(), audit_key(&env)?.as_ref()).await?;
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

async fn cycle(env: Env, json: bool) -> Result<(), CliError> {
    // One cycle under the account's lease: waits (up to one TTL) for a
    // holder to go away, renews while the cycle runs, releases at the end.
    let backend = crate::stores::open(&env.cfg).await?;
    let lease = crate::runner::acquire_for_command(&env, &backend).await?;
    let renewer = crate::runner::spawn_renewal(lease.clone(), env.cfg.lease.renew_every());
    let result = async {
        let worker = env.leased_worker(&lease).await?;
        // Fail closed before anything is sent: chain, projections, anchors, broker.
        crate::integrity::startup(&env, &backend, &worker).await?;
        let outcome = worker.cycle().await.context("cycle")?;
        let eod = worker.maybe_eod().await.context("end-of-day snapshot")?;
        crate::integrity::checkpoint(&env, worker.store().as_ref(), backend.audit_key()).await?;
        Ok::<_, CliError>((outcome, eod))
    }
    .await;
    // Stop the renewal task and wait for it to be gone, so no renewal runs
    // after (or during) the release and nothing is left running at exit.
    renewer.abort();
    let _ = renewer.await;
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "releasing the lease failed; it expires by itself");
    }
    backend.close().await;
    let (outcome, eod) = result?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&outcome).context("rendering the outcome")?
        );
    } else {
        println!("{}", describe_outcome(&outcome));
    }
    if let Some(d) = eod {
        println!("end-of-day snapshot recorded for {d}");
    }
    match outcome {
        CycleOutcome::Killed(reason) => Err(CliError::Killed(reason)),
        _ => Ok(()),
    }
}

/// One line per cycle outcome, for people (`--json` gives the machine form).
pub fn describe_outcome(o: &CycleOutcome) -> String {
    match o {
        CycleOutcome::Killed(r) => {
            format!("cycle killed: kill switch engaged ({r}); open orders cancelled, nothing sent")
        }
        CycleOutcome::MarketClosed => "cycle: market closed; nothing to do".into(),
        CycleOutcome::Idle => "cycle idle: no target set waiting".into(),
        CycleOutcome::Waiting(w) => format!("cycle waiting: {w}"),
        CycleOutcome::Submitted {
            cycle_id,
            sent,
            rejected,
            blocked,
        } => format!("cycle {cycle_id} submitted: sent {sent}, rejected {rejected}, blocked {blocked}"),
        CycleOutcome::Completed(c) => format!("cycle completed: {c}"),
        CycleOutcome::VenueBlocked(reasons) => format!(
            "cycle blocked by the venue, nothing sent: {}",
            keel_domain::log_safe(&reasons.join("; "))
        ),
    }
}

/// The configured audit key (for checkpoints written by verbs that only hold a `dyn Store`).
pub fn audit_key(env: &Env) -> Result<Option<keel_store::AuditKey>, CliError> {
    env.cfg.audit.key(&env.cfg.data_dir)
}

async fn kill(mut env: Env, reason: &str, engage: bool) -> Result<(), CliError> {
    if reason.trim().is_empty() {
        return Err(input("--reason = \"\": a reason is required"));
    }
    if engage {
        env.cfg.broker.allow_live_for_risk_reduction();
    }
    if engage {
        // Already engaged: say since when and why, and change nothing (no
        // second event, no re-cancel).
        if !crate::stores::missing(&env.cfg) {
            let store = env.store().await?;
            if let Some(k) = store.kill_switch().await.context("reading the kill switch")? {
                println!(
                    "kill switch already engaged since {} by {}: {}; nothing changed",
                    k.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    serde_json::to_value(k.source)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    k.reason
                );
                return Ok(());
            }
        }
        let worker = env.worker().await?;
        worker
            .engage_kill(reason, KillSource::Cli)
            .await
            .context("engaging the kill switch")?;
        crate::integrity::checkpoint(&env, worker.store().as_ref(), audit_key(&env)?.as_ref()).await?;
        println!("kill switch engaged: {}", keel_domain::log_safe(reason));
        return Ok(());
    }
    let worker = env.worker().await?;
    if worker
        .release_kill(reason, KillSource::Cli)
        .await
        .context("releasing the kill switch")?
    {
        crate::integrity::checkpoint(&env, worker.store().as_ref(), audit_key(&env)?.as_ref()).await?;
        println!("kill switch released: {}", keel_domain::log_safe(reason));
    } else {
        println!("kill switch was not engaged; nothing changed");
    }
    Ok(())
}

async fn audit_verify(env: Env) -> Result<(), CliError> {
    let path = env.cfg.store_path();
    if crate::stores::missing(&env.cfg) {
        let witness = env.cfg.audit.witness(&env.cfg.data_dir);
        if witness.has_checkpoints(&env.cfg.account_id) {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "{}: the store is missing, but {} holds checkpoints of its audit log (the log was deleted)",
                path.display(),
                witness.path(&env.cfg.account_id).display()
            )));
        }
        return Err(input(format!(
            "{}: no store here (run a command that writes first)",
            path.display()
        )));
    }
    let backend = crate::stores::open(&env.cfg).await?;
    let (report, failures) =
        crate::integrity::verify(&env, &backend, true, crate::integrity::Replay::Whole).await?;
    backend.close().await;
    println!(
        "audit log: {}",
        keel_store::chain::protection(backend.audit_key())
    );
    if failures.is_empty() {
        let anchored = match &report.checkpoint {
            Some(cp) => format!(
                "extends the checkpoint of {} at {}",
                cp.at,
                keel_store::grouped(cp.seq)
            ),
            None => "no checkpoint yet, so truncation or a restored backup cannot be detected \
                     (one is written after every cycle, EOD and operator action)"
                .to_string(),
        };
        println!(
            "audit chain ok: {} events; projections equal the replayed log; {anchored}",
            report.events
        );
        return Ok(());
    }
    for f in &failures {
        eprintln!("keel: {f}");
    }
    Err(CliError::Runtime(anyhow::anyhow!(
        "{} ({} events checked)",
        failures[0],
        report.events
    )))
}

async fn audit_rekey(env: Env) -> Result<(), CliError> {
    if crate::stores::missing(&env.cfg) {
        return Err(input(format!(
            "{}: no store here",
            env.cfg.store_path().display()
        )));
    }
    let backend = crate::stores::open(&env.cfg).await?;
    if backend.audit_key().is_none() {
        return Err(input(
            "keel audit rekey needs an audit key: set KEEL_AUDIT_KEY or [audit] key_file",
        ));
    }
    let n = backend.rekey().await.context("rekeying the audit log")?;
    crate::integrity::checkpoint(&env, backend.store().as_ref(), backend.audit_key()).await?;
    backend.close().await;
    println!("audit log rekeyed: {n} rows now chained with HMAC-SHA-256; keyed checkpoint written");
    Ok(())
}

/// `keel notify test`: one test message per channel; exit 1 if any failed.
async fn notify_test(env: Env) -> Result<(), CliError> {
    let channels = keel_notify::build_channels(&env.cfg.notify).map_err(input)?;
    if channels.is_empty() {
        return Err(input(
            "no notification channels configured: add [[notify.channel]] entries to keel.toml".to_string(),
        ));
    }
    let results = keel_notify::send_test(&channels, &env.cfg.account_id, env.clock.now()).await;
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("{name}: ok"),
            Err(e) => {
                failed += 1;
                println!("{name}: FAILED: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{failed} of {} notification channel(s) failed",
            results.len()
        )));
    }
    Ok(())
}
