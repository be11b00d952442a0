//! A small cache of the figures every page shows, refreshed when the audit
//! head moves.
//!
//! Every state change is an audit row, so `(seq, hash)` of the last row is a
//! version number for the whole store: while it is unchanged, nothing the
//! dashboard derives can have changed. Requests therefore cost no database
//! work at all in the common case, which is what keeps the overview fast on
//! a store with years of snapshots and millions of fills.
//!
//! The head itself is re-read at most every [`HEAD_CHECK_INTERVAL`], by one
//! request at a time; others meanwhile answer from the current version
//! (stale by at most that interval). Without that bound, 100 concurrent
//! clients would queue on the connection pool just to learn nothing changed.

use crate::model::{self, Book, EodView};
use chrono::{DateTime, Utc};
use keel_domain::{Event, Symbol, TargetSet};
use keel_store::{
    AccountRow, ChainReport, CycleRow, FillFilter, KillState, OrderFilter, ReconciliationRow, Store,
    StoreError,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How stale the cached figures may be. A person reading a dashboard that
/// refreshes every few seconds cannot tell 200 ms; a database serving 100
/// clients can.
pub const HEAD_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Audit rows read backwards from the head to find the latest target set when
/// none is queued. Bounded so a huge log never makes a refresh slow; a set
/// older than this many events shows as unknown.
const TARGET_SCAN_LIMIT: u64 = 20_000;
/// Audit rows per page of that scan.
const TARGET_SCAN_PAGE: u64 = 1_000;

/// Fills analysed by the slippage page when no day is chosen (the most recent).
pub const SLIPPAGE_WINDOW: u32 = 20_000;
/// Fills analysed for one day.
pub const SLIPPAGE_DAY_WINDOW: u32 = 100_000;

/// A full chain verification re-hashes the whole log; it is repeated at most
/// this often while the head keeps moving.
const VERIFY_INTERVAL: Duration = Duration::from_secs(30);

/// Everything derived from one version of the store.
#[derive(Debug)]
pub struct Core {
    /// Audit head sequence.
    pub seq: u64,
    /// Audit head hash.
    pub hash: String,
    /// The account, once opened.
    pub account: Option<AccountRow>,
    /// Marked positions and totals.
    pub book: Book,
    /// The target set weights are compared with.
    pub target_set_id: Option<String>,
    /// Kill switch.
    pub kill: Option<KillState>,
    /// Latest cycle.
    pub last_cycle: Option<CycleRow>,
    /// Orders that can still fill.
    pub open_orders: usize,
    /// Latest reconciliation.
    pub reconciliation: Option<ReconciliationRow>,
    /// Latest reconciliation that agreed (from the recent log).
    pub last_ok_reconciliation: Option<model::ReconOk>,
    /// Recently queued target sets, newest first.
    pub target_sets: Vec<model::TargetSetView>,
    /// Every EOD snapshot, oldest first.
    pub eod: Arc<Vec<EodView>>,
}

/// Slippage statistics for one filter at one version.
type SlipKey = (Option<chrono::NaiveDate>, Option<String>);

/// The result of the last chain verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The report.
    pub report: ChainReport,
    /// The head sequence when it ran.
    pub head_seq: u64,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// When it ran (monotonic, for the re-run interval).
    pub(crate) mono: Instant,
}

/// Where the backward target-set scan got to.
#[derive(Debug, Default)]
struct TargetScan {
    /// Head sequence and hash the scan covered.
    head: Option<(u64, String)>,
    /// The latest set found.
    latest: Option<TargetSet>,
}

/// Target sets listed on the overview.
const RECENT_SETS: usize = 10;

/// What the recent log says, folded forward as the head moves: the last
/// agreeing reconciliation and the recently queued target sets. Derived
/// from events only, so it is what replaying the log gives.
#[derive(Debug, Default)]
struct Timeline {
    /// Head sequence and hash folded up to.
    head: Option<(u64, String)>,
    last_ok: Option<model::ReconOk>,
    /// Newest last; at most [`RECENT_SETS`].
    sets: Vec<model::TargetSetView>,
}

