//! Audit-log event decoding (`keel_domain::Event` from a payload, as
//! `keel audit verify` and `rebuild_projections` read them): never panics,
//! the idempotency key and kind are total, and decoding is a round trip.
#![no_main]

use keel_domain::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(e) = serde_json::from_slice::<Event>(data) else {
        return;
    };
    let (id, kind, _at) = (e.event_id(), e.kind(), e.at());
    assert!(!id.is_empty() && !kind.is_empty());
    let text = serde_json::to_vec(&e).expect("re-encode a decoded event");
    let back: Event = serde_json::from_slice(&text).expect("decode a re-encoded event");
    assert_eq!(back.event_id(), id);
    assert_eq!(back, e);
});
