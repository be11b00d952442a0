//! Proving the state from the log: the chain, the projections and the anchors.
//!
//! [`SqlStore::verify_log`] reads the log once, in `seq` order, and
//!
//! 1. checks the chain (no gap, each row links to the previous row's hash,
//!    each hash verifies under the key policy of [`crate::chain`]),
//! 2. replays every event into memory from nothing and compares the result,
//!    table by table and row by row, with the projection tables the worker
//!    reads (kill switch, cash, positions, orders — open orders and
//!    cooldowns are queries over these —, fills, target-set status, …),
//!    naming table, key, column and both values on a difference, and
//! 3. checks the log extends the newest checkpoint in the witness (so a
//!    truncated, emptied or restored-from-backup log is caught).
//!
//! The lease table is not a projection: it is coordination state timed by
//! the database's clock, written by every holder, and the fencing token
//! (not the log) is what protects it.

use crate::anchor::Checkpoint;
use crate::apply::Replay;
use crate::chain::{check_row_hash, is_keyed, AuditKey};
use crate::conn::{exec, fetch, fetch_one, Conn, Val};
use crate::engine::{audit_row, read_head, seq_i64, SqlStore};
use crate::error::StoreError;
use crate::rows::{AuditRow, KillState};
use crate::GENESIS_HASH;
use keel_domain::Event;
use serde::Serialize;
use sqlx::Database;

/// Rows read per round trip.
const PAGE: i64 = 5_000;

/// Differences reported per table at most (the first ones name the fault).
const MAX_DIFFS: usize = 10;

/// What [`SqlStore::verify_log`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// Rows read.
    pub events: u64,
    /// The head: `(seq, hash)`.
    pub head: (u64, String),
    /// Whether the rows are keyed (HMAC) rather than plain SHA-256.
    pub keyed: bool,
    /// The first row at which the chain breaks, and why.
    pub chain: Option<(u64, String)>,
    /// Projection rows that differ from what the log gives (`table key: ...`).
    pub projections: Vec<String>,
    /// Why the log does not extend the newest checkpoint.
    pub anchor: Option<String>,
    /// The newest checkpoint checked against.
    pub checkpoint: Option<Checkpoint>,
    /// Rows after the newest checkpoint: `(first, last)` seq. Not yet
    /// anchored; in an unkeyed log nothing distinguishes them from appended forgeries.
    pub unanchored: Option<(u64, u64)>,
    /// Whether a kill-switch release is among the unanchored rows.
    pub unanchored_release: bool,
}

impl LogReport {
    /// True when chain, projections and anchor all check out.
    pub fn is_ok(&self) -> bool {
        self.chain.is_none() && self.projections.is_empty() && self.anchor.is_none()
    }

    /// Every failure, one line each (empty when ok).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((seq, why)) = &self.chain {
            out.push(format!("audit chain broken at sequence {seq}: {why}"));
        }
        if let Some(a) = &self.anchor {
            out.push(format!("anchor: {a}"));
        }
        for p in &self.projections {
            out.push(format!("projection not proven by the log: {p}"));
        }
        out
    }
}

