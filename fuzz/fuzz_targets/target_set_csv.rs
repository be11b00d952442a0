//! Target-set CSV intake (`keel_intake::parse_csv`) on arbitrary bytes: never
//! panics; an accepted set is sorted, unique, within gross, never liquidates.
#![no_main]

use chrono::{TimeZone, Utc};
use keel_intake::{parse_csv, IntakeConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = IntakeConfig::default();
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 20, 45, 0).unwrap();
    let Ok(set) = parse_csv("fuzz.csv", data, "fuzz-set", &cfg, now) else {
        return;
    };
    assert_eq!(set.as_of, now);
    assert!(!set.liquidate && set.valid_until.is_none());
    assert!(
        set.targets.windows(2).all(|w| w[0].symbol < w[1].symbol),
        "{:?}",
        set.targets
    );
    assert!(
        set.gross() <= cfg.max_gross && set.gross() >= cfg.liquidate_floor,
        "{}",
        set.gross()
    );
});
