//! Moving an account's log between stores with the hash chain intact.
//!
//! [`SqlStore::import_audit`] inserts audit rows *verbatim* (same `seq`,
//! time, payload bytes, `prev_hash` and `hash`), checking each link and
//! re-hashing each row first, and applies their events to the projections in
//! the same transaction. So the target's chain is the source's chain, bit for
//! bit (same head hash), it verifies, and its projections are the source's.
//! Importing again (or resuming an interrupted import) skips what the target
//! already has, after checking that it is the same chain.

use crate::apply::{apply_batch, insert_sql, rows_per_statement};
use crate::conn::{fetch_one, Conn, Val};
use crate::engine::{seq_i64, Head, SqlStore, AUDIT_COLS};
use crate::error::StoreError;
use crate::rows::AuditRow;
use crate::GENESIS_HASH;
use keel_domain::Event;
use sqlx::Database;

impl<DB> SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    /// Appends `rows` (consecutive, in `seq` order, e.g. one
    /// [`crate::Store::audit_page`] of another store) verbatim, in one
    /// transaction, and applies their events to the projections. Rows the
    /// target already has are skipped after checking that the target's row at
    /// the last such `seq` has the same hash (so it holds the same chain up to
    /// there). Returns how many rows were new.
    ///
    /// Refused, with nothing written, when a row does not link to the
    /// target's head, leaves a gap, does not hash to its stored hash, or
    /// carries an event that does not decode to its kind and id.
    pub async fn import_audit(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut cached = self.head.lock().await;
        let mut tx = self.begin("beginning import").await?;
        // The database's head, not the cache: another process may have written.
        let head = match fetch_one(
            &mut *tx,
            "audit",
            "reading the audit head",
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?
        {
            None => Head {
                seq: 0,
                hash: GENESIS_HASH.to_string(),
            },
            Some(r) => Head {
                seq: r.uint(0, "seq")?,
                hash: r.text(1, "hash")?,
            },
        };
        let refuse = |r: &AuditRow, why: String| StoreError::Refused {
            event_id: r.event_id.clone(),
            why: format!("importing audit row {}: {why}", r.seq),
        };
        if let Some(last_known) = rows.iter().filter(|r| r.seq <= head.seq).max_by_key(|r| r.seq) {
            let mine = fetch_one(
                &mut *tx,
                "audit",
                "comparing with the target's log",
                "SELECT seq, hash FROM audit WHERE seq = $1",
                &[Val::i(seq_i64(last_known.seq)?)],
            )
            .await?;
            match mine {
                Some(m) if m.text(1, "hash")? == last_known.hash => {}
                _ => {
                    return Err(refuse(
                        last_known,
                        "the target store already holds a different log at this sequence number".into(),
                    ))
                }
            }
        }
        let mut seq = head.seq;
        let mut prev = head.hash;
        let mut fresh: Vec<(&AuditRow, Event)> = Vec::new();
        for r in rows.iter().filter(|r| r.seq > head.seq) {
            if r.seq != seq + 1 {
                return Err(refuse(
                    r,
                    format!("expected sequence number {} (gap or disorder)", seq + 1),
                ));
            }
            if r.prev_hash != prev {
                return Err(refuse(
                    r,
                    format!(
                        "prev_hash {} does not link to the previous row's hash {prev}",
                        r.prev_hash
                    ),
                ));
            }
            // The target's key policy: a keyed log imports only into a store with the same key.
            crate::chain::check_row_hash(
                self.key.as_ref(),
                &r.hash,
                &r.prev_hash,
                r.seq,
                &r.at,
                &r.kind,
                &r.event_id,
                &r.payload,
            )
            .map_err(|why| refuse(r, why))?;
            let ev: Event = r
                .event()
                .map_err(|e| refuse(r, format!("payload is not an event: {e}")))?;
            if ev.kind() != r.kind || ev.event_id() != r.event_id {
                return Err(refuse(
                    r,
                    format!(
                        "payload is a {} with id {}, but the row says {} / {}",
                        ev.kind(),
                        ev.event_id(),
                        r.kind,
                        r.event_id
                    ),
                ));
            }
            seq = r.seq;
            prev = r.hash.clone();
            fresh.push((r, ev));
        }
        for chunk in fresh.chunks(rows_per_statement(AUDIT_COLS.len())) {
            let sql = insert_sql("audit", AUDIT_COLS, chunk.len(), false);
            let mut args = Vec::with_capacity(chunk.len() * AUDIT_COLS.len());
            for (r, _) in chunk {
                args.extend([
                    Val::i(seq_i64(r.seq)?),
                    Val::t(&r.at),
                    Val::t(&r.kind),
                    Val::t(&r.event_id),
                    Val::t(&r.payload),
                    Val::t(&r.prev_hash),
                    Val::t(&r.hash),
                ]);
            }
            tx.exec(&sql, &args).await.map_err(|source| StoreError::Db {
                context: format!("importing {} audit rows", chunk.len()),
                source,
            })?;
        }
        let refs: Vec<(&Event, &str)> = fresh.iter().map(|(r, e)| (e, r.event_id.as_str())).collect();
        if !refs.is_empty() {
            apply_batch(&mut *tx, &refs).await?;
        }
        tx.commit().await.map_err(StoreError::db("committing import"))?;
        *cached = Head { seq, hash: prev };
        Ok(fresh.len() as u64)
    }
}