/// Thousands separators for sequence numbers in messages ("9,012").
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    /// Verifies chain, projections and (given `checkpoint`, the newest one)
    /// the anchor, reading the log once. Only a database error is `Err`;
    /// every finding is in the report.
    pub async fn verify_log(&self, checkpoint: Option<&Checkpoint>) -> Result<LogReport, StoreError> {
        // Two stages so that reading rows and checking them overlap: this
        // task fetches pages, a thread hashes, decodes and replays them. If
        // the thread stops at a bad row it drops its end and reading stops.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<AuditRow, String>>>(4);
        let key = self.key.clone();
        let cp_seq = checkpoint.map(|c| c.seq);
        let scanner = std::thread::Builder::new()
            .name("keel-verify".into())
            .spawn(move || scan(key.as_ref(), cp_seq, rx))
            .map_err(|e| StoreError::Refused {
                event_id: "-".into(),
                why: format!("cannot start the verification thread: {e}"),
            })?;
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let mut after = 0i64;
        let read: Result<(), StoreError> = async {
            loop {
                let rows = fetch(
                    &mut *c,
                    "audit",
                    "verifying the audit log",
                    "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[Val::i(after), Val::i(PAGE)],
                )
                .await?;
                let Some(last) = rows.last() else { break };
                after = last.int(0, "seq")?;
                let page = rows
                    .iter()
                    .map(|r| audit_row(r).map_err(|e| e.to_string()))
                    .collect();
                if tx.send(page).is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        drop(c);
        let scanned = scanner.join().map_err(|_| StoreError::Refused {
            event_id: "-".into(),
            why: "the verification thread panicked".into(),
        })?;
        read?;
        let Scan {
            mut report,
            replay,
            expected,
            prev,
            checkpoint_row,
        } = scanned;
        report.head = (expected - 1, prev);
        if let Some(cp) = checkpoint {
            report.checkpoint = Some(cp.clone());
            let (head_seq, _) = &report.head;
            if report.chain.is_none() && *head_seq < cp.seq {
                report.anchor = Some(format!(
                    "the log ends at {}; the checkpoint of {} says {} (rows removed from the end, \
                     the log emptied, or an old backup restored)",
                    grouped(*head_seq),
                    cp.at,
                    grouped(cp.seq)
                ));
            } else if let Some(h) = &checkpoint_row {
                if h != &cp.head {
                    report.anchor = Some(format!(
                        "row {} has hash {h}; the checkpoint of {} says {} (the log was rewritten \
                         or an old backup restored)",
                        grouped(cp.seq),
                        cp.at,
                        cp.head
                    ));
                }
            }
            if report.chain.is_none() && *head_seq > cp.seq {
                report.unanchored = Some((cp.seq + 1, *head_seq));
            }
        } else if report.events > 0 {
            report.unanchored = Some((1, report.head.0));
        }
        if let Some((from, _)) = report.unanchored {
            report.unanchored_release = self.release_after(from).await?;
        }
        if report.chain.is_none() {
            report.projections = self.compare_projections(&replay).await?;
        }
        Ok(report)
    }

    /// Whether a kill-switch release was logged at or after `from`.
    async fn release_after(&self, from: u64) -> Result<bool, StoreError> {
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let row = fetch_one(
            &mut *c,
            "audit",
            "looking for kill-switch releases",
            "SELECT seq FROM audit WHERE kind = 'kill_switch_released' AND seq >= $1 LIMIT 1",
            &[Val::i(seq_i64(from)?)],
        )
        .await?;
        Ok(row.is_some())
    }

    /// Differences between the replayed projections and the stored tables.
    async fn compare_projections(&self, replay: &Replay) -> Result<Vec<String>, StoreError> {
        let want = replay.rendered();
        let have = self.dump_projections().await?;
        let mut out = Vec::new();
        for (table, rows) in have {
            let Some(expected) = want.get(table.as_str()) else {
                // A table added to PROJECTION_TABLES without a replay rendering.
                out.push(format!("{table}: no replay rendering; cannot be proven"));
                continue;
            };
            let mut diffs = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for row in &rows {
                let key = row.first().cloned().flatten().unwrap_or_default();
                seen.insert(key.clone());
                match expected.get(&key) {
                    None => diffs.push(format!(
                        "{table} {key}: row exists but the log has no such row ({row:?})"
                    )),
                    Some(e) if e != row => {
                        let cols = crate::verify::columns(&table);
                        for (i, (a, b)) in e.iter().zip(row.iter()).enumerate() {
                            if a != b {
                                let col = cols.get(i).copied().unwrap_or("?");
                                diffs.push(format!(
                                    "{table} {key}: {col} is {} in the table, {} by the log",
                                    show(b),
                                    show(a)
                                ));
                            }
                        }
                        if e.len() != row.len() {
                            diffs.push(format!("{table} {key}: column count differs"));
                        }
                    }
                    Some(_) => {}
                }
            }
            for (key, e) in expected {
                if !seen.contains(key) {
                    diffs.push(format!(
                        "{table} {key}: missing from the table; the log has {e:?}"
                    ));
                }
            }
            let n = diffs.len();
            out.extend(diffs.into_iter().take(MAX_DIFFS));
            if n > MAX_DIFFS {
                out.push(format!("{table}: {} more differences", n - MAX_DIFFS));
            }
        }
        Ok(out)
    }

    /// The kill switch as the log says: the first engagement after the last
    /// release (sticky: a second engagement keeps the first reason). Two
    /// indexed look-ups, so it is cheap at any log length. The engagement
    /// row's own hash is checked, so a row edited without the key still
    /// reads as engaged (fail closed) but with the reason saying so.
    pub(crate) async fn kill_switch_from_log(&self) -> Result<Option<KillState>, StoreError> {
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let released = fetch_one(
            &mut *c,
            "audit",
            "reading the last kill-switch release",
            "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit \
             WHERE kind = 'kill_switch_released' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
        let mut after = 0i64;
        if let Some(r) = released {
            let row = audit_row(&r)?;
            let genuine = check_row_hash(
                self.key.as_ref(),
                &row.hash,
                &row.prev_hash,
                row.seq,
                &row.at,
                &row.kind,
                &row.event_id,
                &row.payload,
            )
            .is_ok()
                && matches!(row.event(), Ok(Event::KillSwitchReleased { .. }));
            if !genuine {
                // A release that does not verify releases nothing.
                return Ok(Some(KillState {
                    reason: format!(
                        "audit row {} (a kill-switch release) does not verify; treated as engaged",
                        row.seq
                    ),
                    source: keel_domain::KillSource::Automatic,
                    at: crate::codec::parse_time(&row.at).unwrap_or_default(),
                }));
            }
            after = seq_i64(row.seq)?;
        }
        let engaged = fetch_one(
            &mut *c,
            "audit",
            "reading the kill-switch engagement",
            "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit \
             WHERE kind = 'kill_switch_engaged' AND seq > $1 ORDER BY seq LIMIT 1",
            &[Val::i(after)],
        )
        .await?;
        let Some(r) = engaged else { return Ok(None) };
        let row = audit_row(&r)?;
        let intact = check_row_hash(
            self.key.as_ref(),
            &row.hash,
            &row.prev_hash,
            row.seq,
            &row.at,
            &row.kind,
            &row.event_id,
            &row.payload,
        );
        match (row.event(), intact) {
            (Ok(Event::KillSwitchEngaged { reason, source, at }), Ok(())) => {
                Ok(Some(KillState { reason, source, at }))
            }
            (ev, _) => Ok(Some(KillState {
                reason: format!(
                    "audit row {} (the kill-switch engagement) does not verify; treated as engaged",
                    row.seq
                ),
                source: keel_domain::KillSource::Automatic,
                at: match ev {
                    Ok(e) => e.at(),
                    Err(_) => crate::codec::parse_time(&row.at).unwrap_or_default(),
                },
            })),
        }
    }

    /// Rewrites every row's hash as keyed (version 2) under the configured
    /// key, in one transaction, after checking the whole unkeyed chain. The
    /// explicit migration from an unkeyed log; the event rows (and so the
    /// projections) are unchanged. Returns the number of rows rewritten.
    pub async fn rekey(&self) -> Result<u64, StoreError> {
        let Some(key) = self.key.clone() else {
            return Err(StoreError::Refused {
                event_id: "-".into(),
                why: "no audit key is configured (KEEL_AUDIT_KEY or [audit] key_file)".into(),
            });
        };
        let mut head = self.head.lock().await;
        let mut tx = self.begin("beginning rekey").await?;
        let mut prev_old = GENESIS_HASH.to_string();
        let mut prev_new = GENESIS_HASH.to_string();
        let mut expected = 1u64;
        let mut after = 0i64;
        loop {
            let rows = fetch(
                &mut *tx,
                "audit",
                "reading the audit log",
                "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[Val::i(after), Val::i(PAGE)],
            )
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.int(0, "seq")?;
            for r in &rows {
                let row = audit_row(r)?;
                let refuse = |why: String| StoreError::Refused {
                    event_id: row.event_id.clone(),
                    why: format!("rekey stopped at audit row {}: {why}; nothing changed", row.seq),
                };
                if row.seq != expected || row.prev_hash != prev_old {
                    return Err(refuse("the chain is broken here (run keel audit verify)".into()));
                }
                if is_keyed(&row.hash) {
                    return Err(refuse("the row is already keyed".into()));
                }
                check_row_hash(
                    None,
                    &row.hash,
                    &row.prev_hash,
                    row.seq,
                    &row.at,
                    &row.kind,
                    &row.event_id,
                    &row.payload,
                )
                .map_err(&refuse)?;
                let new = key.row_hash(
                    &prev_new,
                    row.seq,
                    &row.at,
                    &row.kind,
                    &row.event_id,
                    &row.payload,
                );
                exec(
                    &mut *tx,
                    "rekeying an audit row",
                    "UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3",
                    &[Val::t(&prev_new), Val::t(&new), Val::i(seq_i64(row.seq)?)],
                )
                .await?;
                prev_old = row.hash;
                prev_new = new;
                expected += 1;
            }
        }
        tx.commit().await.map_err(StoreError::db("committing rekey"))?;
        *head = read_head(&self.pool).await?;
        Ok(expected - 1)
    }
}

/// What the scanning thread found.
struct Scan {
    report: LogReport,
    replay: Replay,
    /// The next seq expected (head + 1 when the chain held).
    expected: u64,
    /// The last good row's hash.
    prev: String,
    /// The hash of the row at the checkpoint's seq, when reached.
    checkpoint_row: Option<String>,
}

/// Checks pages of rows in order: seq continuity, links, hashes under the
/// key policy, payload against kind and id, and replays each event.
fn scan(
    key: Option<&AuditKey>,
    cp_seq: Option<u64>,
    rx: std::sync::mpsc::Receiver<Vec<Result<AuditRow, String>>>,
) -> Scan {
    let mut s = Scan {
        report: LogReport::default(),
        replay: Replay::default(),
        expected: 1,
        prev: GENESIS_HASH.to_string(),
        checkpoint_row: None,
    };
    for page in rx {
        for row in page {
            s.report.events += 1;
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    s.report.chain = Some((s.expected, format!("unreadable row: {e}")));
                    return s;
                }
            };
            let expected = s.expected;
            let fail = if row.seq != expected {
                Some(format!(
                    "seq gap: expected {expected}, found {} (row {expected} was removed or renumbered)",
                    row.seq
                ))
            } else if row.prev_hash != s.prev {
                Some(format!(
                    "prev_hash mismatch: row links to {}, previous row's hash is {} \
                     (rows reordered, removed or replaced)",
                    row.prev_hash, s.prev
                ))
            } else if let Err(why) = check_row_hash(
                key,
                &row.hash,
                &row.prev_hash,
                row.seq,
                &row.at,
                &row.kind,
                &row.event_id,
                &row.payload,
            ) {
                Some(why)
            } else {
                match row.event() {
                    Err(e) => Some(format!("payload is not an event: {e}")),
                    Ok(ev) if ev.kind() != row.kind || ev.event_id() != row.event_id => Some(format!(
                        "payload is a {} event {:?}, the row says {} {:?}",
                        ev.kind(),
                        ev.event_id(),
                        row.kind,
                        row.event_id
                    )),
                    Ok(ev) => s
                        .replay
                        .apply(&ev, &row.event_id)
                        .err()
                        .map(|e| format!("replaying the event failed: {e}")),
                }
            };
            if let Some(why) = fail {
                s.report.chain = Some((expected, why));
                return s;
            }
            if s.report.events == 1 {
                s.report.keyed = is_keyed(&row.hash);
            }
            if cp_seq == Some(row.seq) {
                s.checkpoint_row = Some(row.hash.clone());
            }
            s.expected += 1;
            s.prev = row.hash;
        }
    }
    s
}

