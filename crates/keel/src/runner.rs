//! `keel run`: one leased worker per configured account.
//!
//! For each account the loop is: acquire the account's single-writer lease
//! (standing by while another process holds it), then trade — watch the
//! inbox, run a cycle on schedule while the market is open, record the EOD
//! snapshot after the close — for as long as the lease is held, renewing it
//! every `lease.renew_ms`. The worker writes through a fenced store (the
//! database refuses its writes once another process holds the lease) and
//! checks the lease's local deadline before every broker call that matters,
//! so a paused or partitioned process stops sending before anyone can take
//! over. When the lease is lost the worker is dropped (with its paper venue
//! handle, which a later holder reopens fresh) and the account goes back to
//! standing by. On SIGINT/SIGTERM the current step finishes, the lease is
//! released (so a standby takes over at once) and the process exits 0.
//!
//! The dashboard serves the first account. Its control API acts through
//! that account's worker while this process holds the lease; otherwise it
//! only records (kill switch, queued target sets) in the store, and the
//! holder acts on it at its next step.

use crate::commands::Env;
use crate::error::CliError;
use crate::stores::Backend;
use anyhow::Context;
use async_trait::async_trait;
use keel_domain::{Clock, Event, KillSource};
use keel_intake::IntakeConfig;
use keel_server::{ControlError, ControlPort};
use keel_store::{Lease, LeaseAttempt, Store};
use keel_worker::{SubmitOutcome, Worker};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the inbox and the flag file are looked at.
const TICK: Duration = Duration::from_millis(500);

/// The worker currently trading the dashboard's account, if this process holds its lease.
type Slot = Arc<RwLock<Option<Arc<Worker>>>>;

/// Runs every account in `envs` until SIGINT or SIGTERM.
pub async fn run(envs: Vec<Env>) -> Result<(), CliError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::live::spawn_signal_watch(stop_tx)?;
    let holder = keel_store::holder_id();
    // Open every store first: a misconfigured account fails the start, not later.
    let mut accounts = Vec::new();
    for env in envs {
        let inbox = env.cfg.inbox();
        for d in [inbox.clone(), inbox.join("processed"), inbox.join("rejected")] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let backend = crate::stores::open(&env.cfg).await?;
        accounts.push((env, backend));
    }
    let slot: Slot = Arc::new(RwLock::new(None));
    let server = {
        let (env, backend) = &accounts[0];
        let env2 = Env {
            cfg: env.cfg.clone(),
            clock: env.clock.clone(),
        };
        let control = RunControl {
            slot: slot.clone(),
            store: backend.store(),
            intake: env.cfg.intake.clone(),
            clock: env.clock.clone(),
        };
        let store = backend.store();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = serve(&env2, store, control, shutdown).await {
                tracing::error!(error = %e, "dashboard stopped");
            }
        })
    };
    tracing::info!(holder = %holder, accounts = accounts.len(), "keel run: starting");
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (env, backend)) in accounts.into_iter().enumerate() {
        let slot = (i == 0).then(|| slot.clone());
        tasks.spawn(account_loop(env, backend, holder.clone(), stop_rx.clone(), slot));
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "an account's worker task failed");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("keel run: stopped cleanly");
    Ok(())
}

fn stopped(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow()
}

/// Sleeps `d`, or less if asked to stop.
async fn nap(rx: &watch::Receiver<bool>, d: Duration) {
    let mut rx = rx.clone();
    let _ = tokio::time::timeout(d, rx.wait_for(|stop| *stop)).await;
}

