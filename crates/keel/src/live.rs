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
///
/// JSON files carry their id; CSV files take it from a `# id: ID` first line
/// or their file name. Anything but a regular file (a symlink, FIFO, socket,
/// device) is refused without being opened and moved aside as it is (a
/// rename moves the link, not what it points to). A moved file or `.error`
/// never replaces an earlier one: a taken name gets a `.1`, `.2`, ... suffix.
pub(crate) async fn take_inbox(env: &Env, worker: &Worker, inbox: &Path) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(inbox) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            // file_type() is the entry's own type (lstat): links are not followed.
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
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
        let result = match keel_intake::read_inbox_file(&f, &env.cfg.intake, env.clock.now()) {
            Ok(set) => {
                let id = set.id.clone();
                match worker.submit_target_set(set).await {
                    Ok(keel_worker::SubmitOutcome::Queued) => Ok(id),
                    Ok(keel_worker::SubmitOutcome::AlreadyKnown(s)) => Err(format!(
                        "{}: id = {id:?}: already submitted ({s}); nothing changed",
                        f.display()
                    )),
                    Err(WorkerError::Store(e)) => {
                        tracing::warn!(file = %f.display(), error = %e, "target file left in the inbox: store unavailable");
                        return;
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let dest_dir = inbox.join(if result.is_ok() { "processed" } else { "rejected" });
        let dest = match move_unique(&f, &dest_dir, &name) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, file = %f.display(), "cannot move target file out of the inbox");
                continue;
            }
        };
        match &result {
            Err(msg) => {
                tracing::warn!(
                    file = %keel_domain::log_safe(&f.display().to_string()),
                    moved_to = %keel_domain::log_safe(&dest.display().to_string()),
                    reason = %keel_domain::log_safe(msg),
                    "target file rejected"
                );
                let mut err_name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                err_name.push(".error");
                if let Err(e) = write_new(&dest_dir, &err_name, &format!("{msg}\n")) {
                    tracing::error!(error = %e, file = %f.display(), "cannot write the .error file");
                }
            }
            Ok(id) => tracing::info!(file = %f.display(), target_set = %id, "target set queued"),
        }
    }
}

/// Moves `from` into `dir` as `name`, or `name.1`, `name.2`, ... when taken:
/// `link` fails instead of replacing an existing name, so nothing earlier is
/// overwritten. Falls back to a checked rename where hard links do not work
/// (and for a FIFO or socket, which link like any other entry).
fn move_unique(from: &Path, dir: &Path, name: &std::ffi::OsStr) -> std::io::Result<PathBuf> {
    for n in 0..10_000u32 {
        let mut candidate = name.to_os_string();
        if n > 0 {
            candidate.push(format!(".{n}"));
        }
        let dest = dir.join(&candidate);
        let mut err_name = candidate.clone();
        err_name.push(".error");
        if dir.join(&err_name).symlink_metadata().is_ok() {
            continue;
        }
        match std::fs::hard_link(from, &dest) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(dest);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                if dest.symlink_metadata().is_ok() {
                    continue;
                }
                std::fs::rename(from, &dest)?;
                return Ok(dest);
            }
        }
    }
    Err(std::io::Error::other(format!(
        "{}: 10,000 files named {} already; clear it out",
        dir.display(),
        name.to_string_lossy()
    )))
}

/// Writes a new file (never replacing one), readable by its owner only:
/// error texts quote target files, which may be private.
fn write_new(dir: &Path, name: &std::ffi::OsStr, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))?;
    f.write_all(text.as_bytes())
}
