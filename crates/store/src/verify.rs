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
use crate::apply::{Replay, PROJECTION_TABLES};
use crate::chain::{check_row_hash, is_keyed, AuditKey};
use crate::conn::{exec, fetch, fetch_one, Conn, Val};
use crate::engine::{audit_row, read_head, seq_i64, SqlStore};
use crate::error::StoreError;
use crate::raw::{Col, RawDb};
use crate::rows::{AuditRow, KillState};
use crate::state::{Digests, TableDigest, VerifiedState};
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
    /// The first row whose event was replayed: 1 for a full replay, more
    /// when the projections were proven from a verified state.
    pub replayed_from: u64,
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
    /// the anchor, replaying the whole log. Only a database error is `Err`;
    /// every finding is in the report.
    pub async fn verify_log(&self, checkpoint: Option<&Checkpoint>) -> Result<LogReport, StoreError> {
        Ok(self.verify_log_from(checkpoint, None).await?.0)
    }

    /// Like [`SqlStore::verify_log`], but given a verified state (see
    /// [`crate::state`]) the projections are proven by replaying only the
    /// rows after it; the chain is still checked row by row from the first.
    /// When the state cannot be used (it does not match this log, an event
    /// needs a row it does not hold, or the tables differ) the whole log is
    /// replayed, so the report is the same either way; its `replayed_from`
    /// says which was done. Returns the state the log now proves, when chain
    /// and projections check out, for the next start-up.
    pub async fn verify_log_from(
        &self,
        checkpoint: Option<&Checkpoint>,
        state: Option<&VerifiedState>,
    ) -> Result<(LogReport, Option<VerifiedState>), StoreError> {
        let cp_seq = checkpoint.map(|c| c.seq);
        let state = state.filter(|s| s.usable_with(self.key.as_ref()));
        let mut proven = None;
        let mut scanned = None;
        if let Some(st) = state {
            let s = self.scan(Some(st.seq), cp_seq, true).await?;
            if s.chain.fault.is_none()
                && !s.chain.tail_overflow
                && s.chain.state_row.as_deref() == Some(st.head.as_str())
            {
                if let Ok(next) = st.advance(self.key.as_ref(), &s.chain.tail) {
                    if &s.tables == next.digests() {
                        proven = Some(next);
                        scanned = Some((s, st.seq + 1));
                    }
                }
            } else if s.chain.fault.is_some() {
                // A broken chain is reported as found; a full replay would stop at the same row.
                scanned = Some((s, st.seq + 1));
            }
        }
        let (s, replayed_from) = match scanned {
            Some(done) => done,
            None => (self.scan(None, cp_seq, true).await?, 1),
        };
        let Scanned { chain, tables } = s;
        let mut report = LogReport {
            events: chain.events,
            head: (chain.expected - 1, chain.prev.clone()),
            keyed: chain.keyed,
            chain: chain.fault.clone(),
            replayed_from,
            ..LogReport::default()
        };
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
            } else if let Some(h) = &chain.checkpoint_row {
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
        if report.chain.is_some() {
            return Ok((report, None));
        }
        if proven.is_none() {
            let replay = chain.replay.unwrap_or_default();
            let want = crate::state::replay_digests(self.key.as_ref(), &replay);
            let differing: Vec<&str> = PROJECTION_TABLES
                .iter()
                .copied()
                .filter(|t| want.get(*t) != tables.get(*t))
                .collect();
            if differing.is_empty() {
                proven = Some(VerifiedState::of_replay(
                    self.key.as_ref(),
                    &replay,
                    want,
                    report.head.0,
                    &report.head.1,
                ));
            } else {
                report.projections = self.compare_projections(&replay, &differing).await?;
                if report.projections.is_empty() {
                    // The digests differ but the rows compare equal: a column
                    // of the wrong storage type (text where an integer belongs).
                    for t in &differing {
                        report.projections.push(format!(
                            "{t}: a value is stored with the wrong type (the digests differ, the text does not)"
                        ));
                    }
                }
            }
            // A million-event replay is millions of allocations; freeing
            // them is a tenth of the verification, and nobody waits for it.
            let _ = std::thread::Builder::new()
                .name("keel-verify-free".into())
                .spawn(move || drop(replay));
        }
        Ok((report, proven))
    }

    /// The chain alone (for `Store::verify_chain`): rows read, the next seq
    /// expected, and the first bad row with why.
    pub(crate) async fn scan_chain(&self) -> Result<(u64, u64, Option<(u64, String)>), StoreError> {
        // A state "at" the largest seq: nothing is replayed or kept.
        let s = self.scan(Some(u64::MAX), None, false).await?;
        Ok((s.chain.events, s.chain.expected, s.chain.fault))
    }

    /// One pass over the log and the projection tables: the chain checked
    /// row by row; with `from_state` (a verified state's seq) the rows after
    /// it kept for a partial replay, else every event replayed; and every
    /// projection table digested. A store file is read through one raw
    /// read-only connection in one read transaction, so log and tables are
    /// the same snapshot; other stores through sqlx.
    async fn scan(
        &self,
        from_state: Option<u64>,
        cp_seq: Option<u64>,
        tables: bool,
    ) -> Result<Scanned, StoreError> {
        let key = self.key.clone();
        let refused = |why: String| StoreError::Refused {
            event_id: "-".into(),
            why,
        };
        if let Some(file) = self.file.clone() {
            let job = tokio::task::spawn_blocking(move || scan_file(&file, key, from_state, cp_seq, tables));
            return job
                .await
                .map_err(|e| refused(format!("the verification task failed: {e}")))?
                .map_err(|e| refused(format!("reading the store file to verify it: {e}")));
        }
        // Two stages so that reading rows and checking them overlap: this
        // task fetches pages, a thread checks and replays them. If the thread
        // stops at a bad row it drops its end and reading stops.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Page>(4);
        let checker = std::thread::Builder::new()
            .name("keel-verify".into())
            .spawn(move || check_pages(key, from_state, cp_seq, rx))
            .map_err(|e| refused(format!("cannot start the verification thread: {e}")))?;
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
                let mut page = Page::default();
                for r in &rows {
                    match audit_row(r) {
                        Ok(row) => page.push_row(&row),
                        Err(e) => page.push_error(r.int(0, "seq").unwrap_or(after), e.to_string()),
                    }
                }
                if tx.send(page).is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        drop(c);
        let chain = checker
            .join()
            .map_err(|_| refused("the verification thread panicked".into()))?;
        read?;
        let digest_tables = tables;
        let mut tables = Digests::new();
        let dump = match digest_tables {
            true => self.dump_projection_vals().await?,
            false => Vec::new(),
        };
        for (table, rows) in dump {
            let d: &mut TableDigest = tables.entry(table.clone()).or_default();
            for vals in rows {
                d.add(&crate::state::vals_hash(self.key.as_ref(), &table, &vals));
            }
        }
        Ok(Scanned { chain, tables })
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

    /// Differences between the replayed projections and the stored tables
    /// named in `only`.
    async fn compare_projections(&self, replay: &Replay, only: &[&str]) -> Result<Vec<String>, StoreError> {
        let want = replay.rendered();
        let have = self.dump_projections().await?;
        let mut out = Vec::new();
        for (table, rows) in have {
            if !only.contains(&table.as_str()) {
                continue;
            }
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

/// What one pass over log and tables found.
struct Scanned {
    chain: ChainCheck,
    /// Every projection table's digest as stored.
    tables: Digests,
}

/// Audit rows read in one go, their text fields in one buffer (a million
/// rows as separate strings cost more in the allocator than in hashing).
#[derive(Default)]
struct Page {
    buf: String,
    rows: Vec<PageRow>,
}

/// One row of a [`Page`]: its seq and the byte ranges of at, kind,
/// event_id, payload, prev_hash and hash in the buffer; or why it could not be read.
enum PageRow {
    Ok(u64, [(usize, usize); 6]),
    Unreadable(String),
}

impl Page {
    fn push_fields(&mut self, seq: u64, fields: [&str; 6]) {
        let mut at = [(0, 0); 6];
        for (i, f) in fields.iter().enumerate() {
            let start = self.buf.len();
            self.buf.push_str(f);
            at[i] = (start, self.buf.len());
        }
        self.rows.push(PageRow::Ok(seq, at));
    }

    fn push_row(&mut self, r: &AuditRow) {
        self.push_fields(
            r.seq,
            [&r.at, &r.kind, &r.event_id, &r.payload, &r.prev_hash, &r.hash],
        );
    }

    fn push_error(&mut self, seq: i64, why: String) {
        self.rows
            .push(PageRow::Unreadable(format!("row with seq {seq}: {why}")));
    }

    fn field(&self, r: &(usize, usize)) -> &str {
        self.buf.get(r.0..r.1).unwrap_or_default()
    }
}

/// Checks rows in order: seq continuity, links, hashes under the key
/// policy, and (in a full replay) payload against kind and id, replaying
/// each event.
pub(crate) struct ChainCheck {
    key: Option<AuditKey>,
    /// A partial replay's starting seq: rows after it are kept in `tail`.
    from_state: Option<u64>,
    cp_seq: Option<u64>,
    events: u64,
    keyed: bool,
    /// The next seq expected (head + 1 when the chain held).
    expected: u64,
    /// The last good row's hash.
    prev: String,
    fault: Option<(u64, String)>,
    /// The hash of the row at the checkpoint's seq, when reached.
    checkpoint_row: Option<String>,
    /// The hash of the row at the state's seq, when reached.
    state_row: Option<String>,
    /// A full replay (no state).
    replay: Option<Replay>,
    /// A partial replay's rows after the state.
    tail: Vec<AuditRow>,
    /// More than [`MAX_TAIL`] rows follow the state.
    tail_overflow: bool,
}

/// Rows after a verified state held for its partial replay at most (a
/// bound on memory; a state that far behind is not used).
const MAX_TAIL: usize = 200_000;

impl ChainCheck {
    fn new(key: Option<AuditKey>, from_state: Option<u64>, cp_seq: Option<u64>) -> Self {
        Self {
            key,
            from_state,
            cp_seq,
            events: 0,
            keyed: false,
            expected: 1,
            prev: GENESIS_HASH.to_string(),
            fault: None,
            checkpoint_row: None,
            state_row: if from_state == Some(0) {
                Some(GENESIS_HASH.to_string())
            } else {
                None
            },
            replay: None,
            tail: Vec::new(),
            tail_overflow: false,
        }
    }

    /// A check continuing the chain after row `seq` with hash `head` (a
    /// verified state's), keeping nothing.
    pub(crate) fn continuing(key: Option<AuditKey>, seq: u64, head: &str) -> Self {
        let mut c = Self::new(key, Some(u64::MAX), None);
        c.expected = seq + 1;
        c.prev = head.to_string();
        c
    }

    /// Checks the next row of the log; `Err` says why it breaks the chain.
    pub(crate) fn check(&mut self, r: &AuditRow) -> Result<(), String> {
        let fields = [&r.at, &r.kind, &r.event_id, &r.payload, &r.prev_hash, &r.hash].map(String::as_str);
        if self.accept(r.seq, fields) {
            return Ok(());
        }
        let (seq, why) = self.fault.clone().unwrap_or_default();
        Err(format!("row {seq}: {why}"))
    }

    /// Checks a page; `Err(i)` once the chain broke at its row `i` (stop reading).
    fn page(&mut self, page: &Page) -> Result<(), usize> {
        for (i, row) in page.rows.iter().enumerate() {
            let ok = match row {
                PageRow::Ok(seq, f) => self.accept(*seq, f.map(|r| page.field(&r))),
                PageRow::Unreadable(e) => self.unreadable(e),
            };
            if !ok {
                return Err(i);
            }
        }
        Ok(())
    }

    /// A row that could not be read breaks the chain where it stands.
    fn unreadable(&mut self, why: &str) -> bool {
        self.events += 1;
        self.fault = Some((self.expected, format!("unreadable row: {why}")));
        false
    }

    /// Checks the next row (`at, kind, event_id, payload, prev_hash, hash`);
    /// `false` once the chain broke (stop reading).
    fn accept(&mut self, seq: u64, f: [&str; 6]) -> bool {
        self.events += 1;
        let [at, kind, event_id, payload, prev_hash, hash] = f;
        if let Some(why) = self.row(seq, at, kind, event_id, payload, prev_hash, hash) {
            self.fault = Some((self.expected, why));
            return false;
        }
        if self.events == 1 {
            self.keyed = is_keyed(hash);
        }
        if self.cp_seq == Some(seq) {
            self.checkpoint_row = Some(hash.to_string());
        }
        if self.from_state == Some(seq) {
            self.state_row = Some(hash.to_string());
        }
        self.expected += 1;
        self.prev.clear();
        self.prev.push_str(hash);
        true
    }

    /// Why one row does not check out, if it does not.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        seq: u64,
        at: &str,
        kind: &str,
        event_id: &str,
        payload: &str,
        prev_hash: &str,
        hash: &str,
    ) -> Option<String> {
        let expected = self.expected;
        if seq != expected {
            return Some(format!(
                "seq gap: expected {expected}, found {seq} (row {expected} was removed or renumbered)"
            ));
        }
        if prev_hash != self.prev {
            return Some(format!(
                "prev_hash mismatch: row links to {prev_hash}, previous row's hash is {} \
                 (rows reordered, removed or replaced)",
                self.prev
            ));
        }
        if let Err(why) = check_row_hash(
            self.key.as_ref(),
            hash,
            prev_hash,
            seq,
            at,
            kind,
            event_id,
            payload,
        ) {
            return Some(why);
        }
        if self.from_state.is_some_and(|s| seq > s) {
            if self.tail.len() >= MAX_TAIL {
                // Too far behind to be worth carrying: the caller replays it all.
                self.tail_overflow = true;
                return None;
            }
            self.tail.push(AuditRow {
                seq,
                at: at.to_string(),
                kind: kind.to_string(),
                event_id: event_id.to_string(),
                payload: payload.to_string(),
                prev_hash: prev_hash.to_string(),
                hash: hash.to_string(),
            });
        }
        None
    }
}

/// Checks pages as they arrive (see [`ChainCheck`]). In a full replay,
/// decoding and applying the events, the costliest step, runs on a thread
/// of its own, a page behind the chain check; the first bad row either
/// finds is the one reported.
fn check_pages(
    key: Option<AuditKey>,
    from_state: Option<u64>,
    cp_seq: Option<u64>,
    rx: std::sync::mpsc::Receiver<Page>,
) -> ChainCheck {
    let mut chain = ChainCheck::new(key, from_state, cp_seq);
    if from_state.is_some() {
        for page in rx {
            if chain.page(&page).is_err() {
                break;
            }
        }
        return chain;
    }
    let (tx, pages) = std::sync::mpsc::sync_channel::<(Page, usize)>(4);
    let stage = std::thread::scope(|s| {
        let replayer = s.spawn(move || replay_pages(pages));
        for page in rx {
            let checked = chain.page(&page);
            let good = match checked {
                Ok(()) => page.rows.len(),
                Err(i) => i,
            };
            if tx.send((page, good)).is_err() || checked.is_err() {
                break;
            }
        }
        drop(tx);
        replayer.join().ok()
    });
    chain.merge(stage);
    chain
}

impl ChainCheck {
    /// Takes in the replay half of a full verification.
    fn merge(&mut self, stage: Option<ReplayStage>) {
        let Some(stage) = stage else {
            self.fault = Some((1, "the replay thread panicked".into()));
            return;
        };
        if let Some((seq, why)) = stage.fault {
            // Rows reach the replay only once their chain checked out, so its
            // fault is at an earlier row than any the chain check found.
            self.fault = Some((seq, why));
            self.events = seq;
            self.expected = seq;
            self.prev = stage.last_hash;
        }
        self.replay = Some(stage.replay);
    }
}

/// The replay half of a full verification.
struct ReplayStage {
    replay: Replay,
    fault: Option<(u64, String)>,
    /// The hash of the last row replayed.
    last_hash: String,
}

/// Replays the first `good` rows of each page, in order, on two threads:
/// one decodes the payloads (the costlier half), the other applies the
/// events, stopping at the first row that is not the event it names or
/// does not apply.
fn replay_pages(pages: std::sync::mpsc::Receiver<(Page, usize)>) -> ReplayStage {
    let (tx, decoded) = std::sync::mpsc::sync_channel::<(Page, Vec<Result<Event, String>>)>(4);
    std::thread::scope(|s| {
        let decoder = std::thread::Builder::new()
            .name("keel-verify-decode".into())
            .spawn_scoped(s, move || {
                for (page, good) in pages {
                    let evs = page
                        .rows
                        .iter()
                        .take(good)
                        .map(|row| decode(&page, row))
                        .collect();
                    if tx.send((page, evs)).is_err() {
                        break;
                    }
                }
            });
        match decoder {
            Ok(_) => apply_pages(decoded),
            Err(e) => ReplayStage {
                replay: Replay::default(),
                fault: Some((1, format!("cannot start the decoding thread: {e}"))),
                last_hash: GENESIS_HASH.to_string(),
            },
        }
    })
}

/// The event a row holds, if it is the one the row names.
fn decode(page: &Page, row: &PageRow) -> Result<Event, String> {
    let PageRow::Ok(_, f) = row else {
        return Err("unreadable row".into());
    };
    let [_, kind, event_id, payload, _, _] = f.map(|r| page.field(&r));
    match serde_json::from_str::<Event>(payload) {
        Err(e) => Err(format!("payload is not an event: {e}")),
        Ok(ev) if ev.kind() != kind || ev.event_id() != event_id => Err(format!(
            "payload is a {} event {:?}, the row says {kind} {event_id:?}",
            ev.kind(),
            ev.event_id(),
        )),
        Ok(ev) => Ok(ev),
    }
}

/// Applies decoded events in order (the second half of [`replay_pages`]).
fn apply_pages(decoded: std::sync::mpsc::Receiver<(Page, Vec<Result<Event, String>>)>) -> ReplayStage {
    let mut st = ReplayStage {
        replay: Replay::default(),
        fault: None,
        last_hash: GENESIS_HASH.to_string(),
    };
    for (page, evs) in decoded {
        for (row, ev) in page.rows.iter().zip(evs) {
            let PageRow::Ok(seq, f) = row else { continue };
            let [_, _, event_id, _, _, hash] = f.map(|r| page.field(&r));
            let why = match ev {
                Err(why) => Some(why),
                Ok(ev) => st
                    .replay
                    .apply(&ev, event_id)
                    .err()
                    .map(|e| format!("replaying the event failed: {e}")),
            };
            if let Some(why) = why {
                st.fault = Some((*seq, why));
                return st;
            }
            st.last_hash.clear();
            st.last_hash.push_str(hash);
        }
    }
    st
}

/// Rows per page handed from the reading thread to the checking one.
const RAW_PAGE: usize = 2_000;

/// [`SqlStore::scan`] of a store file. This thread reads the log through a
/// raw read-only connection and checks the chain as it reads, straight
/// from SQLite's buffers; in a full replay it hands the rows' events to a
/// replaying thread. A third thread digests the projection tables through
/// a second connection. The two connections' read transactions see the
/// same snapshot when they see the same head, because keel changes log
/// and projections in one transaction; when they do not (something wrote
/// in between) the tables are digested again in the log's own transaction.
fn scan_file(
    file: &std::path::Path,
    key: Option<AuditKey>,
    from_state: Option<u64>,
    cp_seq: Option<u64>,
    with_tables: bool,
) -> Result<Scanned, String> {
    let log_db = RawDb::open_readonly(file)?;
    let tables_db = match with_tables {
        true => Some(RawDb::open_readonly(file)?),
        false => None,
    };
    let digest_key = key.clone();
    let mut chain = ChainCheck::new(key, from_state, cp_seq);
    std::thread::scope(|scope| {
        let spawn_err = |e: std::io::Error| format!("cannot start a verification thread: {e}");
        let tables_key = digest_key.clone();
        let tables = tables_db.map(|tables_db| {
            std::thread::Builder::new()
                .name("keel-verify-tables".into())
                .spawn_scoped(scope, move || {
                    tables_db.exec("BEGIN")?;
                    let head = audit_head_raw(&tables_db)?;
                    let d = digest_tables(&tables_db, tables_key.as_ref())?;
                    tables_db.exec("COMMIT")?;
                    Ok::<_, String>((head, d))
                })
                .map_err(spawn_err)
        });
        let tables = tables.transpose()?;
        let (tx, pages) = std::sync::mpsc::sync_channel::<(Page, usize)>(8);
        let replayer = match from_state {
            Some(_) => None,
            None => Some(
                std::thread::Builder::new()
                    .name("keel-verify-replay".into())
                    .spawn_scoped(scope, move || replay_pages(pages))
                    .map_err(spawn_err)?,
            ),
        };
        let forward = replayer.is_some().then_some(tx);
        let read = (|| {
            log_db.exec("BEGIN")?;
            read_log(&log_db, &mut chain, forward)?;
            let head = audit_head_raw(&log_db)?;
            let digests = match tables.map(|t| t.join()) {
                None => Digests::new(),
                Some(Ok(Ok((h, d)))) if h == head => d,
                // Another snapshot, or that thread failed: digest here instead.
                Some(_) => digest_tables(&log_db, digest_key.as_ref())?,
            };
            log_db.exec("COMMIT")?;
            Ok::<_, String>(digests)
        })();
        if let Some(r) = replayer {
            chain.merge(r.join().ok());
        }
        Ok(Scanned { chain, tables: read? })
    })
}

/// Reads the whole log in seq order, checking each row with `chain` until
/// the chain breaks, and (in a full replay) sends the checked rows' events
/// to `forward` in pages.
fn read_log(
    db: &RawDb,
    chain: &mut ChainCheck,
    forward: Option<std::sync::mpsc::SyncSender<(Page, usize)>>,
) -> Result<(), String> {
    let mut page = Page::default();
    let mut replayer_gone = false;
    db.query(
        "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit ORDER BY seq",
        &[],
        |c| {
            let seq = match c.first() {
                Some(Col::Int(n)) => *n,
                _ => -1,
            };
            let mut fields = [""; 6];
            let mut bad = None;
            for (i, f) in fields.iter_mut().enumerate() {
                match c.get(i + 1) {
                    Some(Col::Text(b)) => match std::str::from_utf8(b) {
                        Ok(s) => *f = s,
                        Err(_) => bad = Some(format!("column {} is not UTF-8 text", i + 1)),
                    },
                    other => bad = Some(format!("column {} is {other:?}, not text", i + 1)),
                }
            }
            let ok = match (u64::try_from(seq), bad) {
                (Ok(s), None) => chain.accept(s, fields),
                (_, Some(why)) => chain.unreadable(&format!("row with seq {seq}: {why}")),
                (Err(_), None) => chain.unreadable(&format!("seq {seq} is not a positive integer")),
            };
            if !ok {
                return false;
            }
            if let (Some(tx), Ok(s)) = (&forward, u64::try_from(seq)) {
                // The replay needs kind, id, payload and hash only.
                let [_, kind, event_id, payload, _, hash] = fields;
                page.push_fields(s, ["", kind, event_id, payload, "", hash]);
                if page.rows.len() >= RAW_PAGE {
                    let full = std::mem::take(&mut page);
                    let n = full.rows.len();
                    if tx.send((full, n)).is_err() {
                        // The replay stopped at a bad event; that is the finding.
                        replayer_gone = true;
                        return false;
                    }
                }
            }
            true
        },
    )?;
    if let (Some(tx), false) = (&forward, replayer_gone) {
        let n = page.rows.len();
        // A replayer gone now has seen a bad event; nothing more to tell it.
        let _ = tx.send((page, n));
    }
    Ok(())
}

/// The last audit row's seq and hash as `db`'s transaction sees them.
fn audit_head_raw(db: &RawDb) -> Result<Option<(i64, Vec<u8>)>, String> {
    let mut head = None;
    db.query(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |c| {
            if let [Col::Int(seq), Col::Text(h)] = c {
                head = Some((*seq, h.to_vec()));
            }
            false
        },
    )?;
    Ok(head)
}

/// Every projection table's digest as `db`'s transaction sees it.
fn digest_tables(db: &RawDb, key: Option<&AuditKey>) -> Result<Digests, String> {
    let mut tables = Digests::new();
    for table in PROJECTION_TABLES {
        let d = tables.entry(table.to_string()).or_default();
        db.query(&format!("SELECT * FROM {table}"), &[], |c| {
            d.add(&crate::state::row_hash(key, table, c));
            true
        })?;
    }
    Ok(tables)
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
