//! The log's integrity at the edges of every verb: checkpoints written after
//! each step, and the fail-closed start-up check before anything trades.
//!
//! Start-up (`keel cycle`, each tenure of `keel run`) verifies, before the
//! worker may send anything:
//!
//! - the chain, every row, under the key policy (keyed or SHA-256);
//! - every projection table, against a replay of the log: of the rows
//!   after the account's verified state when there is one (a sealed file
//!   beside the checkpoints, carried forward at every checkpoint, see
//!   `keel_store::VerifiedState`), else of the whole log;
//! - the anchor: the log extends the newest checkpoint in the witness;
//! - the broker as a witness: no order at the broker carries keel's
//!   client-order-id prefix unless the log knows it.
//!
//! Any failure: the kill switch is engaged with the reason (so `keel status`
//! and the dashboard show it, and it stays engaged until an operator who
//! has looked releases it), nothing is sent, and the verb exits 1.

use crate::commands::Env;
use crate::error::CliError;
use crate::stores::Backend;
use anyhow::Context;
use keel_domain::KillSource;
use keel_store::{grouped, AuditKey, Checkpoint, LogReport, Store, VerifiedState, Witness};
use keel_worker::Worker;

/// Prefix of every client order id keel builds (`keel_domain::client_order_id`).
const CLIENT_ORDER_ID_PREFIX: &str = "k-";

/// Rows a checkpoint carries the verified state over at most; a longer
/// stretch is left to the next start-up's verification.
const MAX_CARRY_ROWS: u64 = 200_000;

/// Writes a checkpoint of the current head to the account's witnesses. A
/// failing witness command is a warning (the file is the witness read back);
/// a file that cannot be written is an error. The verified state, if any, is
/// carried forward to the head first (best effort: if it cannot be, the next
/// start-up replays more of the log).
pub async fn checkpoint(env: &Env, store: &dyn Store, key: Option<&AuditKey>) -> Result<(), CliError> {
    let (seq, head) = store.audit_head().await.context("reading the audit head")?;
    if seq == 0 {
        return Ok(());
    }
    let witness = env.cfg.audit.witness(&env.cfg.data_dir);
    if let Err(why) = carry_state(&witness, store, key, &env.cfg.account_id, seq).await {
        tracing::warn!(account = %env.cfg.account_id, why = %why, "verified state not carried forward; the next start-up replays from the older state");
    }
    let cp = Checkpoint::new(key, &env.cfg.account_id, seq, &head, env.clock.now());
    match witness.append(&cp).context("writing the audit checkpoint")? {
        None => {}
        Some(w) => tracing::warn!(account = %env.cfg.account_id, warning = %w, "audit checkpoint"),
    }
    Ok(())
}

/// Carries the account's verified state over the rows appended since it,
/// up to `head_seq`.
async fn carry_state(
    witness: &Witness,
    store: &dyn Store,
    key: Option<&AuditKey>,
    account: &str,
    head_seq: u64,
) -> Result<(), String> {
    if key.is_none() {
        return Ok(());
    }
    let Some(mut state) = witness.load_state(key, account)? else {
        return Ok(());
    };
    if state.seq >= head_seq {
        return Ok(());
    }
    if head_seq - state.seq > MAX_CARRY_ROWS {
        return Err(format!(
            "{} rows since the state; too many to carry here",
            grouped(head_seq - state.seq)
        ));
    }
    while state.seq < head_seq {
        let rows = store
            .audit_page(state.seq, 5_000)
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        state = state.continue_with(key, &rows)?;
    }
    witness.save_state(key, account, &state)
}

/// The account's verified state, when it has a usable one (a file that
/// cannot be used is a warning: the whole log is replayed instead).
fn verified_state(env: &Env, key: Option<&AuditKey>) -> Option<VerifiedState> {
    let witness = env.cfg.audit.witness(&env.cfg.data_dir);
    match witness.load_state(key, &env.cfg.account_id) {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(account = %env.cfg.account_id, why = %why, "verified state not used; replaying the whole log");
            None
        }
    }
}

/// The newest checkpoint of the account (a witness that cannot be read or
/// holds a forged line is an error: it cannot vouch for anything).
pub fn newest_checkpoint(env: &Env, key: Option<&AuditKey>) -> Result<Option<Checkpoint>, CliError> {
    let witness = env.cfg.audit.witness(&env.cfg.data_dir);
    Ok(witness
        .newest(key, &env.cfg.account_id)
        .context("reading the audit checkpoints")?)
}

/// How much of the log [`verify`] replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// All of it (`keel audit verify`): a difference is named row by row.
    Whole,
    /// From the account's verified state when it fits (start-up), which is
    /// then renewed; a difference still sends it back to the whole log.
    FromState,
}