impl Timeline {
    fn fold(&mut self, row: &keel_store::AuditRow) {
        if !matches!(
            row.kind.as_str(),
            "reconciled" | "target_set_queued" | "target_set_superseded"
        ) {
            return;
        }
        match row.event() {
            Ok(Event::Reconciled {
                ok: true, scope, at, ..
            }) => self.last_ok = Some(model::ReconOk { at, scope }),
            Ok(Event::TargetSetQueued { set, at }) => {
                self.sets.push(model::TargetSetView {
                    id: set.id.clone(),
                    as_of: set.as_of,
                    queued_at: at,
                    targets: set.targets.len(),
                    gross_weight: set.gross(),
                    status: "queued".into(),
                    superseded_by: None,
                    superseded_at: None,
                });
                if self.sets.len() > RECENT_SETS {
                    self.sets.remove(0);
                }
            }
            Ok(Event::TargetSetSuperseded {
                target_set_id,
                by,
                at,
            }) => {
                if let Some(v) = self.sets.iter_mut().find(|v| v.id == target_set_id) {
                    v.superseded_by = Some(by);
                    v.superseded_at = Some(at);
                }
            }
            _ => {}
        }
    }
}

/// The cache. One per router.
pub struct Cache {
    store: Arc<dyn Store>,
    current: RwLock<Option<Arc<Core>>>,
    /// When the head was last compared; `None` forces the next request to compare.
    checked: Mutex<Option<Instant>>,
    /// Single-flight for refreshes.
    refresh: tokio::sync::Mutex<()>,
    target: tokio::sync::Mutex<TargetScan>,
    timeline: tokio::sync::Mutex<Timeline>,
    slippage: Mutex<HashMap<SlipKey, (u64, Arc<model::SlippageResponse>)>>,
    verify: tokio::sync::Mutex<Option<Verified>>,
    verifying: AtomicBool,
    /// The serialised overview for one (audit seq, wall-clock second): the
    /// hottest endpoint is then a lookup and a reference-counted copy.
    overview_body: Mutex<Option<(u64, i64, axum::body::Bytes)>>,
}

/// Slippage results kept per filter; the oldest is dropped past this.
const SLIPPAGE_CACHE_ENTRIES: usize = 32;

