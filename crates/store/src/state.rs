//! Verified states: what a replay of the log proved, kept so that the next
//! start-up does not have to replay the whole log again.
//!
//! A [`VerifiedState`] says: "the log up to row `seq`, whose hash is `head`,
//! replays to projection tables whose rows have these digests, and these are
//! the rows later events can still change". Start-up then checks the whole
//! chain (every row's hash, which is cheap), replays only the rows after
//! `seq` onto the live rows, updates the digests with the rows those events
//! changed, and compares them with digests of the tables as they are. Equal
//! digests prove the tables are what a full replay would give. Any
//! difference, or an event the live rows cannot apply, falls back to the
//! full replay, which names the difference.
//!
//! A table's digest is the row count and the sum, modulo 2^256, of a hash of
//! each row (HMAC-SHA-256 under the audit key when one is configured,
//! SHA-256 otherwise). A sum rather than an ordered hash, because the state
//! cannot keep the rows it digests. Unkeyed sums can be steered by someone
//! who sets out to (a generalized-birthday search); like the unkeyed chain,
//! they protect against accidents only.
//!
//! The state is sealed with a MAC over account and body (keyed when a key
//! is configured) and kept beside the checkpoints, one file per account. A
//! state that is missing, does not verify or belongs to another log is not
//! an alarm, just a full replay; whether the state is old does not matter
//! either, since a true statement about an older prefix is still true.

use crate::anchor::{file_stem, Witness};
use crate::apply::{LiveRows, Replay};
use crate::chain::{digest_with, AuditKey};
use crate::codec::field;
use crate::conn::Val;
use crate::raw::Col;
use crate::rows::AuditRow;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

/// Domain tag of a projection row's hash.
const ROW_TAG: &[u8] = b"keel-projection-row-v1";

/// Domain tag and first word of a sealed state file.
const STATE_TAG: &str = "keel-verified-state-v1";

/// Largest state file read back (a bound on what a tampered file can make
/// keel allocate; a real one is a few hundred KiB).
const MAX_STATE_BYTES: u64 = 64 << 20;

/// The hash of one projection row: table and typed values, each
/// length-prefixed, under the key when given.
pub(crate) fn row_hash(key: Option<&AuditKey>, table: &str, cols: &[Col<'_>]) -> [u8; 32] {
    digest_with(key, |h| {
        h.update(ROW_TAG);
        field(h, table.as_bytes());
        h.update(&(cols.len() as u64).to_be_bytes());
        for c in cols {
            match c {
                Col::Null => h.update(&[0]),
                Col::Int(n) => {
                    h.update(&[1]);
                    h.update(&n.to_be_bytes());
                }
                Col::Text(b) => {
                    h.update(&[2]);
                    field(h, b);
                }
                Col::Real(x) => {
                    h.update(&[3]);
                    h.update(&x.to_be_bytes());
                }
                Col::Blob(b) => {
                    h.update(&[4]);
                    field(h, b);
                }
            }
        }
    })
}

/// [`row_hash`] of a row as the store writes it.
pub(crate) fn vals_hash(key: Option<&AuditKey>, table: &str, vals: &[Val]) -> [u8; 32] {
    let cols: Vec<Col<'_>> = vals
        .iter()
        .map(|v| match v {
            Val::Int(Some(n)) => Col::Int(*n),
            Val::Text(Some(s)) => Col::Text(s.as_bytes()),
            Val::Int(None) | Val::Text(None) => Col::Null,
        })
        .collect();
    row_hash(key, table, &cols)
}

/// The digest of one table: how many rows, and the sum of their hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TableDigest {
    rows: u64,
    /// Little-endian 64-bit limbs of the sum modulo 2^256.
    sum: [u64; 4],
}