/// Verifies the log and returns the report plus every failure as a line.
/// `strict_tail`: rows after the newest checkpoint fail an unkeyed log
/// (`keel audit verify`); at start-up they are the normal leftovers of a
/// crash, except a kill-switch release, which an operator re-issues.
pub async fn verify(
    env: &Env,
    backend: &Backend,
    strict_tail: bool,
    replay: Replay,
) -> Result<(LogReport, Vec<String>), CliError> {
    let key = backend.audit_key();
    let cp = newest_checkpoint(env, key)?;
    // Only a keyed log uses (or seals) a verified state: without a key its
    // seal is a plain hash anyone who can write the witness directory could
    // recompute over edited tables, so an unkeyed start-up replays it all.
    let at_startup = replay == Replay::FromState;
    let replay = match key {
        Some(_) => replay,
        None => Replay::Whole,
    };
    let state = match replay {
        Replay::Whole => None,
        Replay::FromState => verified_state(env, key),
    };
    let (report, proven) = backend
        .verify_log_from(cp.as_ref(), state.as_ref())
        .await
        .context("reading the audit log")?;
    if at_startup {
        match report.replayed_from {
            1 => {
                tracing::info!(account = %env.cfg.account_id, events = report.events, "audit log verified: chain checked, whole log replayed")
            }
            from => {
                tracing::info!(account = %env.cfg.account_id, events = report.events, replayed_from = from, "audit log verified: chain checked, projections proven from the verified state and the rows after it")
            }
        }
    }
    if let (Replay::FromState, Some(proven), true) = (replay, &proven, report.is_ok()) {
        let witness = env.cfg.audit.witness(&env.cfg.data_dir);
        if let Err(why) = witness.save_state(key, &env.cfg.account_id, proven) {
            tracing::warn!(account = %env.cfg.account_id, why = %why, "verified state not saved; the next start-up replays the whole log");
        }
    }
    let mut failures = report.failures();
    if key.is_none() && report.chain.is_none() {
        if let Some((from, to)) = report.unanchored {
            // With no checkpoint at all (a log from before checkpoints, or an
            // exported copy) there is nothing to extend; verify says so instead.
            if strict_tail && report.checkpoint.is_some() {
                failures.push(format!(
                    "rows {}..{} come after the newest checkpoint{}; in an unkeyed log they cannot be \
                     told from appended forgeries (configure an audit key, or run a cycle to checkpoint them)",
                    grouped(from),
                    grouped(to),
                    report
                        .checkpoint
                        .as_ref()
                        .map(|c| format!(" (of {}, at {})", c.at, grouped(c.seq)))
                        .unwrap_or_default()
                ));
            } else if report.unanchored_release {
                failures.push(format!(
                    "a kill-switch release at or after row {} is not anchored by any checkpoint; in an \
                     unkeyed log it cannot be told from a forged one (run `keel resume` again)",
                    grouped(from)
                ));
            }
        }
    }
    Ok((report, failures))
}

/// The fail-closed start-up check (see the module docs). `Err` means the
/// worker must not trade; the kill switch is engaged with the reason.
pub async fn startup(env: &Env, backend: &Backend, worker: &Worker) -> Result<(), CliError> {
    let (_, mut failures) = verify(env, backend, false, Replay::FromState).await?;
    match broker_orders_unknown_to_log(worker).await {
        Ok(unknown) if !unknown.is_empty() => failures.push(format!(
            "the broker holds {} order(s) with keel's client-order-id prefix that the log does not \
             know ({}): the log lost history",
            unknown.len(),
            unknown.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )),
        Ok(_) => {}
        // Not evidence of anything (a 429 storm, a venue restart): refuse to
        // trade now and say so, but do not latch the kill switch, which
        // would need a person for a venue hiccup. The next start asks again.
        Err(e) if failures.is_empty() => {
            tracing::error!(account = %env.cfg.account_id, error = %e, "start-up check: the broker could not be asked for its orders; not trading");
            return Err(CliError::Runtime(anyhow::anyhow!(
                "start-up verification incomplete: the broker could not be asked for its orders ({e}); \
                 nothing sent, nothing changed; try again when the venue answers"
            )));
        }
        Err(e) => failures.push(format!("the broker could not be asked for its orders: {e}")),
    }
    if failures.is_empty() {
        return Ok(());
    }
    let reason = format!("start-up verification failed: {}", failures[0]);
    let already = worker.store().kill_switch().await.ok().flatten();
    if already.is_none() {
        if let Err(e) = worker.engage_kill(&reason, KillSource::Automatic).await {
            tracing::error!(error = %e, "engaging the kill switch after a failed start-up check");
        }
    }
    tracing::error!(account = %env.cfg.account_id, failures = ?failures, "start-up verification failed; not trading");
    let more = match failures.len() {
        0..=3 => String::new(),
        n => format!("; and {} more", n - 3),
    };
    Err(CliError::Runtime(anyhow::anyhow!(
        "{}{more}; kill switch engaged, no orders sent (run `keel audit verify` for the details)",
        failures.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
    )))
}

/// Client order ids the broker reports (open orders) with keel's prefix
/// that the log has no order for.
async fn broker_orders_unknown_to_log(worker: &Worker) -> Result<Vec<String>, String> {
    let open = worker.broker().open_orders().await.map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    for o in open {
        let id = o.client_order_id;
        if !id.starts_with(CLIENT_ORDER_ID_PREFIX) {
            continue;
        }
        match worker.store().order(&id).await {
            Ok(Some(_)) => {}
            Ok(None) => unknown.push(id),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(unknown)
}
