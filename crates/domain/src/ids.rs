//! Deterministic client order ids (invariant 2: no duplicate orders).

use crate::{Side, Symbol};
use sha2::{Digest, Sha256};

/// Alpaca's limit on client order id length; the tightest of the brokers keel targets.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 128;

/// Derives the client order id for an order from what identifies it.
///
/// The same (account, target set, symbol, side, attempt) always gives the same
/// id, so a restart or retry finds the existing order at the broker instead of
/// sending a second one. The readable prefix helps operators; the hash makes
/// ids unique even when the set id is long or contains characters brokers refuse.
pub fn client_order_id(
    account: &str,
    target_set_id: &str,
    symbol: &Symbol,
    side: Side,
    attempt: u32,
) -> String {
    let mut h = Sha256::new();
    for part in [account, target_set_id, symbol.as_str(), side.as_str()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(attempt.to_be_bytes());
    let digest = hex::encode(&h.finalize()[..12]);
    let id = format!("k-{}-{}-{}-{}", symbol.as_str(), side.as_str(), attempt, digest);
    debug_assert!(id.len() <= MAX_CLIENT_ORDER_ID_LEN);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stable_and_distinct() {
        let s = Symbol::new("AAPL").unwrap();
        let a = client_order_id("acct", "set-1", &s, Side::Buy, 0);
        assert_eq!(a, client_order_id("acct", "set-1", &s, Side::Buy, 0));
        assert_ne!(a, client_order_id("acct", "set-1", &s, Side::Sell, 0));
        assert_ne!(a, client_order_id("acct", "set-1", &s, Side::Buy, 1));
        assert_ne!(a, client_order_id("acct", "set-2", &s, Side::Buy, 0));
        assert_ne!(a, client_order_id("acct2", "set-1", &s, Side::Buy, 0));
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(
            client_order_id("ab", "c", &s, Side::Buy, 0),
            client_order_id("a", "bc", &s, Side::Buy, 0)
        );
    }

    proptest! {
        #[test]
        fn always_within_broker_limit(acct in ".{0,300}", set in ".{0,300}", attempt in any::<u32>()) {
            let s = Symbol::new("ABCDEFGHIJKL").unwrap();
            let id = client_order_id(&acct, &set, &s, Side::Sell, attempt);
            prop_assert!(id.len() <= MAX_CLIENT_ORDER_ID_LEN);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        }
    }
}