impl TableDigest {
    fn limbs(h: &[u8; 32]) -> [u64; 4] {
        let mut l = [0u64; 4];
        for (i, chunk) in h.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            l[i] = u64::from_le_bytes(b);
        }
        l
    }

    /// Adds a row.
    pub(crate) fn add(&mut self, h: &[u8; 32]) {
        let x = Self::limbs(h);
        let mut carry = false;
        for (s, x) in self.sum.iter_mut().zip(x) {
            let (a, c1) = s.overflowing_add(x);
            let (b, c2) = a.overflowing_add(u64::from(carry));
            *s = b;
            carry = c1 || c2;
        }
        self.rows = self.rows.wrapping_add(1);
    }

    /// Removes a row added before.
    pub(crate) fn sub(&mut self, h: &[u8; 32]) {
        let x = Self::limbs(h);
        let mut borrow = false;
        for (s, x) in self.sum.iter_mut().zip(x) {
            let (a, b1) = s.overflowing_sub(x);
            let (b, b2) = a.overflowing_sub(u64::from(borrow));
            *s = b;
            borrow = b1 || b2;
        }
        self.rows = self.rows.wrapping_sub(1);
    }
}

impl Serialize for TableDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(32);
        for l in self.sum {
            bytes.extend_from_slice(&l.to_le_bytes());
        }
        (self.rows, hex::encode(bytes)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TableDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (rows, sum): (u64, String) = Deserialize::deserialize(d)?;
        let bytes = hex::decode(&sum).map_err(serde::de::Error::custom)?;
        let h: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a digest is 32 bytes"))?;
        Ok(TableDigest {
            rows,
            sum: TableDigest::limbs(&h),
        })
    }
}

/// Digests of every projection table, by name.
pub(crate) type Digests = BTreeMap<String, TableDigest>;

/// Which code sealed a state: the replay's rules (how events change rows,
/// how rows are encoded) are the store's, so a state sealed by another
/// version of it is not used; one full replay after an upgrade renews it.
fn sealer() -> String {
    format!("keel-store {}", env!("CARGO_PKG_VERSION"))
}

/// What a replay of the log up to `seq` proved (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedState {
    /// The code that proved it ([`sealer`]).
    sealed_by: String,
    /// The last row replayed.
    pub seq: u64,
    /// That row's hash.
    pub head: String,
    /// Whether the digests are keyed.
    keyed: bool,
    /// Every projection table's digest as the replay gives it.
    digests: Digests,
    /// The rows later events can still change, as stored values.
    live: LiveRows,
}

impl VerifiedState {
    /// The state a complete replay of the log up to `(seq, head)` proves,
    /// given the replay's [`replay_digests`].
    pub(crate) fn of_replay(
        key: Option<&AuditKey>,
        replay: &Replay,
        digests: Digests,
        seq: u64,
        head: &str,
    ) -> Self {
        Self {
            sealed_by: sealer(),
            seq,
            head: head.to_string(),
            keyed: key.is_some(),
            digests,
            live: replay.live_rows(),
        }
    }

    /// The digests of every table.
    pub(crate) fn digests(&self) -> &Digests {
        &self.digests
    }

    /// Whether this state can be used under `key` (digests are keyed alike).
    pub(crate) fn usable_with(&self, key: Option<&AuditKey>) -> bool {
        self.keyed == key.is_some()
    }

