//! Rule-based NYSE trading calendar.
//!
//! The engine must know, without any network or file access, whether the
//! exchange is trading at a given instant and when the surrounding sessions
//! open and close. Recurring holidays and early closes are therefore computed
//! from the exchange's published rules, and the handful of unscheduled events
//! (closures for national mourning or disasters, one-off late opens and early
//! closes) are kept as small, reviewed data tables in this file.
//!
//! Everything here is pure: no I/O, no clock reads, no allocation beyond the
//! `Vec` returned by [`sessions`]. All functions are total — they never panic,
//! whatever date or instant they are given.
//!
//! The tables were checked against the NYSE calendars of
//! `pandas_market_calendars` and `exchange_calendars` for
//! [`SUPPORTED_FROM_YEAR`]..=[`SUPPORTED_TO_YEAR`]. Outside that range the
//! modern rules are simply extrapolated (only the start years of MLK Day,
//! Juneteenth and the 2013 change to the Independence Day early close are
//! modelled), so results there are plausible but not authoritative. Future
//! ad-hoc closures cannot be predicted and must be added to the tables when
//! the exchange announces them. UTC times come from the `chrono-tz` zone data,
//! whose generated transitions apply DST through 2099 only; from 2100 on,
//! summer sessions come out an hour late.

#![warn(missing_docs)]

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use serde::Serialize;

/// First year whose every day is checked against the reference table in the
/// test suite; earlier years use extrapolated rules.
pub const SUPPORTED_FROM_YEAR: i32 = 2000;

/// Last year whose every day is checked against the reference table in the
/// test suite; later years use the current rules but cannot know about
/// future ad-hoc closures.
pub const SUPPORTED_TO_YEAR: i32 = 2035;

/// One trading session of the NYSE core (regular-hours) market.
///
/// Times are stored in UTC so callers never have to reason about New York
/// daylight saving; `date` is the New York calendar date the session belongs
/// to, which is what exchanges, brokers and statements use to name a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Session {
    /// New York calendar date of the session.
    pub date: NaiveDate,
    /// First instant at which the session is open (inclusive).
    pub open: DateTime<Utc>,
    /// Instant at which the session has closed (exclusive), so that
    /// back-to-back checks never count the closing bell as tradable.
    pub close: DateTime<Utc>,
    /// True when the session ends before the regular 16:00 close, so order
    /// scheduling can pull deadlines forward without re-deriving the rules.
    pub early_close: bool,
}

impl Session {
    /// Whether `at` lies in the half-open interval `[open, close)`; the same
    /// convention as [`is_open`], exposed so callers holding a session don't
    /// re-implement (and subtly change) the boundary handling.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.open <= at && at < self.close
    }
}

