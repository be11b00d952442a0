//! The simulator's own proof obligations:
//!
//! * CI sweep: at least 200 seeded trading days with every fault kind on and
//!   zero invariant violations;
//! * determinism: the same seed reproduces the same run down to the final
//!   audit hash, and different seeds differ;
//! * the checker can fail: each planted bug is found, with a seed that
//!   reproduces the same violation.

use keel_sim::{run, sweep, FaultProfile, PlantedBug, SimConfig, SimReport};

/// Runs a future on the current-thread runtime the simulator is built for.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Seeds × days of the CI sweep: 25 × 8 = 200 sessions.
const CI_SEEDS: u64 = 25;
const CI_DAYS: u32 = 8;

/// Every fault kind the `all` profile injects.
const KINDS: &[&str] = &[
    "timeout_before_send",
    "timeout_after_send",
    "server_error",
    "rate_limited",
    "reject",
    "partial_fill",
    "drop_event",
    "duplicate_event",
    "reorder_events",
    "stream_disconnect",
    "stale_quote",
    "price_gap",
    "vol_spike",
    "vol_data_outage",
    "operator_kill",
    "reject_storm",
    "timeout_storm",
];

#[test]
fn ci_sweep_200_days_all_faults_zero_violations() {
    let r = block_on(sweep(0..CI_SEEDS, CI_DAYS, FaultProfile::All, false));
    print!("{r}");
    for v in &r.violations {
        eprint!("{v}");
    }
    assert!(
        r.ok(),
        "{} violation(s); first: {}",
        r.violations.len(),
        r.violations[0]
    );
    assert!(r.days >= 200, "only {} days simulated", r.days);
    for k in KINDS {
        assert!(
            r.faults_by_kind.get(*k).copied().unwrap_or(0) > 0,
            "fault kind {k} never injected: {:?}",
            r.faults_by_kind
        );
    }
    assert!(r.crashes >= 20, "only {} crashes landed", r.crashes);
    // Both kinds of kill happened and the operator released them.
    for k in ["engaged_automatic", "engaged_cli", "released"] {
        assert!(
            r.kill_switch.get(k).copied().unwrap_or(0) > 0,
            "no {k}: {:?}",
            r.kill_switch
        );
    }
    assert!(r.orders >= 500, "only {} orders reached the venue", r.orders);
    // Hostile target sets were written and intake refused some of them.
    for k in ["refused_at_intake", "queued", "replay", "large_turnover"] {
        assert!(
            r.target_sets.get(k).copied().unwrap_or(0) > 0,
            "no {k}: {:?}",
            r.target_sets
        );
    }
}

/// Equal up to wall time.
fn same_run(a: &SimReport, b: &SimReport) -> bool {
    let mut a = a.clone();
    a.elapsed = b.elapsed;
    &a == b
}

#[test]
fn same_seed_same_audit_hash_different_seed_differs() {
    let cfg = SimConfig::new(4242, 6, FaultProfile::All);
    let a = block_on(run(&cfg));
    let b = block_on(run(&cfg));
    assert!(a.ok() && b.ok(), "{a}{b}");
    assert!(
        a.crashes > 0 || a.faults_by_kind.len() > 5,
        "the run saw faults: {a}"
    );
    assert_eq!(a.final_audit_hash, b.final_audit_hash);
    assert!(same_run(&a, &b), "runs differ:\n{a}\n{b}");
    let c = block_on(run(&SimConfig::new(4243, 6, FaultProfile::All)));
    assert!(c.ok(), "{c}");
    assert_ne!(a.final_audit_hash, c.final_audit_hash);
    // The clean profile is deterministic too, and differs from the faulty one.
    let d = block_on(run(&SimConfig::new(4242, 6, FaultProfile::None)));
    let e = block_on(run(&SimConfig::new(4242, 6, FaultProfile::None)));
    assert!(d.ok(), "{d}");
    assert_eq!(d.final_audit_hash, e.final_audit_hash);
    assert_ne!(d.final_audit_hash, a.final_audit_hash);
    assert!(d.faults_by_kind.is_empty() && d.crashes == 0, "{d}");
}

/// A checker that cannot fail proves nothing: plant each bug, find it, and
/// reproduce the finding from the reported seed alone.
#[test]
fn planted_bugs_are_found_and_reproduce_from_the_seed() {
    for (bug, expect) in [
        (
            PlantedBug::VolBrakeDisabled,
            &["vol_brake_applied", "vol_brake_zero_only_risk_reducing"][..],
        ),
        (PlantedBug::KillSwitchBlind, &["kill_switch_blocks_orders"][..]),
        (
            PlantedBug::MarketHoursGuardOff,
            &["no_order_outside_market_hours"][..],
        ),
    ] {
        let days = 10;
        let config = move |seed| SimConfig {
            plant_bug: Some(bug),
            ..SimConfig::new(seed, days, FaultProfile::All)
        };
        // The first seed that finds it (a sweep would go on to the end).
        let mut days_run = 0;
        let found = (0..20).find_map(|seed| {
            let r = block_on(run(&config(seed)));
            days_run += r.days;
            r.violations.into_iter().next()
        });
        let Some(v) = found.as_ref() else {
            panic!("{bug:?} planted but no violation found in {days_run} days");
        };
        assert!(
            expect.contains(&v.invariant.as_str()),
            "{bug:?} found as an unexpected invariant:\n{v}"
        );
        assert!(!v.trace.is_empty() && !v.detail.is_empty(), "{v}");
        println!(
            "{bug:?}: found by seed {} on day {} step {}",
            v.seed, v.day, v.step
        );
        // The reported seed alone reproduces the exact same violation.
        let again = block_on(run(&config(v.seed)));
        assert_eq!(
            again.violations.first(),
            Some(v),
            "seed {} did not reproduce",
            v.seed
        );
        // And the same seed without the bug is clean up to that day.
        let clean = block_on(run(&SimConfig::new(v.seed, v.day, FaultProfile::All)));
        assert!(clean.ok(), "seed {} fails without the bug:\n{clean}", v.seed);
    }
}

/// Known gap, found by the simulator: when keel is down from the close until
/// after midnight UTC, `Worker::maybe_eod` (which only looks at today's UTC
/// date) never writes that session's EOD snapshot. Ignored until the worker
/// is fixed; `cargo test -p keel-sim -- --ignored` shows it.
#[test]

fn evening_outage_keeps_eod_exactly_once() {
    let cfg = SimConfig {
        outages: true,
        ..SimConfig::new(9, 5, FaultProfile::All)
    };
    let r = block_on(run(&cfg));
    assert!(r.ok(), "{r}");
}
