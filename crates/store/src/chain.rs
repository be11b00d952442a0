//! The versioned audit chain: which hash a row carries and how it is checked.
//!
//! - **Version 1** (unkeyed): `hash` is 64 hex digits of SHA-256 over the
//!   canonical row encoding ([`crate::chain_hash`]). Anyone who can write the
//!   database can recompute it, so it protects against accidents only
//!   (a bad disk, a stray `UPDATE`), not against someone who edits on purpose.
//! - **Version 2** (keyed): `hash` is `"v2:"` followed by 64 hex digits of
//!   HMAC-SHA-256, under a key kept outside the data directory, over the same
//!   encoding with its own domain tag. Without the key a forged or recomputed
//!   row cannot be made to verify.
//!
//! A row says its own version, so logs written before keys existed stay
//! verifiable. The policy is strict in both directions: with a key
//! configured every row must be keyed (an unkeyed row in a keyed log is a
//! forgery or an unmigrated log: `keel audit rekey`), and without a key a
//! keyed row cannot be checked, which verification reports rather than skips.

use crate::codec::{chain_digest, chain_hash, feed_row};
use hmac::{Hmac, Mac};
use sha2::digest::Update;
use sha2::{Digest, Sha256};

/// Prefix of a version-2 (keyed) hash.
pub const KEYED_PREFIX: &str = "v2:";

/// Domain tag of a keyed row hash (distinct from version 1's and from checkpoints').
const ROW_TAG: &[u8] = b"keel-audit-v2";

/// Shortest key accepted, in bytes: below 128 bits a key can be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// The audit key. Its bytes are never printed: `Debug` shows only that it is set.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// A key from its secret bytes (at least [`MIN_KEY_LEN`]). The error never
    /// contains the bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_LEN {
            return Err(format!(
                "the audit key is {} bytes; at least {MIN_KEY_LEN} are required",
                secret.len()
            ));
        }
        let mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "the audit key is unusable".to_string())?;
        Ok(Self { mac })
    }

    /// The keyed (version-2) hash of one row, `"v2:" + hex`.
    pub fn row_hash(
        &self,
        prev_hash: &str,
        seq: u64,
        at: &str,
        kind: &str,
        event_id: &str,
        payload: &str,
    ) -> String {
        let mut out = String::with_capacity(KEYED_PREFIX.len() + 64);
        out.push_str(KEYED_PREFIX);
        out.push_str(&hex::encode(
            self.row_digest(prev_hash, seq, at, kind, event_id, payload),
        ));
        out
    }

    /// [`AuditKey::row_hash`] as bytes.
    fn row_digest(
        &self,
        prev_hash: &str,
        seq: u64,
        at: &str,
        kind: &str,
        event_id: &str,
        payload: &str,
    ) -> [u8; 32] {
        // Cloning the keyed state skips re-deriving the inner and outer pads per row.
        let mut m = self.mac.clone();
        feed_row(&mut m, ROW_TAG, prev_hash, seq, at, kind, event_id, payload);
        m.finalize().into_bytes().into()
    }
}

/// Domain tag of a checkpoint MAC (and of an unkeyed checkpoint's hash).
pub(crate) const CHECKPOINT_TAG: &[u8] = b"keel-checkpoint-v1";

/// The digest of what `feed` writes: HMAC-SHA-256 under `key`, plain
/// SHA-256 without one (the key policy of every keel digest but the rows').
pub(crate) fn digest_with(key: Option<&AuditKey>, feed: impl FnOnce(&mut dyn Update)) -> [u8; 32] {
    match key {
        Some(k) => {
            let mut m = k.mac.clone();
            feed(&mut m);
            m.finalize().into_bytes().into()
        }
        None => {
            let mut h = Sha256::new();
            feed(&mut h);
            h.finalize().into()
        }
    }
}

/// Whether a stored hash is a keyed (version-2) one.
pub fn is_keyed(hash: &str) -> bool {
    hash.starts_with(KEYED_PREFIX)
}

