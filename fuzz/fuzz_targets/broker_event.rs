//! Broker order-event decoding (`keel_broker::BrokerEvent` and `BrokerOrder`
//! from JSON, as the event stream and order lookups carry them): never
//! panics, and whatever decodes re-encodes to something that decodes to the
//! same value.
#![no_main]

use keel_broker::{BrokerEvent, BrokerOrder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = serde_json::from_slice::<BrokerEvent>(data) {
        let _ = (e.kind(), e.client_order_id());
        let text = serde_json::to_vec(&e).expect("re-encode a decoded event");
        let back: BrokerEvent = serde_json::from_slice(&text).expect("decode a re-encoded event");
        assert_eq!(back, e);
    }
    if let Ok(o) = serde_json::from_slice::<BrokerOrder>(data) {
        let _ = (o.remaining(), o.is_open(), o.to_open_order());
        let text = serde_json::to_vec(&o).expect("re-encode a decoded order");
        let back: BrokerOrder = serde_json::from_slice(&text).expect("decode a re-encoded order");
        assert_eq!(back, o);
    }
});