    /// Continues the state over `rows`, the log after `seq` in order,
    /// already chain-checked. `Err` says why it cannot (the caller then
    /// replays the whole log): an event needs a row the live rows do not
    /// hold, or an event does not decode or apply.
    pub(crate) fn advance(&self, key: Option<&AuditKey>, rows: &[AuditRow]) -> Result<Self, String> {
        let Some(last) = rows.last() else {
            return Ok(self.clone());
        };
        let mut replay = Replay::from_live(&self.live).map_err(|e| format!("the state's live rows: {e}"))?;
        let mut before: HashMap<(&'static str, String), [u8; 32]> = HashMap::new();
        replay.each_row(&mut |table, vals| {
            let k = vals.first().and_then(Val::render).unwrap_or_default();
            before.insert((table, k), vals_hash(key, table, &vals));
        });
        for (i, row) in rows.iter().enumerate() {
            if row.seq != self.seq + 1 + i as u64 {
                return Err(format!("row {} is out of order", row.seq));
            }
            let ev = row.event().map_err(|e| format!("row {}: {e}", row.seq))?;
            if ev.kind() != row.kind || ev.event_id() != row.event_id {
                return Err(format!(
                    "row {}: the payload is not the event the row names",
                    row.seq
                ));
            }
            replay
                .apply(&ev, &row.event_id)
                .map_err(|e| format!("row {}: {e}", row.seq))?;
            if let Some(m) = replay.missed() {
                return Err(format!(
                    "row {} changes {m}, which the state does not hold",
                    row.seq
                ));
            }
        }
        let mut digests = self.digests.clone();
        replay.each_row(&mut |table, vals| {
            let k = vals.first().and_then(Val::render).unwrap_or_default();
            let h = vals_hash(key, table, &vals);
            let d = digests.entry(table.to_string()).or_default();
            match before.remove(&(table, k)) {
                Some(old) if old == h => {}
                Some(old) => {
                    d.sub(&old);
                    d.add(&h);
                }
                None => d.add(&h),
            }
        });
        // Rows the events removed (a position gone flat).
        for ((table, _), old) in before {
            digests.entry(table.to_string()).or_default().sub(&old);
        }
        Ok(Self {
            sealed_by: sealer(),
            seq: last.seq,
            head: last.hash.clone(),
            keyed: self.keyed,
            digests,
            live: replay.live_rows(),
        })
    }

    /// Continues the state over rows the log holds after it, checking each
    /// row's link and hash first (under the key policy of [`crate::chain`]),
    /// so a state is only ever carried over rows that verify. For the
    /// checkpoint after a cycle: no table is read, since the state is what
    /// the log proves, whatever the tables say.
    pub fn continue_with(&self, key: Option<&AuditKey>, rows: &[AuditRow]) -> Result<Self, String> {
        if !self.usable_with(key) {
            return Err("the state was sealed under another key policy".into());
        }
        let mut chain = crate::verify::ChainCheck::continuing(key.cloned(), self.seq, &self.head);
        for r in rows {
            chain.check(r)?;
        }
        self.advance(key, rows)
    }

    /// The sealed file content: the tag and MAC on the first line, the body on the second.
    fn seal(&self, key: Option<&AuditKey>, account: &str) -> Result<String, String> {
        let body = serde_json::to_string(self).map_err(|e| e.to_string())?;
        Ok(format!("{STATE_TAG} {}\n{body}\n", seal_mac(key, account, &body)))
    }

    /// Opens sealed file content; `Err` says why it is not a usable state.
    fn unseal(key: Option<&AuditKey>, account: &str, text: &str) -> Result<Self, String> {
        let (first, body) = text.split_once('\n').ok_or("not a sealed state")?;
        let body = body.trim_end_matches('\n');
        let mac = first
            .strip_prefix(STATE_TAG)
            .map(str::trim)
            .ok_or("not a keel verified state")?;
        if mac != seal_mac(key, account, body) {
            return Err(format!(
                "its MAC does not verify (edited, of another account, or sealed {})",
                if key.is_some() {
                    "without this audit key"
                } else {
                    "under an audit key"
                }
            ));
        }
        let state: Self = serde_json::from_str(body).map_err(|e| format!("unreadable: {e}"))?;
        if state.sealed_by != sealer() {
            return Err(format!("sealed by {}, not by this {}", state.sealed_by, sealer()));
        }
        Ok(state)
    }
}

/// The MAC of a state file's body.
fn seal_mac(key: Option<&AuditKey>, account: &str, body: &str) -> String {
    hex::encode(digest_with(key, |h| {
        for f in [STATE_TAG.as_bytes(), account.as_bytes(), body.as_bytes()] {
            field(h, f);
        }
    }))
}

/// Digests of every table as `replay` holds it. Two threads, orders on
/// one and the other tables on the other: at a million events this is a
/// quarter of a full verification.
pub(crate) fn replay_digests(key: Option<&AuditKey>, replay: &Replay) -> Digests {
    let digest = |table: &'static str| {
        let mut d = TableDigest::default();
        replay.each_row_of(table, &mut |vals| d.add(&vals_hash(key, table, &vals)));
        (table.to_string(), d)
    };
    let (big, rest): (Vec<&'static str>, Vec<&'static str>) = crate::apply::PROJECTION_TABLES
        .iter()
        .partition(|t| **t == "orders");
    std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name("keel-verify-digest".into())
            .spawn_scoped(s, || rest.iter().map(|t| digest(t)).collect::<Vec<_>>());
        let mut out: Digests = big.iter().map(|t| digest(t)).collect();
        match other.map(|h| h.join()) {
            Ok(Ok(v)) => out.extend(v),
            // No thread to be had (or it failed): digest the rest here.
            _ => out.extend(rest.iter().map(|t| digest(t))),
        }
        out
    })
}

