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
//! The dashboard serves every account (the first at the root, each under
//! `/a/<id>/`, all together at `/accounts`). Each control API acts through
//! its account's worker while this process holds the lease; otherwise it
//! only records (kill switch, queued target sets) in the store, and the
//! holder acts on it at its next step.

use crate::commands::Env;
use crate::error::CliError;
use crate::stores::Backend;
use anyhow::Context;
use async_trait::async_trait;
use keel_domain::{AlertKind, Clock, Event, KillSource};
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
    // Bind before anything trades: a dashboard or control API that cannot be
    // served is a start-up failure (exit 1), never a silent half-start.
    let server_cfg = crate::serve::server_config(&accounts[0].0)?;
    let listener = crate::serve::bind(&server_cfg).await?;
    let first_account = accounts[0].0.cfg.account_id.clone();
    // Every account is on the dashboard (the first at the root, each under
    // /a/<id>/), each with its own control port over its own worker slot.
    let slots: Vec<Slot> = accounts.iter().map(|_| Arc::new(RwLock::new(None))).collect();
    // Notification delivery: its own tasks per account and channel, reading the
    // outbox and writing only delivery state, so trading never waits for it.
    let mut notifiers = Vec::new();
    for (env, backend) in &accounts {
        let channels = keel_notify::build_channels(&env.cfg.notify).map_err(crate::error::input)?;
        if channels.is_empty() {
            continue;
        }
        tracing::info!(account = %env.cfg.account_id, channels = channels.len(), "notifications: delivering");
        let d = keel_notify::Dispatcher::new(
            backend.outbox(),
            channels,
            env.clock.clone(),
            &env.cfg.account_id,
            env.cfg.notify.clone(),
        );
        notifiers.extend(d.spawn(stop_rx.clone()));
    }
    let recorder_ready: Option<tokio::sync::oneshot::Receiver<()>>;
    let server = {
        let named = accounts.len() > 1;
        let shown: Vec<(String, Arc<dyn Store>, RunControl)> = accounts
            .iter()
            .zip(&slots)
            .map(|((env, backend), slot)| {
                let control = RunControl {
                    slot: slot.clone(),
                    store: backend.store(),
                    intake: env.cfg.intake.clone(),
                    clock: env.clock.clone(),
                };
                let id = if named {
                    env.cfg.account_id.clone()
                } else {
                    String::new()
                };
                (id, backend.store(), control)
            })
            .collect();
        let mut rx = stop_rx.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        recorder_ready = Some(ready_rx);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = serve(listener, server_cfg, &first_account, shown, shutdown, ready_tx).await {
                tracing::error!(error = %e, "dashboard stopped");
            }
        })
    };
    for (env, _) in &accounts {
        tracing::info!(
            config = %crate::discover::used().unwrap_or("defaults"),
            account = %env.cfg.account_id,
            data_dir = %env.cfg.data_dir.display(),
            holder = %holder,
            "keel run: starting"
        );
    }
    if let Some(rx) = recorder_ready {
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for ((env, backend), slot) in accounts.into_iter().zip(slots) {
        let slot = Some(slot);
        tasks.spawn(account_loop(env, backend, holder.clone(), stop_rx.clone(), slot));
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "an account's worker task failed");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    for n in notifiers {
        // A send in flight gets a moment; what is not marked delivered is resent next start.
        let _ = tokio::time::timeout(Duration::from_secs(2), n).await;
    }
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
        metrics::counter!(
            keel_domain::metrics_names::LEASE_ACQUISITIONS,
            keel_domain::metrics_names::LABEL_ACCOUNT => account.clone()
        )
        .increment(1);
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
                // Through the unfenced store, as operator actions are: the
                // alert changes no trading state, and the log is where the
                // outbox derives notifications from.
                let kind = if why.contains("taken over") {
                    AlertKind::LeaseTakenOver
                } else {
                    AlertKind::LeaseLost
                };
                let alert = Event::Alert {
                    alert: kind,
                    detail: format!("account {account}: lease token {} lost: {why}", lease.token()),
                    key: format!("{account}:{}:{}", holder, lease.token()),
                    at: env.clock.now(),
                };
                record_alert(backend.store().as_ref(), &alert).await;
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
    let backend = crate::stores::open(&env.cfg).await?;
    // Fail closed before this tenure trades: chain, projections, anchors, broker.
    crate::integrity::startup(env, &backend, &worker).await?;
    let key = backend.audit_key().cloned();
    backend.close().await;
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
    let mut anchored = 0u64;
    let mut stream_alerted = false;
    while !stopped(stop) && lease.is_valid() {
        crate::live::take_inbox(env, &worker, &inbox).await;
        // The flag file is honoured on every tick, market open or not: an
        // operator's `touch` must not wait for the next session.
        if worker.flag_file_present() {
            match worker.store().kill_switch().await {
                Ok(None) => {
                    if let Err(e) = worker
                        .engage_kill("flag file present", KillSource::FlagFile)
                        .await
                    {
                        tracing::error!(error = %e, "engaging the kill switch from the flag file failed");
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::error!(error = %e, "reading the kill switch failed"),
            }
        }
        let due = last_cycle.is_none_or(|t| t.elapsed() >= every);
        if due && lease.is_valid() && keel_calendar::is_open(env.clock.now()) {
            last_cycle = Some(Instant::now());
            match worker.cycle().await {
                Ok(outcome) => log_outcome(&env.cfg.account_id, &outcome),
                Err(e) => {
                    tracing::error!(error = %e, "cycle failed closed");
                    record_cycle_error(env, &worker, &e.to_string()).await;
                }
            }
        }
        stream_alerted = alert_stream_down(env, &worker, stream_alerted).await;
        if lease.is_valid() {
            if let Err(e) = worker.maybe_eod().await {
                tracing::error!(error = %e, "end-of-day snapshot failed");
            }
        }
        // Whatever moved the head this tick (a cycle, the EOD snapshot, the
        // inbox, the control API, the flag file) is anchored before the next.
        anchored = anchor_if_moved(env, &worker, key.as_ref(), anchored).await;
        nap(stop, TICK).await;
    }
    Ok(())
}

/// One structured log line per cycle: `outcome` is the machine name, the
/// message the text `keel cycle` prints.
fn log_outcome(account: &str, outcome: &keel_worker::CycleOutcome) {
    use keel_worker::CycleOutcome as O;
    let text = crate::commands::describe_outcome(outcome);
    match outcome {
        O::Submitted {
            cycle_id,
            sent,
            rejected,
            blocked,
        } => tracing::info!(
            account,
            outcome = "submitted",
            cycle_id = %cycle_id,
            sent,
            rejected,
            blocked,
            "{text}"
        ),
        O::Killed(reason) => tracing::warn!(account, outcome = "killed", reason = %reason, "{text}"),
        O::MarketClosed => tracing::info!(account, outcome = "market_closed", "{text}"),
        O::Idle => tracing::info!(account, outcome = "idle", "{text}"),
        O::Waiting(w) => tracing::info!(account, outcome = "waiting", detail = %w, "{text}"),
        O::Completed(c) => tracing::info!(account, outcome = "completed", detail = %c, "{text}"),
        O::VenueBlocked(reasons) => {
            tracing::warn!(account, outcome = "venue_blocked", detail = %reasons.join("; "), "{text}")
        }
    }
}

/// Writes a checkpoint when the head moved past `anchored` (one indexed
/// read otherwise); returns the seq now anchored. A failure is logged and
/// retried next tick, not fatal to the loop.
async fn anchor_if_moved(
    env: &Env,
    worker: &Worker,
    key: Option<&keel_store::AuditKey>,
    anchored: u64,
) -> u64 {
    let seq = match worker.store().audit_head().await {
        Ok((seq, _)) => seq,
        Err(e) => {
            tracing::error!(account = %env.cfg.account_id, error = %e, "reading the audit head failed");
            return anchored;
        }
    };
    if seq <= anchored {
        return anchored;
    }
    match crate::integrity::checkpoint(env, worker.store().as_ref(), key).await {
        Ok(()) => seq,
        Err(e) => {
            tracing::error!(account = %env.cfg.account_id, error = %e, "audit checkpoint failed");
            anchored
        }
    }
}

/// One `stream_down` alert per outage of the venue's order-update stream
/// longer than `[notify] stream_down_secs`, keyed by when it began. Returns
/// whether the current outage has been alerted.
async fn alert_stream_down(env: &Env, worker: &Worker, alerted: bool) -> bool {
    let Some(down) = worker.broker().stream_down_for() else {
        return false;
    };
    if alerted || down < Duration::from_secs(env.cfg.notify.stream_down_secs) {
        return alerted;
    }
    let now = env.clock.now();
    let since = chrono::Duration::from_std(down)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let alert = Event::Alert {
        alert: AlertKind::StreamDown,
        detail: format!(
            "account {}: the venue's order-update stream has been down for {}s (since {since}); \
             keel sends no new orders until it is back and backfilled",
            env.cfg.account_id,
            down.as_secs(),
        ),
        key: format!("{}:{since}", env.cfg.account_id),
        at: now,
    };
    record_alert(worker.store().as_ref(), &alert).await;
    true
}

/// Logs a cycle error as an alert so its notification is durable. One alert
/// per distinct error per session day: a venue that stays down is one
/// message, not one per tick.
async fn record_cycle_error(env: &Env, worker: &Worker, error: &str) {
    let now = env.clock.now();
    let alert = Event::Alert {
        alert: AlertKind::CycleError,
        detail: format!("account {}: {error}", env.cfg.account_id),
        key: format!(
            "{}:{}",
            now.date_naive(),
            error.chars().take(120).collect::<String>()
        ),
        at: now,
    };
    record_alert(worker.store().as_ref(), &alert).await;
}

/// Logs an operational alert (`Event::Alert`); the store derives its
/// notification in the same transaction. This is the seam for alerts from
/// adapters too: the Alpaca adapter's "trade_updates stream down longer than
/// the threshold" comes through here from [`alert_stream_down`].
pub async fn record_alert(store: &dyn Store, alert: &Event) {
    use keel_domain::metrics_names as m;
    match store.append(alert).await {
        Ok(Some(_)) => {
            if let Event::Alert { alert: kind, .. } = alert {
                metrics::counter!(m::ALERTS, m::LABEL_KIND => kind.as_str()).increment(1);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "recording an alert failed"),
    }
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
            tracing::warn!(reason, source = "http", "kill switch engaged");
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
        tracing::warn!(reason, source = "http", "kill switch released");
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

/// Serves the dashboard on the bound `listener` for every account in
/// `shown` (id, store, control), with control when a token enables it, until `shutdown`.
async fn serve(
    listener: tokio::net::TcpListener,
    cfg: keel_server::ServerConfig,
    first_account: &str,
    shown: Vec<(String, Arc<dyn Store>, RunControl)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    recorder_ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), CliError> {
    let control_on = cfg.control_token.is_some();
    let ids: Vec<String> = shown.iter().map(|(id, _, _)| id.clone()).collect();
    let accounts: Vec<keel_server::Account> = shown
        .into_iter()
        .map(|(id, store, control)| keel_server::Account {
            id,
            store,
            control: control_on.then(|| Arc::new(control) as Arc<dyn ControlPort>),
        })
        .collect();
    let metrics = match keel_server::install_metrics_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics serves store gauges only");
            None
        }
    };
    let _ = recorder_ready.send(());
    if ids.len() > 1 {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        eprintln!(
            "keel: dashboard on http://{addr}/ for accounts {} (each under /a/<id>/, all at /accounts; control API {})",
            ids.join(", "),
            if control_on { "on" } else { "off" }
        );
    } else {
        crate::serve::announce(&listener, first_account, control_on);
    }
    keel_server::serve_listener_accounts(listener, cfg, accounts, metrics, shutdown)
        .await
        .context("dashboard server")?;
    Ok(())
}