/// What kind of day a New York calendar date is for the NYSE.
///
/// Distinguishing holidays from ad-hoc closures lets callers explain to a
/// user *why* nothing traded, and lets tests verify each source separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// A full session, 09:30–16:00 New York time. A few historical days with a
    /// delayed open (e.g. moments of silence) are still `Regular`, because
    /// their close was normal; [`session`] reports the delayed open.
    Regular,
    /// A session that ends before 16:00 — normally 13:00 New York time around
    /// Independence Day, Thanksgiving and Christmas.
    EarlyClose,
    /// Saturday or Sunday; the NYSE has not traded on weekends since 1952.
    Weekend,
    /// A weekday closed for a recurring exchange holiday, named as in the
    /// NYSE holiday list (e.g. `"Good Friday"`, `"Christmas Day"`).
    Holiday(&'static str),
    /// A weekday closed for a one-off event (national day of mourning,
    /// disaster), with a short human-readable reason.
    SpecialClosure(&'static str),
}

/// Classifies a New York calendar date.
///
/// Weekends take precedence, then ad-hoc closures, then recurring holidays,
/// then early closes, so a date always gets exactly one kind.
pub fn classify(date: NaiveDate) -> DayKind {
    if is_weekend(date) {
        return DayKind::Weekend;
    }
    if let Some(reason) = lookup(SPECIAL_CLOSURES, date) {
        return DayKind::SpecialClosure(reason);
    }
    if let Some(name) = holiday_name(date) {
        return DayKind::Holiday(name);
    }
    if close_time(date) < REGULAR_CLOSE {
        return DayKind::EarlyClose;
    }
    DayKind::Regular
}

/// The trading session on `date`, or `None` when the exchange is closed all
/// day (weekend, holiday or special closure). `open` includes the few
/// historical delayed opens, so nothing is assumed tradable before the bell.
pub fn session(date: NaiveDate) -> Option<Session> {
    let early_close = match classify(date) {
        DayKind::Regular => false,
        DayKind::EarlyClose => true,
        DayKind::Weekend | DayKind::Holiday(_) | DayKind::SpecialClosure(_) => return None,
    };
    let open_local = lookup(LATE_OPENS, date).unwrap_or(REGULAR_OPEN);
    Some(Session {
        date,
        open: new_york_to_utc(date, open_local),
        close: new_york_to_utc(date, close_time(date)),
        early_close,
    })
}

/// All sessions whose date lies in `from..=to`, in ascending order; empty if
/// `from > to`. Both ends are inclusive so a single day is `sessions(d, d)`.
pub fn sessions(from: NaiveDate, to: NaiveDate) -> Vec<Session> {
    // `successors` rather than `iter_days`, which never yields `NaiveDate::MAX`.
    std::iter::successors(Some(from), NaiveDate::succ_opt)
        .take_while(|date| *date <= to)
        .filter_map(session)
        .collect()
}

/// Whether the core market is open at `at` (open <= at < close).
pub fn is_open(at: DateTime<Utc>) -> bool {
    session_containing(at).is_some()
}

/// The session that is open at `at`, if any.
pub fn session_containing(at: DateTime<Utc>) -> Option<Session> {
    // New York is always 4–5 hours behind UTC (and never more than 8), so
    // every session (09:30–16:00 local at the latest) starts and ends within
    // the UTC day of the same date. Looking up the UTC date therefore finds the
    // only candidate, and avoids converting `at` to local time, which chrono
    // cannot do without panicking at the very ends of its representable range.
    session(at.date_naive()).filter(|s| s.contains(at))
}

/// The first session on `date` or later.
///
/// The search is bounded (the longest closure since 2000, 9/11 plus a
/// weekend, is six days), so it is cheap for any year. Only in the last days
/// of chrono's representable range, where no later session can exist, does it
/// fall back to the latest session before `date` instead of panicking.
pub fn next_session_on_or_after(date: NaiveDate) -> Session {
    scan(Some(date), NaiveDate::succ_opt)
        .or_else(|| scan(date.pred_opt(), NaiveDate::pred_opt))
        .unwrap_or_else(|| fallback_session(date))
}

/// The last session strictly before `date`.
///
/// Bounded like [`next_session_on_or_after`]; only in the first days of
/// chrono's representable range does it fall back to the first session on or
/// after `date` instead of panicking.
pub fn previous_session_before(date: NaiveDate) -> Session {
    scan(date.pred_opt(), NaiveDate::pred_opt)
        .or_else(|| scan(Some(date), NaiveDate::succ_opt))
        .unwrap_or_else(|| fallback_session(date))
}

// ---------------------------------------------------------------------------
// Session times
// ---------------------------------------------------------------------------

/// Builds a constant time; evaluated at compile time, so an invalid literal is
/// a build error rather than a runtime panic.
const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(time) => time,
        None => panic!("invalid constant time"),
    }
}

/// Builds a constant date; compile-time checked like [`hm`].
const fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("invalid constant date"),
    }
}

const REGULAR_OPEN: NaiveTime = hm(9, 30);
const REGULAR_CLOSE: NaiveTime = hm(16, 0);
/// NYSE's standard early close since 1993.
const EARLY_CLOSE: NaiveTime = hm(13, 0);

/// First year in which the early close for a Thursday Independence Day moved
/// from Friday July 5 to Wednesday July 3.
const JULY_THIRD_WEDNESDAY_FROM: i32 = 2013;
/// NYSE first closed for MLK Day in 1998.
const MLK_FROM: i32 = 1998;
/// Juneteenth became a federal holiday in 2021; NYSE first closed for it in 2022.
const JUNETEENTH_FROM: i32 = 2022;

/// Ad-hoc full-day closures: weekdays the exchange did not open although no
/// rule says so. These come from exchange announcements and cannot be
/// derived, so they live here as reviewed data.
const SPECIAL_CLOSURES: &[(NaiveDate, &str)] = &[
    (ymd(2001, 9, 11), "September 11 attacks"),
    (ymd(2001, 9, 12), "September 11 attacks"),
    (ymd(2001, 9, 13), "September 11 attacks"),
    (ymd(2001, 9, 14), "September 11 attacks"),
    (
        ymd(2004, 6, 11),
        "National Day of Mourning for President Ronald Reagan",
    ),
    (
        ymd(2007, 1, 2),
        "National Day of Mourning for President Gerald R. Ford",
    ),
    (ymd(2012, 10, 29), "Hurricane Sandy"),
    (ymd(2012, 10, 30), "Hurricane Sandy"),
    (
        ymd(2018, 12, 5),
        "National Day of Mourning for President George H. W. Bush",
    ),
    (
        ymd(2025, 1, 9),
        "National Day of Mourning for President Jimmy Carter",
    ),
];