/// The hash a new row gets: keyed when a key is configured, SHA-256 otherwise.
pub fn row_hash(
    key: Option<&AuditKey>,
    prev_hash: &str,
    seq: u64,
    at: &str,
    kind: &str,
    event_id: &str,
    payload: &str,
) -> String {
    match key {
        Some(k) => k.row_hash(prev_hash, seq, at, kind, event_id, payload),
        None => chain_hash(prev_hash, seq, at, kind, event_id, payload),
    }
}

/// Checks one row's stored hash against its content under the key policy;
/// `Err` says why it does not verify.
#[allow(clippy::too_many_arguments)]
pub fn check_row_hash(
    key: Option<&AuditKey>,
    stored: &str,
    prev_hash: &str,
    seq: u64,
    at: &str,
    kind: &str,
    event_id: &str,
    payload: &str,
) -> Result<(), String> {
    // Compared without allocating: verification checks every row, and
    // formatting a million hashes into strings cost as much as hashing.
    let matches = |stored_hex: &str, h: &[u8; 32]| stored_hex.as_bytes() == lower_hex(h);
    match (key, is_keyed(stored)) {
        (Some(k), true) => {
            let h = k.row_digest(prev_hash, seq, at, kind, event_id, payload);
            if matches(&stored[KEYED_PREFIX.len()..], &h) {
                Ok(())
            } else {
                Err("keyed hash mismatch: the row was edited, or forged without the key".to_string())
            }
        }
        (Some(_), false) => Err(
            "unkeyed (SHA-256) row in a log verified with an audit key: a forged or recomputed row, \
             or a log written before the key was configured (migrate it with `keel audit rekey`)"
                .to_string(),
        ),
        (None, true) => Err(
            "keyed (HMAC-SHA-256) row, but no audit key is configured: set KEEL_AUDIT_KEY or \
             [audit] key_file to verify this log"
                .to_string(),
        ),
        (None, false) => {
            let h = chain_digest(prev_hash, seq, at, kind, event_id, payload);
            if matches(stored, &h) {
                Ok(())
            } else {
                Err(format!(
                    "hash mismatch: stored {stored}, computed {} (row content edited)",
                    hex::encode(h)
                ))
            }
        }
    }
}

/// 64 lowercase hex digits of a digest, on the stack.
fn lower_hex(h: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in h.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    out
}

/// What the chain protects against, for `keel status` and `keel audit verify`.
pub fn protection(key: Option<&AuditKey>) -> &'static str {
    match key {
        Some(_) => "keyed (HMAC-SHA-256): edits and forged rows are detected without the key",
        None => {
            "unkeyed (SHA-256): protected against accidents only; anyone who can write the \
             database can recompute the chain (set KEEL_AUDIT_KEY or [audit] key_file, then \
             `keel audit rekey`)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GENESIS_HASH;

    #[test]
    fn keyed_hash_depends_on_key_and_content() {
        let a = AuditKey::new(b"0123456789abcdef").unwrap();
        let b = AuditKey::new(b"0123456789abcdeX").unwrap();
        let h = a.row_hash(GENESIS_HASH, 1, "t", "k", "e", "{}");
        assert!(is_keyed(&h));
        assert_eq!(h.len(), 67);
        assert_ne!(h, b.row_hash(GENESIS_HASH, 1, "t", "k", "e", "{}"));
        assert_ne!(h, a.row_hash(GENESIS_HASH, 1, "t", "k", "e", "{ }"));
        assert!(check_row_hash(Some(&a), &h, GENESIS_HASH, 1, "t", "k", "e", "{}").is_ok());
        assert!(check_row_hash(Some(&b), &h, GENESIS_HASH, 1, "t", "k", "e", "{}").is_err());
        assert!(check_row_hash(None, &h, GENESIS_HASH, 1, "t", "k", "e", "{}").is_err());
        let plain = chain_hash(GENESIS_HASH, 1, "t", "k", "e", "{}");
        assert!(check_row_hash(None, &plain, GENESIS_HASH, 1, "t", "k", "e", "{}").is_ok());
        assert!(check_row_hash(Some(&a), &plain, GENESIS_HASH, 1, "t", "k", "e", "{}").is_err());
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        let e = AuditKey::new(b"short-secret").unwrap_err();
        assert!(!e.contains("short-secret"), "{e}");
        let k = AuditKey::new(b"a-long-enough-secret").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
    }
}