impl Witness {
    /// Where `account`'s verified state is kept.
    pub fn state_path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{}.verified-state", file_stem(account)))
    }

    /// Replaces `account`'s verified state (atomically: a crash leaves the
    /// old file or the new one, never half of one).
    pub fn save_state(
        &self,
        key: Option<&AuditKey>,
        account: &str,
        state: &VerifiedState,
    ) -> Result<(), String> {
        let path = self.state_path(account);
        let text = state.seal(key, account)?;
        let tmp = path.with_extension("verified-state.tmp");
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `account`'s verified state: `Ok(None)` when there is none, `Err`
    /// (why) when the file is there but cannot be used.
    pub fn load_state(&self, key: Option<&AuditKey>, account: &str) -> Result<Option<VerifiedState>, String> {
        use std::io::Read;
        let path = self.state_path(account);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut text = String::new();
        f.take(MAX_STATE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if text.len() as u64 > MAX_STATE_BYTES {
            return Err(format!("{}: larger than {MAX_STATE_BYTES} bytes", path.display()));
        }
        VerifiedState::unseal(key, account, &text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn digest_sums_are_order_free_and_subtract_exactly(
            rows in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..30),
            drop in any::<prop::sample::Index>(),
        ) {
            let hs: Vec<[u8; 32]> = rows
                .iter()
                .map(|r| row_hash(None, "t", &[Col::Text(r)]))
                .collect();
            let mut fwd = TableDigest::default();
            hs.iter().for_each(|h| fwd.add(h));
            let mut rev = TableDigest::default();
            hs.iter().rev().for_each(|h| rev.add(h));
            prop_assert_eq!(fwd, rev);
            let i = drop.index(hs.len());
            let mut without = TableDigest::default();
            hs.iter().enumerate().filter(|(j, _)| *j != i).for_each(|(_, h)| without.add(h));
            let mut removed = fwd;
            removed.sub(&hs[i]);
            prop_assert_eq!(removed, without);
        }
    }

    #[test]
    fn row_hash_separates_types_tables_and_keys() {
        let k = AuditKey::new(b"0123456789abcdef").unwrap();
        let a = row_hash(None, "t", &[Col::Int(1)]);
        assert_ne!(a, row_hash(None, "t", &[Col::Text(b"1")]));
        assert_ne!(a, row_hash(None, "u", &[Col::Int(1)]));
        assert_ne!(a, row_hash(Some(&k), "t", &[Col::Int(1)]));
        assert_ne!(
            row_hash(None, "t", &[Col::Text(b"ab"), Col::Text(b"")]),
            row_hash(None, "t", &[Col::Text(b"a"), Col::Text(b"b")])
        );
        assert_ne!(
            row_hash(None, "t", &[Col::Null]),
            row_hash(None, "t", &[Col::Text(b"")])
        );
    }

    #[test]
    fn sealed_state_opens_only_for_its_account_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let w = Witness::new(dir.path(), None);
        let k = AuditKey::new(b"0123456789abcdef").unwrap();
        let r = Replay::default();
        let s = VerifiedState::of_replay(Some(&k), &r, replay_digests(Some(&k), &r), 7, "v2:abc");
        w.save_state(Some(&k), "acct", &s).unwrap();
        assert_eq!(w.load_state(Some(&k), "acct").unwrap(), Some(s.clone()));
        assert!(w.load_state(None, "acct").is_err());
        assert!(w
            .load_state(Some(&AuditKey::new(b"0123456789abcdeX").unwrap()), "acct")
            .is_err());
        assert_eq!(w.load_state(Some(&k), "other").unwrap(), None);
        // Moved to another account's name: refused.
        std::fs::copy(w.state_path("acct"), w.state_path("other")).unwrap();
        assert!(w.load_state(Some(&k), "other").is_err());
        // Edited body: refused.
        let text = std::fs::read_to_string(w.state_path("acct")).unwrap();
        std::fs::write(w.state_path("acct"), text.replace("\"seq\":7", "\"seq\":8")).unwrap();
        let e = w.load_state(Some(&k), "acct").unwrap_err();
        assert!(e.contains("MAC"), "{e}");
    }
}
