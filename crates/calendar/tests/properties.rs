//! Property tests: structural invariants that must hold for any dates,
//! checked against the public API only (no knowledge of the rules).

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Utc};
use keel_calendar::{
    classify, is_open, next_session_on_or_after, previous_session_before, session, session_containing,
    sessions, DayKind, SUPPORTED_FROM_YEAR, SUPPORTED_TO_YEAR,
};
use proptest::prelude::*;

fn first_supported() -> NaiveDate {
    NaiveDate::from_ymd_opt(SUPPORTED_FROM_YEAR, 1, 1).expect("valid date")
}

fn supported_days() -> u64 {
    let last = NaiveDate::from_ymd_opt(SUPPORTED_TO_YEAR, 12, 31).expect("valid date");
    u64::try_from((last - first_supported()).num_days()).expect("positive span")
}

/// Any date in the supported range.
fn supported_date() -> impl Strategy<Value = NaiveDate> {
    (0..=supported_days()).prop_map(|offset| first_supported() + Days::new(offset))
}

/// Any instant within the supported range, at second resolution.
fn supported_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (supported_date(), 0..86_400i64).prop_map(|(date, secs)| {
        date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc() + TimeDelta::seconds(secs)
    })
}

/// Any date chrono can represent, to check that nothing panics.
fn any_date() -> impl Strategy<Value = NaiveDate> {
    let min = NaiveDate::MIN.num_days_from_ce();
    let max = NaiveDate::MAX.num_days_from_ce();
    (min..=max).prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).expect("within chrono range"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sessions_are_ascending_and_well_formed(from in supported_date(), span in 0u64..800) {
        let to = from + Days::new(span);
        let list = sessions(from, to);
        for s in &list {
            prop_assert!(from <= s.date && s.date <= to);
            prop_assert!(s.open < s.close, "{s:?}");
            prop_assert_eq!(session(s.date), Some(*s));
        }
        for pair in list.windows(2) {
            prop_assert!(pair[0].date < pair[1].date);
            prop_assert!(pair[0].close < pair[1].open, "{:?} overlaps {:?}", pair[0], pair[1]);
        }
        // Nothing is skipped: every date with a session is in the list.
        let expected = from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| session(*d).is_some())
            .count();
        prop_assert_eq!(list.len(), expected);
    }

    #[test]
    fn is_open_agrees_with_sessions(at in supported_instant()) {
        // Oracle: scan the neighbouring days' sessions rather than trusting the
        // crate's own choice of which date to look up.
        let day = at.date_naive();
        let around = sessions(day - Days::new(1), day + Days::new(1));
        let containing = around.iter().find(|s| s.open <= at && at < s.close).copied();
        prop_assert_eq!(is_open(at), containing.is_some());
        prop_assert_eq!(session_containing(at), containing);
    }

    #[test]
    fn session_boundaries_are_half_open(date in supported_date()) {
        if let Some(s) = session(date) {
            prop_assert!(is_open(s.open));
            prop_assert!(is_open(s.close - TimeDelta::seconds(1)));
            prop_assert!(!is_open(s.close));
            prop_assert!(!is_open(s.open - TimeDelta::seconds(1)));
        }
    }

    #[test]
    fn session_presence_matches_classification(date in supported_date()) {
        let kind = classify(date);
        let s = session(date);
        match kind {
            DayKind::Regular => prop_assert!(s.is_some_and(|s| !s.early_close)),
            DayKind::EarlyClose => prop_assert!(s.is_some_and(|s| s.early_close)),
            DayKind::Weekend | DayKind::Holiday(_) | DayKind::SpecialClosure(_) => {
                prop_assert!(s.is_none())
            }
        }
    }

    #[test]
    fn next_and_previous_are_adjacent(date in supported_date()) {
        let next = next_session_on_or_after(date);
        prop_assert!(next.date >= date);
        prop_assert_eq!(session(next.date), Some(next));
        prop_assert!(sessions(date, next.date).first() == Some(&next));

        let prev = previous_session_before(date);
        prop_assert!(prev.date < date);
        prop_assert_eq!(session(prev.date), Some(prev));
        prop_assert!(sessions(prev.date, date - Days::new(1)).last() == Some(&prev));
        prop_assert_eq!(sessions(prev.date, date - Days::new(1)).len(), 1);
    }

    #[test]
    fn never_panics_on_any_date(date in any_date(), secs in 0..86_400i64) {
        let _ = classify(date);
        let _ = session(date);
        let _ = sessions(date, date);
        let _ = next_session_on_or_after(date);
        let _ = previous_session_before(date);
        if let Some(at) = date
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.checked_add_signed(TimeDelta::seconds(secs)))
        {
            let _ = is_open(at.and_utc());
        }
    }
}