/// The column names of a projection table, for messages.
pub(crate) fn columns(table: &str) -> &'static [&'static str] {
    use crate::tables::*;
    match table {
        "account" => ACCOUNT_COLS,
        "cash" => CASH_COLS,
        "target_sets" => TARGET_SET_COLS,
        "cycles" => CYCLE_COLS,
        "guard_decisions" => GUARD_COLS,
        "orders" => ORDER_COLS,
        "fills" => FILL_COLS,
        "positions" => POSITION_COLS,
        "kill_switch" => KILL_COLS,
        "reconciliations" => RECON_COLS,
        "eod_snapshots" => EOD_COLS,
        _ => &[],
    }
}

/// A rendered value for a message (long JSON shortened).
fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) if s.chars().count() > 80 => format!("{:?}…", s.chars().take(80).collect::<String>()),
        Some(s) => format!("{s:?}"),
    }
}

// Keeps PROJECTION_TABLES and the replay rendering in step.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::PROJECTION_TABLES;

    #[test]
    fn every_projection_table_has_a_rendering_and_columns() {
        let r = Replay::default().rendered();
        for t in PROJECTION_TABLES {
            assert!(r.contains_key(t), "{t} has no replay rendering");
            assert!(!columns(t).is_empty(), "{t} has no column list");
        }
    }

    #[test]
    fn grouping() {
        assert_eq!(grouped(9012), "9,012");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(12), "12");
    }
}