/// Stands by for the account's lease, trades while holding it, repeats.
async fn account_loop(
    env: Env,
    backend: Backend,
    holder: String,
    stop: watch::Receiver<bool>,
    slot: Option<Slot>,
) {
    let account = env.cfg.account_id.clone();
    let terms = env.cfg.lease.terms();
    let every = env.cfg.lease.renew_every();
    let store = backend.lease_store();
    let mut reported: Option<i64> = None;
    while !stopped(&stop) {
        let lease = match Lease::acquire(store.clone(), &account, &holder, terms).await {
            Ok(LeaseAttempt::Acquired(l)) => l,
            Ok(LeaseAttempt::Busy(row)) => {
                if reported != Some(row.token) {
                    tracing::info!(
                        account = %account,
                        holder = %row.holder,
                        token = row.token,
                        expires_in_ms = row.expires_in_ms,
                        "standing by: the lease is held by another process"
                    );
                    reported = Some(row.token);
                }
                nap(&stop, every).await;
                continue;
            }
            Err(e) => {
                tracing::error!(account = %account, error = %e, "acquiring the lease failed; retrying");
                nap(&stop, every).await;
                continue;
            }
        };
        reported = None;
        tracing::info!(account = %account, token = lease.token(), "lease acquired: trading");
        let renewer = spawn_renewal(lease.clone(), every);
        let result = tenure(&env, &lease, &stop, slot.as_ref()).await;
        renewer.abort();
        if let Some(s) = &slot {
            *s.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if stopped(&stop) {
            match lease.release().await {
                Ok(_) => tracing::info!(account = %account, token = lease.token(), "lease released"),
                Err(e) => tracing::warn!(
                    account = %account,
                    error = %e,
                    "releasing the lease failed; it expires by itself"
                ),
            }
            break;
        }
        match result {
            Err(e) => {
                // Could not trade (e.g. the venue would not open): let a
                // standby try instead of sitting on the lease.
                tracing::error!(account = %account, error = %e, "trading stopped; releasing the lease");
                let _ = lease.release().await;
            }
            Ok(()) => {
                let why = lease.lost_reason().unwrap_or_else(|| "unknown".into());
                tracing::warn!(
                    account = %account,
                    token = lease.token(),
                    reason = %why,
                    "lease lost: stopped trading; standing by to re-acquire"
                );
            }
        }
        nap(&stop, every).await;
    }
}

/// Trades the account for as long as `lease` is held (or until stopped).
async fn tenure(
    env: &Env,
    lease: &Arc<Lease>,
    stop: &watch::Receiver<bool>,
    slot: Option<&Slot>,
) -> Result<(), CliError> {
    let worker = Arc::new(env.streaming_worker(lease).await?);
    if let Err(e) = worker.recover().await {
        // The cycle recovers again before anything is sent; keep going.
        tracing::error!(error = %e, "recovering state from the broker failed");
    }
    if let Some(s) = slot {
        *s.write().unwrap_or_else(|p| p.into_inner()) = Some(worker.clone());
    }
    let inbox = env.cfg.inbox();
    let every = Duration::from_secs(env.cfg.schedule.cycle_every_secs.max(1));
    let mut last_cycle: Option<Instant> = None;
    while !stopped(stop) && lease.is_valid() {
        crate::live::take_inbox(env, &worker, &inbox).await;
        let due = last_cycle.is_none_or(|t| t.elapsed() >= every);
        if due && lease.is_valid() && keel_calendar::is_open(env.clock.now()) {
            last_cycle = Some(Instant::now());
            match worker.cycle().await {
                Ok(outcome) => tracing::info!(?outcome, "cycle"),
                Err(e) => tracing::error!(error = %e, "cycle failed closed"),
            }
        }
        if lease.is_valid() {
            if let Err(e) = worker.maybe_eod().await {
                tracing::error!(error = %e, "end-of-day snapshot failed");
            }
        }
        nap(stop, TICK).await;
    }
    Ok(())
}

/// Renews `lease` every `every` until it is lost (or the task is aborted).
/// A database error is retried; the local deadline decides when to give up.
pub fn spawn_renewal(lease: Arc<Lease>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match lease.renew().await {
                Ok(()) => {}
                Err(e) if lease.lost_reason().is_some() => {
                    tracing::warn!(account = %lease.account_id(), error = %e, "lease not renewed");
                    break;
                }
                Err(e) => {
                    tracing::warn!(account = %lease.account_id(), error = %e, "lease renewal failed; retrying")
                }
            }
        }
    })
}

