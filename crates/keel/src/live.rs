//! Pieces of `keel run` (the leased, per-account loop is in `runner.rs`):
//! the signal watch and the inbox. `keel run` watches each account's inbox
//! for target files, runs a cycle on schedule while the market is open,
//! records the EOD snapshot after the close, and on SIGINT/SIGTERM finishes
//! the current step and exits.

use crate::commands::Env;
use crate::error::CliError;
use anyhow::Context;
use keel_worker::{Worker, WorkerError};
use std::path::{Path, PathBuf};

/// Sets `stop` on SIGINT or SIGTERM.
pub(crate) fn spawn_signal_watch(stop: tokio::sync::watch::Sender<bool>) -> Result<(), CliError> {
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
/// `processed/` or to `rejected/` with a `.error` file saying why. A file
/// that could not be queued because of the store (unreachable, or this
/// process lost the account's lease) stays in the inbox for the next try.
pub(crate) async fn take_inbox(env: &Env, worker: &Worker, inbox: &Path) {
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
                Err(WorkerError::Store(e)) => {
                    tracing::warn!(file = %f.display(), error = %e, "target file left in the inbox: store unavailable");
                    return;
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let dest_dir = if result.is_ok() { "processed" } else { "rejected" };
        let dest = inbox.join(dest_dir).join(&name);
        if let Err(msg) = &result {
            tracing::warn!(
                file = %keel_domain::log_safe(&f.display().to_string()),
                reason = %keel_domain::log_safe(msg),
                "target file rejected"
            );
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