impl Cache {
    /// An empty cache over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            current: RwLock::new(None),
            checked: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            target: tokio::sync::Mutex::new(TargetScan::default()),
            timeline: tokio::sync::Mutex::new(Timeline::default()),
            slippage: Mutex::new(HashMap::new()),
            verify: tokio::sync::Mutex::new(None),
            verifying: AtomicBool::new(false),
            overview_body: Mutex::new(None),
        }
    }

    /// Forces the next request to re-read the head (after a control action,
    /// which certainly changed it).
    pub fn invalidate(&self) {
        *self.checked.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn snapshot(&self) -> Option<Arc<Core>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fresh(&self) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < HEAD_CHECK_INTERVAL)
    }

    /// The current figures, re-reading the head when the last look is older
    /// than [`HEAD_CHECK_INTERVAL`].
    pub async fn core(&self) -> Result<Arc<Core>, StoreError> {
        let cur = self.snapshot();
        if let Some(c) = &cur {
            if self.fresh() {
                return Ok(c.clone());
            }
        }
        let _guard = match (&cur, self.refresh.try_lock()) {
            (_, Ok(g)) => g,
            // Someone else is refreshing: answer from the version we have.
            (Some(c), Err(_)) => return Ok(c.clone()),
            // Nothing to answer with yet: wait for the first build.
            (None, Err(_)) => self.refresh.lock().await,
        };
        // Another request may have refreshed while we waited for the lock.
        let cur = self.snapshot();
        if let Some(c) = &cur {
            if self.fresh() {
                return Ok(c.clone());
            }
        }
        let (seq, hash) = self.store.audit_head().await?;
        if let Some(c) = cur {
            if c.seq == seq && c.hash == hash {
                self.mark_checked();
                return Ok(c);
            }
        }
        let core = Arc::new(self.build(seq, hash).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(core.clone());
        self.mark_checked();
        Ok(core)
    }

    fn mark_checked(&self) {
        *self.checked.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Reads everything the overview and positions pages need.
    async fn build(&self, seq: u64, hash: String) -> Result<Core, StoreError> {
        let s = &self.store;
        let account = s.account().await?;
        let cash = s.cash().await?;
        let positions = s.positions().await?;
        let kill = s.kill_switch().await?;
        let last_cycle = s.cycles(1).await?.into_iter().next();
        let open_orders = s.open_orders().await?.len();
        let reconciliation = s.last_reconciliation().await?;
        let eod_rows = s.eod_snapshots().await?;
        let target = self.target_set(seq, &hash).await?;

        // Marks: each symbol's latest fill or latest close, whichever is newer
        // (the one rule, shared with `keel status`).
        let mut symbols: Vec<Symbol> = positions.keys().cloned().collect();
        if let Some(t) = &target {
            symbols.extend(t.targets.iter().map(|t| t.symbol.clone()));
        }
        symbols.sort();
        symbols.dedup();
        let marks = keel_store::marks::recorded_marks(s.as_ref(), &symbols, &eod_rows).await?;
        let book = model::book(cash, &positions, &marks, target.as_ref());
        let eod = Arc::new(eod_rows.iter().map(EodView::from_row).collect());
        let (last_ok_reconciliation, mut target_sets) = self.timeline(seq, &hash).await?;
        for v in &mut target_sets {
            if let Some(status) = s.target_set_status(&v.id).await? {
                v.status = status;
            }
        }
        Ok(Core {
            seq,
            hash,
            account,
            book,
            target_set_id: target.map(|t| t.id),
            kill,
            last_cycle,
            open_orders,
            reconciliation,
            last_ok_reconciliation,
            target_sets,
            eod,
        })
    }

    /// Folds the log from where the last build stopped to `seq` (at most
    /// [`TARGET_SCAN_LIMIT`] rows back; a log that moved backwards is refolded).
    async fn timeline(
        &self,
        seq: u64,
        hash: &str,
    ) -> Result<(Option<model::ReconOk>, Vec<model::TargetSetView>), StoreError> {
        let mut tl = self.timeline.lock().await;
        let from = match &tl.head {
            Some((s, h)) if *s == seq && h == hash => {
                let mut sets = tl.sets.clone();
                sets.reverse();
                return Ok((tl.last_ok.clone(), sets));
            }
            Some((s, _)) if *s < seq && seq - *s <= TARGET_SCAN_LIMIT => *s,
            _ => {
                *tl = Timeline::default();
                seq.saturating_sub(TARGET_SCAN_LIMIT)
            }
        };
        let mut after = from;
        while after < seq {
            let limit = u32::try_from((seq - after).min(TARGET_SCAN_PAGE)).unwrap_or(1000);
            let rows = self.store.audit_page(after, limit).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for r in &rows {
                tl.fold(r);
            }
        }
        tl.head = Some((seq, hash.to_string()));
        let mut sets = tl.sets.clone();
        sets.reverse();
        Ok((tl.last_ok.clone(), sets))
    }

    /// The target set positions are compared with: the newest set still
    /// queued or executing, else the newest set queued in the recent log.
    async fn target_set(&self, seq: u64, hash: &str) -> Result<Option<TargetSet>, StoreError> {
        if let Some(set) = self.store.queued_target_sets().await?.into_iter().last() {
            return Ok(Some(set));
        }
        let mut scan = self.target.lock().await;
        if scan.head.as_ref().is_some_and(|(s, h)| *s == seq && h == hash) {
            return Ok(scan.latest.clone());
        }
        // Only rows after the previous scan can hold a newer set, unless the
        // log moved backwards (another store behind the same path): rescan.
        let floor = match &scan.head {
            Some((s, _)) if *s <= seq => *s,
            _ => {
                scan.latest = None;
                0
            }
        };
        let floor = floor.max(seq.saturating_sub(TARGET_SCAN_LIMIT));
        let mut hi = seq;
        'scan: while hi > floor {
            let lo = hi.saturating_sub(TARGET_SCAN_PAGE).max(floor);
            let limit = u32::try_from(hi - lo).unwrap_or(u32::MAX);
            let rows = self.store.audit_page(lo, limit).await?;
            for row in rows.iter().rev() {
                if row.kind != "target_set_queued" {
                    continue;
                }
                if let Ok(Event::TargetSetQueued { set, .. }) = row.event() {
                    scan.latest = Some(set);
                    break 'scan;
                }
            }
            hi = lo;
        }
        scan.head = Some((seq, hash.to_string()));
        Ok(scan.latest.clone())
    }

    /// Slippage statistics for a filter, recomputed when the head moved.
    pub async fn slippage(
        &self,
        day: Option<chrono::NaiveDate>,
        symbol: Option<Symbol>,
    ) -> Result<Arc<model::SlippageResponse>, StoreError> {
        let core = self.core().await?;
        let key = (day, symbol.as_ref().map(|s| s.to_string()));
        if let Some((seq, v)) = self.slippage.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if *seq == core.seq {
                return Ok(v.clone());
            }
        }
        let window = if day.is_some() {
            SLIPPAGE_DAY_WINDOW
        } else {
            SLIPPAGE_WINDOW
        };
        // One extra row tells whether the window cut anything off.
        let mut fills = self
            .store
            .fills(&FillFilter {
                day,
                symbol: symbol.clone(),
                client_order_id: None,
                limit: Some(window + 1),
            })
            .await?;
        let truncated = fills.len() > window as usize;
        fills.truncate(window as usize);
        let orders = self
            .store
            .orders(&OrderFilter {
                day,
                symbol,
                status: None,
                limit: Some(window),
            })
            .await?;
        let v = Arc::new(model::slippage(core.seq, &fills, &orders, truncated));
        let mut m = self.slippage.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= SLIPPAGE_CACHE_ENTRIES {
            // Entries for older versions are useless; drop everything rather
            // than track recency for a cache this small.
            m.clear();
        }
        m.insert(key, (core.seq, v.clone()));
        Ok(v)
    }

    /// The chain verification status. A full verification re-hashes the
    /// whole log, so it runs in the background when the head moved and the
    /// last run is older than [`VERIFY_INTERVAL`]; meanwhile callers get the
    /// previous result and `true` (a run is in progress). Only the very first
    /// call waits for a run.
    pub async fn verify(self: &Arc<Self>) -> Result<(Verified, bool), StoreError> {
        let core = self.core().await?;
        let mut v = self.verify.lock().await;
        let Some(prev) = v.clone() else {
            // Holding the lock makes concurrent first callers wait for this one run.
            let done = self.run_verify(core.seq).await?;
            *v = Some(done.clone());
            return Ok((done, false));
        };
        drop(v);
        if prev.head_seq == core.seq || prev.mono.elapsed() < VERIFY_INTERVAL {
            return Ok((prev, self.verifying.load(Ordering::Acquire)));
        }
        if !self.verifying.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                match me.run_verify(core.seq).await {
                    Ok(done) => *me.verify.lock().await = Some(done),
                    Err(e) => tracing::error!(error = %e, "audit chain verification failed to run"),
                }
                me.verifying.store(false, Ordering::Release);
            });
        }
        Ok((prev, true))
    }

    async fn run_verify(&self, head_seq: u64) -> Result<Verified, StoreError> {
        let report = self.store.verify_chain().await?;
        if let Some((seq, why)) = &report.first_bad {
            tracing::error!(seq, why = %why, "audit chain verification found a bad row");
        }
        Ok(Verified {
            report,
            head_seq,
            at: Utc::now(),
            mono: Instant::now(),
        })
    }

    /// The cached overview body for `seq` in wall-clock second `second`, if any.
    pub fn overview_body(&self, seq: u64, second: i64) -> Option<axum::body::Bytes> {
        match &*self.overview_body.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((s, t, b)) if *s == seq && *t == second => Some(b.clone()),
            _ => None,
        }
    }

    /// Remembers the overview body for `seq` in wall-clock second `second`.
    pub fn set_overview_body(&self, seq: u64, second: i64, body: axum::body::Bytes) {
        *self.overview_body.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, second, body));
    }

    /// The last verification, if any ran (for /metrics, which must not start one).
    pub async fn last_verified(&self) -> Option<Verified> {
        self.verify.lock().await.clone()
    }
}