/// Ad-hoc early closes (New York close time) that no recurring rule
/// produces. 2003-12-26 was a scheduled 13:00 close on the Friday after
/// Christmas (not repeated in 2008, 2014 or 2025); 2005-06-01 ended at 15:56
/// after a systems communication problem.
const SPECIAL_EARLY_CLOSES: &[(NaiveDate, NaiveTime)] =
    &[(ymd(2003, 12, 26), EARLY_CLOSE), (ymd(2005, 6, 1), hm(15, 56))];

/// Ad-hoc delayed opens (New York open time), mostly moments of silence.
/// These days still closed at 16:00, so they classify as `Regular`; keeping
/// them lets back-tests avoid "filling" orders before the market opened.
const LATE_OPENS: &[(NaiveDate, NaiveTime)] = &[
    (ymd(2001, 9, 17), hm(9, 33)),
    (ymd(2001, 10, 8), hm(9, 31)),
    (ymd(2002, 9, 11), hm(12, 0)),
    (ymd(2003, 3, 20), hm(9, 32)),
    (ymd(2004, 6, 7), hm(9, 32)),
    (ymd(2006, 12, 27), hm(9, 32)),
];

fn lookup<T: Copy>(table: &[(NaiveDate, T)], date: NaiveDate) -> Option<T> {
    table
        .iter()
        .find(|(entry, _)| *entry == date)
        .map(|(_, value)| *value)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// New York closing time for a trading day. Only meaningful for dates that
/// are not weekends, holidays or closures; callers check that first.
fn close_time(date: NaiveDate) -> NaiveTime {
    if let Some(close) = lookup(SPECIAL_EARLY_CLOSES, date) {
        return close;
    }
    if is_scheduled_early_close(date) {
        return EARLY_CLOSE;
    }
    REGULAR_CLOSE
}

/// The recurring 13:00 closes. Holidays are checked before this is consulted,
/// which is what turns e.g. a Friday July 3 or Friday December 24 into a full
/// holiday rather than an early close.
fn is_scheduled_early_close(date: NaiveDate) -> bool {
    let year = date.year();
    match (date.month(), date.day(), date.weekday()) {
        // Eve of Independence Day. When July 4 is a Thursday the half day was
        // the Friday after until 2012 and the Wednesday before since 2013.
        (7, 3, Weekday::Mon | Weekday::Tue | Weekday::Thu) => true,
        (7, 3, Weekday::Wed) => year >= JULY_THIRD_WEDNESDAY_FROM,
        (7, 5, Weekday::Fri) => year < JULY_THIRD_WEDNESDAY_FROM,
        // Day after Thanksgiving.
        (11, _, Weekday::Fri) => thanksgiving(year).and_then(|t| t.succ_opt()) == Some(date),
        // Christmas Eve, unless it is the Friday holiday for a Saturday Christmas.
        (12, 24, Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu) => true,
        _ => false,
    }
}

/// Converts a New York wall-clock time to UTC.
///
/// Session times are never inside a DST transition (those happen at 02:00
/// local), so the local time always maps to exactly one instant. The fallback
/// to Eastern Standard Time only keeps the function total if the zone data
/// ever disagreed, or chrono ran out of range at its extreme dates.
fn new_york_to_utc(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match New_York.from_local_datetime(&local).earliest() {
        Some(instant) => instant.with_timezone(&Utc),
        None => {
            let est = local.checked_add_signed(TimeDelta::hours(5)).unwrap_or(local);
            Utc.from_utc_datetime(&est)
        }
    }
}

/// Walks from `start` with `step` until a session is found; `None` if the
/// date range runs out or no session is found within the bound.
fn scan(start: Option<NaiveDate>, step: fn(&NaiveDate) -> Option<NaiveDate>) -> Option<Session> {
    // Far more than the longest run of closed days (six, in September 2001),
    // while still bounding work for any input.
    const SEARCH_LIMIT_DAYS: usize = 31;
    let mut current = start;
    for _ in 0..SEARCH_LIMIT_DAYS {
        let date = current?;
        if let Some(found) = session(date) {
            return Some(found);
        }
        current = step(&date);
    }
    None
}

/// Never reached in practice (a session exists within a month of every
/// representable date); it only keeps the search functions total without a
/// panic path, by reporting regular hours for the requested date.
fn fallback_session(date: NaiveDate) -> Session {
    Session {
        date,
        open: new_york_to_utc(date, REGULAR_OPEN),
        close: new_york_to_utc(date, REGULAR_CLOSE),
        early_close: false,
    }
}

// ---------------------------------------------------------------------------
// Holiday rules
// ---------------------------------------------------------------------------

const NEW_YEARS_DAY: &str = "New Year's Day";
const MLK_DAY: &str = "Martin Luther King Jr. Day";
const WASHINGTONS_BIRTHDAY: &str = "Washington's Birthday";
const GOOD_FRIDAY: &str = "Good Friday";
const MEMORIAL_DAY: &str = "Memorial Day";
const JUNETEENTH: &str = "Juneteenth National Independence Day";
const INDEPENDENCE_DAY: &str = "Independence Day";
const LABOR_DAY: &str = "Labor Day";
const THANKSGIVING_DAY: &str = "Thanksgiving Day";
const CHRISTMAS_DAY: &str = "Christmas Day";

/// Name of the recurring holiday observed on `date`, if any.
///
/// Every observed date falls in the same calendar year as the holiday it
/// observes (New Year's Day on a Saturday is *not* moved back to December 31,
/// per NYSE Rule 7.2's exception for year-end), so only `date.year()` needs
/// checking.
fn holiday_name(date: NaiveDate) -> Option<&'static str> {
    let year = date.year();
    let candidates: [(Option<NaiveDate>, &'static str); 10] = [
        (new_years_day_observed(year), NEW_YEARS_DAY),
        (
            (year >= MLK_FROM)
                .then(|| nth_weekday(year, 1, Weekday::Mon, 3))
                .flatten(),
            MLK_DAY,
        ),
        (nth_weekday(year, 2, Weekday::Mon, 3), WASHINGTONS_BIRTHDAY),
        (
            easter_sunday(year).and_then(|e| e.checked_sub_days(Days::new(2))),
            GOOD_FRIDAY,
        ),
        (last_weekday(year, 5, Weekday::Mon), MEMORIAL_DAY),
        (
            (year >= JUNETEENTH_FROM)
                .then(|| observed(NaiveDate::from_ymd_opt(year, 6, 19)))
                .flatten(),
            JUNETEENTH,
        ),
        (observed(NaiveDate::from_ymd_opt(year, 7, 4)), INDEPENDENCE_DAY),
        (nth_weekday(year, 9, Weekday::Mon, 1), LABOR_DAY),
        (thanksgiving(year), THANKSGIVING_DAY),
        (observed(NaiveDate::from_ymd_opt(year, 12, 25)), CHRISTMAS_DAY),
    ];
    candidates
        .into_iter()
        .find(|(observed_on, _)| *observed_on == Some(date))
        .map(|(_, name)| name)
}

/// Standard US observance: a Saturday holiday is taken the Friday before, a
/// Sunday holiday the Monday after.
fn observed(date: Option<NaiveDate>) -> Option<NaiveDate> {
    let date = date?;
    match date.weekday() {
        Weekday::Sat => date.pred_opt(),
        Weekday::Sun => date.succ_opt(),
        _ => Some(date),
    }
}

/// New Year's Day moves forward from a Sunday but is not observed at all when
/// it falls on a Saturday: the Friday before is the last day of the
/// accounting year and NYSE stays open (e.g. 2010-12-31, 2021-12-31).
fn new_years_day_observed(year: i32) -> Option<NaiveDate> {
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1)?;
    match jan1.weekday() {
        Weekday::Sat => None,
        Weekday::Sun => jan1.succ_opt(),
        _ => Some(jan1),
    }
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    // The fifth occurrence exists in some months only; the fourth always does.
    nth_weekday(year, month, weekday, 5).or_else(|| nth_weekday(year, month, weekday, 4))
}