/// The lease for a one-shot command (`keel cycle`): waits up to one TTL plus
/// one renewal period for a holder to go away, then fails naming it.
pub async fn acquire_for_command(env: &Env, backend: &Backend) -> Result<Arc<Lease>, CliError> {
    let cfg = &env.cfg.lease;
    let wait = Duration::from_millis(cfg.ttl_ms.saturating_add(cfg.renew_ms));
    let start = Instant::now();
    let holder = keel_store::holder_id();
    loop {
        match Lease::acquire(backend.lease_store(), &env.cfg.account_id, &holder, cfg.terms())
            .await
            .context("acquiring the account's lease")?
        {
            LeaseAttempt::Acquired(l) => return Ok(l),
            LeaseAttempt::Busy(row) if start.elapsed() >= wait => {
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "account {}: the single-writer lease is held by {} (token {}, {} ms left); \
                     is `keel run` running for this account?",
                    env.cfg.account_id,
                    row.holder,
                    row.token,
                    row.expires_in_ms
                )))
            }
            LeaseAttempt::Busy(_) => {
                tokio::time::sleep(cfg.renew_every().min(Duration::from_millis(200))).await
            }
        }
    }
}

/// The dashboard's control API under `keel run`.
struct RunControl {
    slot: Slot,
    /// The unfenced store: operator actions are recorded whoever holds the lease.
    store: Arc<dyn Store>,
    intake: IntakeConfig,
    clock: Arc<dyn Clock>,
}

impl RunControl {
    fn worker(&self) -> Option<Arc<Worker>> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::internal(e.to_string())
}

#[async_trait]
impl ControlPort for RunControl {
    async fn engage_kill(&self, reason: &str) -> Result<(), ControlError> {
        if let Some(w) = self.worker() {
            return w.engage_kill(reason, KillSource::Http).await.map_err(internal);
        }
        // Not the holder: record it; the holder cancels open orders at its next step.
        if self.store.kill_switch().await.map_err(internal)?.is_none() {
            self.store
                .append(&Event::KillSwitchEngaged {
                    reason: reason.to_string(),
                    source: KillSource::Http,
                    at: self.clock.now(),
                })
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    async fn release_kill(&self, reason: &str) -> Result<bool, ControlError> {
        if let Some(w) = self.worker() {
            return w.release_kill(reason, KillSource::Http).await.map_err(internal);
        }
        if self.store.kill_switch().await.map_err(internal)?.is_none() {
            return Ok(false);
        }
        self.store
            .append(&Event::KillSwitchReleased {
                reason: reason.to_string(),
                source: KillSource::Http,
                at: self.clock.now(),
            })
            .await
            .map_err(internal)?;
        Ok(true)
    }

    async fn submit_target_set(
        &self,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<String, ControlError> {
        if content_type.is_some_and(|c| c.contains("csv")) {
            return Err(ControlError::bad_request(
                "CSV needs an id: send the JSON target-set format over HTTP",
            ));
        }
        let set = keel_intake::parse_json("http request body", body, &self.intake, self.clock.now())
            .map_err(|e| ControlError::bad_request(e.to_string()))?;
        let id = set.id.clone();
        let conflict = |status: String| ControlError {
            status: 409,
            message: format!("id = {id:?}: already submitted (status: {status}); nothing changed"),
        };
        if let Some(w) = self.worker() {
            return match w.submit_target_set(set).await.map_err(internal)? {
                SubmitOutcome::Queued => Ok(id),
                SubmitOutcome::AlreadyKnown(status) => Err(conflict(status)),
            };
        }
        if let Some(status) = self.store.target_set_status(&id).await.map_err(internal)? {
            return Err(conflict(status));
        }
        match self
            .store
            .append(&Event::TargetSetQueued {
                set,
                at: self.clock.now(),
            })
            .await
            .map_err(internal)?
        {
            Some(_) => Ok(id),
            None => Err(conflict("queued".into())),
        }
    }
}

/// Serves the dashboard with `control` (when a token enables it) until `shutdown`.
async fn serve(
    env: &Env,
    store: Arc<dyn Store>,
    control: RunControl,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let cfg = crate::serve::server_config(env)?;
    let control: Option<Arc<dyn ControlPort>> = match &cfg.control_token {
        Some(_) => Some(Arc::new(control)),
        None => None,
    };
    let metrics = match keel_server::install_metrics_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics serves store gauges only");
            None
        }
    };
    eprintln!(
        "keel: dashboard on http://{}/ for account {} (control API {})",
        cfg.bind,
        env.cfg.account_id,
        if control.is_some() { "on" } else { "off" }
    );
    keel_server::serve(cfg, store, control, metrics, shutdown)
        .await
        .context("dashboard server")?;
    Ok(())
}
