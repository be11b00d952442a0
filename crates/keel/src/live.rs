//! `keel run`: the live loop. Watches the inbox for target files, runs a cycle
//! on schedule while the market is open, records the EOD snapshot after the
//! close, and on SIGINT/SIGTERM finishes the current step and exits.

use crate::commands::Env;
use crate::error::CliError;
use anyhow::Context;
use keel_worker::Worker;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the inbox and the flag file are looked at.
const TICK: Duration = Duration::from_millis(500);

/// Runs until SIGINT or SIGTERM.
pub async fn run(env: Env) -> Result<(), CliError> {
    let inbox = env.cfg.inbox();
    for d in [inbox.clone(), inbox.join("processed"), inbox.join("rejected")] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let worker = Arc::new(env.worker().await?);
    worker
        .recover()
        .await
        .context("recovering state from the broker")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    spawn_signal_watch(stop_tx)?;
    let server = {
        let store = worker.store().clone();
        let w = worker.clone();
        let env2 = Env {
            cfg: env.cfg.clone(),
            clock: env.clock.clone(),
        };
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = crate::serve::serve(&env2, store, Some(w), shutdown).await {
                tracing::error!(error = %e, "dashboard stopped");
            }
        })
    };
    tracing::info!(inbox = %inbox.display(), "keel run: watching the inbox");
    let every = Duration::from_secs(env.cfg.schedule.cycle_every_secs.max(1));
    let mut last_cycle: Option<Instant> = None;
    while !*stop_rx.borrow() {
        take_inbox(&env, &worker, &inbox).await;
        let due = last_cycle.is_none_or(|t| t.elapsed() >= every);
        if due && keel_calendar::is_open(env.clock.now()) {
            last_cycle = Some(Instant::now());
            match worker.cycle().await {
                Ok(outcome) => tracing::info!(?outcome, "cycle"),
                Err(e) => tracing::error!(error = %e, "cycle failed closed"),
            }
        }
        if let Err(e) = worker.maybe_eod().await {
            tracing::error!(error = %e, "end-of-day snapshot failed");
        }
        tokio::time::sleep(TICK).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("keel run: stopped cleanly");
    Ok(())
}

fn spawn_signal_watch(stop: tokio::sync::watch::Sender<bool>) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("signal received: finishing the current step");
        let _ = stop.send(true);
    });
    Ok(())
}

/// Queues every target file in the inbox (oldest name first); moves each to
/// `processed/` or to `rejected/` with a `.error` file saying why.
async fn take_inbox(env: &Env, worker: &Worker, inbox: &Path) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(inbox) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, inbox = %inbox.display(), "cannot read the inbox");
            return;
        }
    };
    files.sort();
    for f in files {
        let name = f.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        if name.to_string_lossy().starts_with('.') {
            continue; // partially written files by convention
        }
        let result = match keel_intake::read_file(&f, None, &env.cfg.intake, env.clock.now()) {
            Ok(set) => match worker.submit_target_set(set).await {
                Ok(keel_worker::SubmitOutcome::Queued) => Ok(()),
                Ok(keel_worker::SubmitOutcome::AlreadyKnown(s)) => Err(format!("id already submitted ({s})")),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let dest_dir = if result.is_ok() { "processed" } else { "rejected" };
        let dest = inbox.join(dest_dir).join(&name);
        if let Err(msg) = &result {
            tracing::warn!(file = %f.display(), reason = %msg, "target file rejected");
            let mut err_name = name.clone();
            err_name.push(".error");
            let _ = std::fs::write(inbox.join("rejected").join(err_name), format!("{msg}\n"));
        } else {
            tracing::info!(file = %f.display(), "target set queued");
        }
        if let Err(e) = std::fs::rename(&f, &dest) {
            tracing::error!(error = %e, file = %f.display(), "cannot move target file out of the inbox");
        }
    }
}
