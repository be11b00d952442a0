//! Target-set JSON intake (`keel_intake::parse_json`) on arbitrary bytes.
//!
//! Never panics, and anything it accepts obeys the intake contract: a valid
//! id, targets sorted by symbol without duplicates, gross within the limit,
//! `valid_until` after `as_of`, and re-reading keel's own serialisation of
//! the accepted set gives the same set.
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use keel_intake::{parse_json, IntakeConfig, MAX_ID_LEN};
use libfuzzer_sys::fuzz_target;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 20, 45, 0).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let cfg = IntakeConfig::default();
    let Ok(set) = parse_json("fuzz", data, &cfg, now()) else {
        return;
    };
    assert!(
        !set.id.is_empty() && set.id.chars().count() <= MAX_ID_LEN,
        "id {:?}",
        set.id
    );
    assert!(
        set.targets.windows(2).all(|w| w[0].symbol < w[1].symbol),
        "targets not sorted and unique: {:?}",
        set.targets
    );
    assert!(
        set.gross() <= cfg.max_gross,
        "gross {} above {}",
        set.gross(),
        cfg.max_gross
    );
    assert!(set.targets.len() <= cfg.max_targets);
    if !cfg.allow_short {
        assert!(
            set.targets.iter().all(|t| !t.weight.is_sign_negative()),
            "{:?}",
            set.targets
        );
    }
    if let Some(v) = set.valid_until {
        assert!(v > set.as_of, "valid_until {v} not after as_of {}", set.as_of);
    }
    if set.gross() < cfg.liquidate_floor {
        assert!(set.liquidate, "near-empty set accepted without liquidate");
    }
    let again = serde_json::to_vec(&set).expect("serialise an accepted set");
    let back = parse_json("fuzz-roundtrip", &again, &cfg, now()).unwrap_or_else(|e| {
        panic!(
            "intake refuses its own output {}: {e}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(back, set);
});