fn thanksgiving(year: i32) -> Option<NaiveDate> {
    nth_weekday(year, 11, Weekday::Thu, 4)
}

/// Gregorian Easter Sunday (anonymous Gregorian / Meeus–Jones–Butcher
/// algorithm). Euclidean division keeps it well-defined for every year chrono
/// can represent, including negative ones.
fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: u32, day: u32) -> NaiveDate {
        ymd(year, month, day)
    }

    #[test]
    fn easter_matches_known_dates() {
        // Includes the extreme dates of the Gregorian cycle (March 22, April 25).
        let known = [
            d(2000, 4, 23),
            d(2008, 3, 23),
            d(2011, 4, 24),
            d(2019, 4, 21),
            d(2024, 3, 31),
            d(2025, 4, 20),
            d(2026, 4, 5),
            d(2038, 4, 25),
            d(2285, 3, 22),
            d(1943, 4, 25),
            d(1818, 3, 22),
        ];
        for date in known {
            assert_eq!(easter_sunday(date.year()), Some(date), "{date}");
        }
    }

    #[test]
    fn saturday_new_year_is_not_observed_on_friday() {
        assert_eq!(classify(d(2010, 12, 31)), DayKind::Regular);
        assert_eq!(classify(d(2021, 12, 31)), DayKind::Regular);
        assert_eq!(classify(d(2027, 12, 31)), DayKind::Regular);
        // ...whereas a Sunday New Year's Day moves to Monday.
        assert_eq!(classify(d(2023, 1, 2)), DayKind::Holiday(NEW_YEARS_DAY));
    }

    #[test]
    fn independence_day_early_close_variants() {
        // July 4 on a Thursday: Friday half day until 2012, Wednesday since 2013.
        assert_eq!(classify(d(2002, 7, 3)), DayKind::Regular);
        assert_eq!(classify(d(2002, 7, 5)), DayKind::EarlyClose);
        assert_eq!(classify(d(2013, 7, 3)), DayKind::EarlyClose);
        assert_eq!(classify(d(2013, 7, 5)), DayKind::Regular);
        assert_eq!(classify(d(2024, 7, 3)), DayKind::EarlyClose);
        // July 4 on a Saturday: Friday is the holiday, Thursday is a full day.
        assert_eq!(classify(d(2026, 7, 3)), DayKind::Holiday(INDEPENDENCE_DAY));
        assert_eq!(classify(d(2026, 7, 2)), DayKind::Regular);
    }

    #[test]
    fn late_open_keeps_regular_close() {
        let s = session(d(2002, 9, 11)).expect("2002-09-11 traded from noon");
        assert_eq!(classify(s.date), DayKind::Regular);
        assert_eq!(s.open, Utc.with_ymd_and_hms(2002, 9, 11, 16, 0, 0).unwrap());
        assert_eq!(s.close, Utc.with_ymd_and_hms(2002, 9, 11, 20, 0, 0).unwrap());
        assert!(!s.early_close);
    }

    #[test]
    fn odd_early_close_time_is_reported() {
        let s = session(d(2005, 6, 1)).expect("2005-06-01 traded");
        assert!(s.early_close);
        assert_eq!(s.close, Utc.with_ymd_and_hms(2005, 6, 1, 19, 56, 0).unwrap());
    }

    #[test]
    fn extreme_dates_do_not_panic() {
        for date in [
            NaiveDate::MIN,
            NaiveDate::MAX,
            d(-1, 1, 1),
            d(0, 12, 31),
            d(9999, 12, 24),
        ] {
            let _ = classify(date);
            let _ = session(date);
            let _ = sessions(date, date);
            let next = next_session_on_or_after(date);
            let prev = previous_session_before(date);
            assert!(session(next.date).is_some(), "{date}: next is a real session");
            assert!(session(prev.date).is_some(), "{date}: prev is a real session");
        }
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let _ = is_open(at);
            let _ = session_containing(at);
        }
        assert!(sessions(NaiveDate::MAX, NaiveDate::MIN).is_empty());
    }

    #[test]
    fn search_falls_back_at_the_ends_of_the_range() {
        let last = next_session_on_or_after(NaiveDate::MAX);
        assert!(last.date <= NaiveDate::MAX);
        let first = previous_session_before(NaiveDate::MIN);
        assert!(first.date >= NaiveDate::MIN);
    }

    #[test]
    fn session_serializes_with_utc_times() {
        let s = session(d(2026, 11, 27)).expect("day after Thanksgiving trades");
        let json = serde_json::to_value(s).expect("Session serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "date": "2026-11-27",
                "open": "2026-11-27T14:30:00Z",
                "close": "2026-11-27T18:00:00Z",
                "early_close": true,
            })
        );
    }
}
