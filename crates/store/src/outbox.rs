//! The notification outbox: which logged events need a person, and whether
//! each channel has delivered them.
//!
//! Rows are derived from the audit log inside the append's transaction
//! ([`derive`], called by the engine), so an event and its notification
//! commit together or not at all; a crash after the commit leaves the row
//! pending and the next delivery loop sends it. Delivery state lives in
//! `outbox_delivery`, outside the log and its projections: sending an email
//! is not a state change of the account, and a rebuild must not resend.

use crate::codec::fmt_time;
use crate::conn::{exec, fetch, Conn, Val};
use crate::engine::{seq_i64, SqlStore};
use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_domain::{notice_of, Event};
use sqlx::Database;

/// Columns of `outbox`, in insert order.
const OUTBOX_COLS: &[&str] = &["seq", "event_id", "kind", "also", "severity", "at"];

/// Longest error text kept per delivery attempt.
const MAX_ERROR: usize = 500;

/// One notification waiting for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// The causing event's audit seq.
    pub seq: u64,
    /// The causing event's id (the receivers' deduplication key).
    pub event_id: String,
    /// `keel_domain::AlertKind` name.
    pub kind: String,
    /// Further kinds the event also is.
    pub also: Vec<String>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The event as logged (JSON).
    pub payload: String,
    /// Attempts so far on this channel.
    pub attempts: u32,
    /// After a failure: not before this time.
    pub next_at: Option<DateTime<Utc>>,
}

/// How one attempt to deliver an item on a channel ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The receiver accepted it. Final.
    Delivered,
    /// The channel does not take this kind or severity. Final.
    Skipped,
    /// It failed; try again at `next_at`. `error` must hold no secret.
    Failed {
        /// Why (shortened).
        error: String,
        /// When to retry.
        next_at: DateTime<Utc>,
    },
}

/// Delivery counts over the whole outbox, for `/metrics` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Notifications in the outbox.
    pub total: u64,
    /// (channel, state, count) of delivery rows.
    pub by_channel: Vec<(String, String, u64)>,
}

/// Reading the outbox and recording deliveries. Object safe; implemented by
/// every SQL backend.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` notifications at or after `since` that `channel` has not
    /// delivered or skipped, oldest first.
    async fn outbox_pending(
        &self,
        channel: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Records the outcome of one attempt (`attempts` counts it).
    async fn outbox_record(
        &self,
        channel: &str,
        seq: u64,
        attempts: u32,
        outcome: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Counts, for metrics and tests.
    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
}

/// The outbox row for an event just logged at `seq`, if it needs a person.
pub(crate) fn row_for(
    ev: &Event,
    seq: u64,
    event_id: &str,
    at: &str,
) -> Result<Option<Vec<Val>>, StoreError> {
    let Some(n) = notice_of(ev) else {
        return Ok(None);
    };
    let also: Vec<&str> = n.also.iter().map(|k| k.as_str()).collect();
    Ok(Some(vec![
        Val::i(seq_i64(seq)?),
        Val::t(event_id),
        Val::t(n.kind.as_str()),
        Val::t(also.join(",")),
        Val::t(n.severity.as_str()),
        Val::t(at),
    ]))
}

/// Inserts derived outbox rows inside the caller's transaction. A row that
/// exists already (a rebuild re-deriving it) is kept as it is.
pub(crate) async fn derive<C: Conn + ?Sized>(c: &mut C, rows: Vec<Vec<Val>>) -> Result<(), StoreError> {
    let per = crate::apply::rows_per_statement(OUTBOX_COLS.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per).collect();
        let sql = format!(
            "{} ON CONFLICT (seq) DO NOTHING",
            crate::apply::insert_sql("outbox", OUTBOX_COLS, chunk.len(), false)
        );
        let args: Vec<Val> = chunk.into_iter().flatten().collect();
        exec(c, "writing the notification outbox", &sql, &args).await?;
    }
    Ok(())
}

/// Cuts an error message to [`MAX_ERROR`] characters.
fn shorten(s: &str) -> String {
    s.chars().take(MAX_ERROR).collect()
}

#[async_trait]
impl<DB> Outbox for SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    async fn outbox_pending(
        &self,
        channel: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let rows = fetch(
            &mut *c,
            "outbox",
            "reading pending notifications",
            "SELECT o.seq, o.event_id, o.kind, o.also, o.severity, o.at, a.payload, d.attempts, d.next_at \
             FROM outbox o JOIN audit a ON a.seq = o.seq \
             LEFT JOIN outbox_delivery d ON d.channel = $1 AND d.seq = o.seq \
             WHERE o.at >= $2 AND (d.state IS NULL OR d.state = 'failed') \
             ORDER BY o.seq LIMIT $3",
            &[Val::t(channel), Val::t(fmt_time(since)), Val::i(i64::from(limit))],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let also = r.text(3, "also")?;
                Ok(OutboxItem {
                    seq: r.uint(0, "seq")?,
                    event_id: r.text(1, "event_id")?,
                    kind: r.text(2, "kind")?,
                    also: also
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    severity: r.text(4, "severity")?,
                    at: r.time(5, "at")?,
                    payload: r.text(6, "payload")?,
                    attempts: r
                        .opt_int(7, "attempts")?
                        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                    next_at: r.opt_time(8, "next_at")?,
                })
            })
            .collect()
    }

    async fn outbox_record(
        &self,
        channel: &str,
        seq: u64,
        attempts: u32,
        outcome: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, next_at, error) = match outcome {
            Delivery::Delivered => ("delivered", None, None),
            Delivery::Skipped => ("skipped", None, None),
            Delivery::Failed { error, next_at } => ("failed", Some(fmt_time(*next_at)), Some(shorten(error))),
        };
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        exec(
            &mut *c,
            "recording a notification delivery",
            "INSERT INTO outbox_delivery (channel, seq, state, attempts, next_at, last_error, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (channel, seq) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, \
             next_at = excluded.next_at, last_error = excluded.last_error, updated_at = excluded.updated_at",
            &[
                Val::t(channel),
                Val::i(seq_i64(seq)?),
                Val::t(state),
                Val::i(i64::from(attempts)),
                Val::ot(next_at),
                Val::ot(error),
                Val::t(fmt_time(now)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let total = fetch(
            &mut *c,
            "outbox",
            "counting notifications",
            "SELECT COUNT(*) FROM outbox",
            &[],
        )
        .await?
        .first()
        .map_or(Ok(0), |r| r.uint(0, "count"))?;
        let rows = fetch(
            &mut *c,
            "outbox_delivery",
            "counting deliveries",
            "SELECT channel, state, COUNT(*) FROM outbox_delivery GROUP BY channel, state ORDER BY channel, state",
            &[],
        )
        .await?;
        let by_channel = rows
            .iter()
            .map(|r| Ok((r.text(0, "channel")?, r.text(1, "state")?, r.uint(2, "count")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(OutboxCounts { total, by_channel })
    }
}
