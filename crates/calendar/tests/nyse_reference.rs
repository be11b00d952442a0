//! Day-by-day check of the calendar against an independent reference table.
//!
//! `REFERENCE` lists every weekday from 2000-01-01 through 2035-12-31 on which
//! the NYSE core session deviates from a plain 09:30–16:00 New York session:
//! holidays (with the name the crate reports), ad-hoc closures, early closes
//! and delayed opens (New York local times).
//!
//! Provenance: the dates and times were taken from the NYSE calendar of
//! `pandas_market_calendars` 5.5.0 (`NYSEExchangeCalendar.schedule` plus its
//! named regular holidays), and the closed days and 13:00 closes were
//! cross-checked against `exchange_calendars` 4.13.2 (`XNYS`), which agrees on
//! every one; it omits only the delayed opens and the 2005-06-01 15:56 close,
//! which come from the NYSE historical closings list that
//! `pandas_market_calendars` cites. The table is literal data — it is not
//! produced by this crate's rules — so a rule bug shows up as a mismatch here.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use keel_calendar::{classify, session, sessions, DayKind, SUPPORTED_FROM_YEAR, SUPPORTED_TO_YEAR};

#[derive(Debug, Clone, Copy)]
enum Expect {
    Holiday(&'static str),
    Closure(&'static str),
    /// New York close time.
    EarlyClose(&'static str),
    /// New York open time.
    LateOpen(&'static str),
}
use Expect::{Closure, EarlyClose, Holiday, LateOpen};

#[rustfmt::skip]
const REFERENCE: &[(&str, Expect)] = &[
    // 2000
    ("2000-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2000-02-21", Holiday("Washington's Birthday")),
    ("2000-04-21", Holiday("Good Friday")),
    ("2000-05-29", Holiday("Memorial Day")),
    ("2000-07-03", EarlyClose("13:00")),
    ("2000-07-04", Holiday("Independence Day")),
    ("2000-09-04", Holiday("Labor Day")),
    ("2000-11-23", Holiday("Thanksgiving Day")),
    ("2000-11-24", EarlyClose("13:00")),
    ("2000-12-25", Holiday("Christmas Day")),
    // 2001
    ("2001-01-01", Holiday("New Year's Day")),
    ("2001-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2001-02-19", Holiday("Washington's Birthday")),
    ("2001-04-13", Holiday("Good Friday")),
    ("2001-05-28", Holiday("Memorial Day")),
    ("2001-07-03", EarlyClose("13:00")),
    ("2001-07-04", Holiday("Independence Day")),
    ("2001-09-03", Holiday("Labor Day")),
    ("2001-09-11", Closure("September 11 attacks")),
    ("2001-09-12", Closure("September 11 attacks")),
    ("2001-09-13", Closure("September 11 attacks")),
    ("2001-09-14", Closure("September 11 attacks")),
    ("2001-09-17", LateOpen("09:33")),
    ("2001-10-08", LateOpen("09:31")),
    ("2001-11-22", Holiday("Thanksgiving Day")),
    ("2001-11-23", EarlyClose("13:00")),
    ("2001-12-24", EarlyClose("13:00")),
    ("2001-12-25", Holiday("Christmas Day")),
    // 2002
    ("2002-01-01", Holiday("New Year's Day")),
    ("2002-01-21", Holiday("Martin Luther King Jr. Day")),
    ("2002-02-18", Holiday("Washington's Birthday")),
    ("2002-03-29", Holiday("Good Friday")),
    ("2002-05-27", Holiday("Memorial Day")),
    ("2002-07-04", Holiday("Independence Day")),
    ("2002-07-05", EarlyClose("13:00")),
    ("2002-09-02", Holiday("Labor Day")),
    ("2002-09-11", LateOpen("12:00")),
    ("2002-11-28", Holiday("Thanksgiving Day")),
    ("2002-11-29", EarlyClose("13:00")),
    ("2002-12-24", EarlyClose("13:00")),
    ("2002-12-25", Holiday("Christmas Day")),
    // 2003
    ("2003-01-01", Holiday("New Year's Day")),
    ("2003-01-20", Holiday("Martin Luther King Jr. Day")),
    ("2003-02-17", Holiday("Washington's Birthday")),
    ("2003-03-20", LateOpen("09:32")),
    ("2003-04-18", Holiday("Good Friday")),
    ("2003-05-26", Holiday("Memorial Day")),
    ("2003-07-03", EarlyClose("13:00")),
    ("2003-07-04", Holiday("Independence Day")),
    ("2003-09-01", Holiday("Labor Day")),
    ("2003-11-27", Holiday("Thanksgiving Day")),
    ("2003-11-28", EarlyClose("13:00")),
    ("2003-12-24", EarlyClose("13:00")),
    ("2003-12-25", Holiday("Christmas Day")),
    ("2003-12-26", EarlyClose("13:00")),
    // 2004
    ("2004-01-01", Holiday("New Year's Day")),
    ("2004-01-19", Holiday("Martin Luther King Jr. Day")),
    ("2004-02-16", Holiday("Washington's Birthday")),
    ("2004-04-09", Holiday("Good Friday")),
    ("2004-05-31", Holiday("Memorial Day")),
    ("2004-06-07", LateOpen("09:32")),
    ("2004-06-11", Closure("National Day of Mourning for President Ronald Reagan")),
    ("2004-07-05", Holiday("Independence Day")),
    ("2004-09-06", Holiday("Labor Day")),
    ("2004-11-25", Holiday("Thanksgiving Day")),
    ("2004-11-26", EarlyClose("13:00")),
    ("2004-12-24", Holiday("Christmas Day")),
    // 2005
    ("2005-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2005-02-21", Holiday("Washington's Birthday")),
    ("2005-03-25", Holiday("Good Friday")),
    ("2005-05-30", Holiday("Memorial Day")),
    ("2005-06-01", EarlyClose("15:56")),
    ("2005-07-04", Holiday("Independence Day")),
    ("2005-09-05", Holiday("Labor Day")),
    ("2005-11-24", Holiday("Thanksgiving Day")),
    ("2005-11-25", EarlyClose("13:00")),
    ("2005-12-26", Holiday("Christmas Day")),
    // 2006
    ("2006-01-02", Holiday("New Year's Day")),
    ("2006-01-16", Holiday("Martin Luther King Jr. Day")),
    ("2006-02-20", Holiday("Washington's Birthday")),
    ("2006-04-14", Holiday("Good Friday")),
    ("2006-05-29", Holiday("Memorial Day")),
    ("2006-07-03", EarlyClose("13:00")),
    ("2006-07-04", Holiday("Independence Day")),
    ("2006-09-04", Holiday("Labor Day")),
    ("2006-11-23", Holiday("Thanksgiving Day")),
    ("2006-11-24", EarlyClose("13:00")),
    ("2006-12-25", Holiday("Christmas Day")),
    ("2006-12-27", LateOpen("09:32")),
    // 2007
    ("2007-01-01", Holiday("New Year's Day")),
    ("2007-01-02", Closure("National Day of Mourning for President Gerald R. Ford")),
    ("2007-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2007-02-19", Holiday("Washington's Birthday")),
    ("2007-04-06", Holiday("Good Friday")),
    ("2007-05-28", Holiday("Memorial Day")),
    ("2007-07-03", EarlyClose("13:00")),
    ("2007-07-04", Holiday("Independence Day")),
    ("2007-09-03", Holiday("Labor Day")),
    ("2007-11-22", Holiday("Thanksgiving Day")),
    ("2007-11-23", EarlyClose("13:00")),
    ("2007-12-24", EarlyClose("13:00")),
    ("2007-12-25", Holiday("Christmas Day")),
    // 2008
    ("2008-01-01", Holiday("New Year's Day")),
    ("2008-01-21", Holiday("Martin Luther King Jr. Day")),
    ("2008-02-18", Holiday("Washington's Birthday")),
    ("2008-03-21", Holiday("Good Friday")),
    ("2008-05-26", Holiday("Memorial Day")),
    ("2008-07-03", EarlyClose("13:00")),
    ("2008-07-04", Holiday("Independence Day")),
    ("2008-09-01", Holiday("Labor Day")),
    ("2008-11-27", Holiday("Thanksgiving Day")),
    ("2008-11-28", EarlyClose("13:00")),
    ("2008-12-24", EarlyClose("13:00")),
    ("2008-12-25", Holiday("Christmas Day")),
    // 2009
    ("2009-01-01", Holiday("New Year's Day")),
    ("2009-01-19", Holiday("Martin Luther King Jr. Day")),
    ("2009-02-16", Holiday("Washington's Birthday")),
    ("2009-04-10", Holiday("Good Friday")),
    ("2009-05-25", Holiday("Memorial Day")),
    ("2009-07-03", Holiday("Independence Day")),
    ("2009-09-07", Holiday("Labor Day")),
    ("2009-11-26", Holiday("Thanksgiving Day")),
    ("2009-11-27", EarlyClose("13:00")),
    ("2009-12-24", EarlyClose("13:00")),
    ("2009-12-25", Holiday("Christmas Day")),
    // 2010
    ("2010-01-01", Holiday("New Year's Day")),
    ("2010-01-18", Holiday("Martin Luther King Jr. Day")),
    ("2010-02-15", Holiday("Washington's Birthday")),
    ("2010-04-02", Holiday("Good Friday")),
    ("2010-05-31", Holiday("Memorial Day")),
    ("2010-07-05", Holiday("Independence Day")),
    ("2010-09-06", Holiday("Labor Day")),
    ("2010-11-25", Holiday("Thanksgiving Day")),
    ("2010-11-26", EarlyClose("13:00")),
    ("2010-12-24", Holiday("Christmas Day")),
    // 2011
    ("2011-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2011-02-21", Holiday("Washington's Birthday")),
    ("2011-04-22", Holiday("Good Friday")),
    ("2011-05-30", Holiday("Memorial Day")),
    ("2011-07-04", Holiday("Independence Day")),
    ("2011-09-05", Holiday("Labor Day")),
    ("2011-11-24", Holiday("Thanksgiving Day")),
    ("2011-11-25", EarlyClose("13:00")),
    ("2011-12-26", Holiday("Christmas Day")),
    // 2012
    ("2012-01-02", Holiday("New Year's Day")),
    ("2012-01-16", Holiday("Martin Luther King Jr. Day")),
    ("2012-02-20", Holiday("Washington's Birthday")),
    ("2012-04-06", Holiday("Good Friday")),
    ("2012-05-28", Holiday("Memorial Day")),
    ("2012-07-03", EarlyClose("13:00")),
    ("2012-07-04", Holiday("Independence Day")),
    ("2012-09-03", Holiday("Labor Day")),
    ("2012-10-29", Closure("Hurricane Sandy")),
    ("2012-10-30", Closure("Hurricane Sandy")),
    ("2012-11-22", Holiday("Thanksgiving Day")),
    ("2012-11-23", EarlyClose("13:00")),
    ("2012-12-24", EarlyClose("13:00")),
    ("2012-12-25", Holiday("Christmas Day")),
    // 2013
    ("2013-01-01", Holiday("New Year's Day")),
    ("2013-01-21", Holiday("Martin Luther King Jr. Day")),
    ("2013-02-18", Holiday("Washington's Birthday")),
    ("2013-03-29", Holiday("Good Friday")),
    ("2013-05-27", Holiday("Memorial Day")),
    ("2013-07-03", EarlyClose("13:00")),
    ("2013-07-04", Holiday("Independence Day")),
    ("2013-09-02", Holiday("Labor Day")),
    ("2013-11-28", Holiday("Thanksgiving Day")),
    ("2013-11-29", EarlyClose("13:00")),
    ("2013-12-24", EarlyClose("13:00")),
    ("2013-12-25", Holiday("Christmas Day")),
    // 2014
    ("2014-01-01", Holiday("New Year's Day")),
    ("2014-01-20", Holiday("Martin Luther King Jr. Day")),
    ("2014-02-17", Holiday("Washington's Birthday")),
    ("2014-04-18", Holiday("Good Friday")),
    ("2014-05-26", Holiday("Memorial Day")),
    ("2014-07-03", EarlyClose("13:00")),
    ("2014-07-04", Holiday("Independence Day")),
    ("2014-09-01", Holiday("Labor Day")),
    ("2014-11-27", Holiday("Thanksgiving Day")),
    ("2014-11-28", EarlyClose("13:00")),
    ("2014-12-24", EarlyClose("13:00")),
    ("2014-12-25", Holiday("Christmas Day")),
    // 2015
    ("2015-01-01", Holiday("New Year's Day")),
    ("2015-01-19", Holiday("Martin Luther King Jr. Day")),
    ("2015-02-16", Holiday("Washington's Birthday")),
    ("2015-04-03", Holiday("Good Friday")),
    ("2015-05-25", Holiday("Memorial Day")),
    ("2015-07-03", Holiday("Independence Day")),
    ("2015-09-07", Holiday("Labor Day")),
    ("2015-11-26", Holiday("Thanksgiving Day")),
    ("2015-11-27", EarlyClose("13:00")),
    ("2015-12-24", EarlyClose("13:00")),
    ("2015-12-25", Holiday("Christmas Day")),
    // 2016
    ("2016-01-01", Holiday("New Year's Day")),
    ("2016-01-18", Holiday("Martin Luther King Jr. Day")),
    ("2016-02-15", Holiday("Washington's Birthday")),
    ("2016-03-25", Holiday("Good Friday")),
    ("2016-05-30", Holiday("Memorial Day")),
    ("2016-07-04", Holiday("Independence Day")),
    ("2016-09-05", Holiday("Labor Day")),
    ("2016-11-24", Holiday("Thanksgiving Day")),
    ("2016-11-25", EarlyClose("13:00")),
    ("2016-12-26", Holiday("Christmas Day")),
    // 2017
    ("2017-01-02", Holiday("New Year's Day")),
    ("2017-01-16", Holiday("Martin Luther King Jr. Day")),
    ("2017-02-20", Holiday("Washington's Birthday")),
    ("2017-04-14", Holiday("Good Friday")),
    ("2017-05-29", Holiday("Memorial Day")),
    ("2017-07-03", EarlyClose("13:00")),
    ("2017-07-04", Holiday("Independence Day")),
    ("2017-09-04", Holiday("Labor Day")),
    ("2017-11-23", Holiday("Thanksgiving Day")),
    ("2017-11-24", EarlyClose("13:00")),
    ("2017-12-25", Holiday("Christmas Day")),
    // 2018
    ("2018-01-01", Holiday("New Year's Day")),
    ("2018-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2018-02-19", Holiday("Washington's Birthday")),
    ("2018-03-30", Holiday("Good Friday")),
    ("2018-05-28", Holiday("Memorial Day")),
    ("2018-07-03", EarlyClose("13:00")),
    ("2018-07-04", Holiday("Independence Day")),
    ("2018-09-03", Holiday("Labor Day")),
    ("2018-11-22", Holiday("Thanksgiving Day")),
    ("2018-11-23", EarlyClose("13:00")),
    ("2018-12-05", Closure("National Day of Mourning for President George H. W. Bush")),
    ("2018-12-24", EarlyClose("13:00")),
    ("2018-12-25", Holiday("Christmas Day")),
    // 2019
    ("2019-01-01", Holiday("New Year's Day")),
    ("2019-01-21", Holiday("Martin Luther King Jr. Day")),
    ("2019-02-18", Holiday("Washington's Birthday")),
    ("2019-04-19", Holiday("Good Friday")),
    ("2019-05-27", Holiday("Memorial Day")),
    ("2019-07-03", EarlyClose("13:00")),
    ("2019-07-04", Holiday("Independence Day")),
    ("2019-09-02", Holiday("Labor Day")),
    ("2019-11-28", Holiday("Thanksgiving Day")),
    ("2019-11-29", EarlyClose("13:00")),
    ("2019-12-24", EarlyClose("13:00")),
    ("2019-12-25", Holiday("Christmas Day")),
    // 2020
    ("2020-01-01", Holiday("New Year's Day")),
    ("2020-01-20", Holiday("Martin Luther King Jr. Day")),
    ("2020-02-17", Holiday("Washington's Birthday")),
    ("2020-04-10", Holiday("Good Friday")),
    ("2020-05-25", Holiday("Memorial Day")),
    ("2020-07-03", Holiday("Independence Day")),
    ("2020-09-07", Holiday("Labor Day")),
    ("2020-11-26", Holiday("Thanksgiving Day")),
    ("2020-11-27", EarlyClose("13:00")),
    ("2020-12-24", EarlyClose("13:00")),
    ("2020-12-25", Holiday("Christmas Day")),
    // 2021
    ("2021-01-01", Holiday("New Year's Day")),
    ("2021-01-18", Holiday("Martin Luther King Jr. Day")),
    ("2021-02-15", Holiday("Washington's Birthday")),
    ("2021-04-02", Holiday("Good Friday")),
    ("2021-05-31", Holiday("Memorial Day")),
    ("2021-07-05", Holiday("Independence Day")),
    ("2021-09-06", Holiday("Labor Day")),
    ("2021-11-25", Holiday("Thanksgiving Day")),
    ("2021-11-26", EarlyClose("13:00")),
    ("2021-12-24", Holiday("Christmas Day")),
    // 2022
    ("2022-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2022-02-21", Holiday("Washington's Birthday")),
    ("2022-04-15", Holiday("Good Friday")),
    ("2022-05-30", Holiday("Memorial Day")),
    ("2022-06-20", Holiday("Juneteenth National Independence Day")),
    ("2022-07-04", Holiday("Independence Day")),
    ("2022-09-05", Holiday("Labor Day")),
    ("2022-11-24", Holiday("Thanksgiving Day")),
    ("2022-11-25", EarlyClose("13:00")),
    ("2022-12-26", Holiday("Christmas Day")),
    // 2023
    ("2023-01-02", Holiday("New Year's Day")),
    ("2023-01-16", Holiday("Martin Luther King Jr. Day")),
    ("2023-02-20", Holiday("Washington's Birthday")),
    ("2023-04-07", Holiday("Good Friday")),
    ("2023-05-29", Holiday("Memorial Day")),
    ("2023-06-19", Holiday("Juneteenth National Independence Day")),
    ("2023-07-03", EarlyClose("13:00")),
    ("2023-07-04", Holiday("Independence Day")),
    ("2023-09-04", Holiday("Labor Day")),
    ("2023-11-23", Holiday("Thanksgiving Day")),
    ("2023-11-24", EarlyClose("13:00")),
    ("2023-12-25", Holiday("Christmas Day")),
    // 2024
    ("2024-01-01", Holiday("New Year's Day")),
    ("2024-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2024-02-19", Holiday("Washington's Birthday")),
    ("2024-03-29", Holiday("Good Friday")),
    ("2024-05-27", Holiday("Memorial Day")),
    ("2024-06-19", Holiday("Juneteenth National Independence Day")),
    ("2024-07-03", EarlyClose("13:00")),
    ("2024-07-04", Holiday("Independence Day")),
    ("2024-09-02", Holiday("Labor Day")),
    ("2024-11-28", Holiday("Thanksgiving Day")),
    ("2024-11-29", EarlyClose("13:00")),
    ("2024-12-24", EarlyClose("13:00")),
    ("2024-12-25", Holiday("Christmas Day")),
    // 2025
    ("2025-01-01", Holiday("New Year's Day")),
    ("2025-01-09", Closure("National Day of Mourning for President Jimmy Carter")),
    ("2025-01-20", Holiday("Martin Luther King Jr. Day")),
    ("2025-02-17", Holiday("Washington's Birthday")),
    ("2025-04-18", Holiday("Good Friday")),
    ("2025-05-26", Holiday("Memorial Day")),
    ("2025-06-19", Holiday("Juneteenth National Independence Day")),
    ("2025-07-03", EarlyClose("13:00")),
    ("2025-07-04", Holiday("Independence Day")),
    ("2025-09-01", Holiday("Labor Day")),
    ("2025-11-27", Holiday("Thanksgiving Day")),
    ("2025-11-28", EarlyClose("13:00")),
    ("2025-12-24", EarlyClose("13:00")),
    ("2025-12-25", Holiday("Christmas Day")),
    // 2026
    ("2026-01-01", Holiday("New Year's Day")),
    ("2026-01-19", Holiday("Martin Luther King Jr. Day")),
    ("2026-02-16", Holiday("Washington's Birthday")),
    ("2026-04-03", Holiday("Good Friday")),
    ("2026-05-25", Holiday("Memorial Day")),
    ("2026-06-19", Holiday("Juneteenth National Independence Day")),
    ("2026-07-03", Holiday("Independence Day")),
    ("2026-09-07", Holiday("Labor Day")),
    ("2026-11-26", Holiday("Thanksgiving Day")),
    ("2026-11-27", EarlyClose("13:00")),
    ("2026-12-24", EarlyClose("13:00")),
    ("2026-12-25", Holiday("Christmas Day")),
    // 2027
    ("2027-01-01", Holiday("New Year's Day")),
    ("2027-01-18", Holiday("Martin Luther King Jr. Day")),
    ("2027-02-15", Holiday("Washington's Birthday")),
    ("2027-03-26", Holiday("Good Friday")),
    ("2027-05-31", Holiday("Memorial Day")),
    ("2027-06-18", Holiday("Juneteenth National Independence Day")),
    ("2027-07-05", Holiday("Independence Day")),
    ("2027-09-06", Holiday("Labor Day")),
    ("2027-11-25", Holiday("Thanksgiving Day")),
    ("2027-11-26", EarlyClose("13:00")),
    ("2027-12-24", Holiday("Christmas Day")),
    // 2028
    ("2028-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2028-02-21", Holiday("Washington's Birthday")),
    ("2028-04-14", Holiday("Good Friday")),
    ("2028-05-29", Holiday("Memorial Day")),
    ("2028-06-19", Holiday("Juneteenth National Independence Day")),
    ("2028-07-03", EarlyClose("13:00")),
    ("2028-07-04", Holiday("Independence Day")),
    ("2028-09-04", Holiday("Labor Day")),
    ("2028-11-23", Holiday("Thanksgiving Day")),
    ("2028-11-24", EarlyClose("13:00")),
    ("2028-12-25", Holiday("Christmas Day")),
    // 2029
    ("2029-01-01", Holiday("New Year's Day")),
    ("2029-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2029-02-19", Holiday("Washington's Birthday")),
    ("2029-03-30", Holiday("Good Friday")),
    ("2029-05-28", Holiday("Memorial Day")),
    ("2029-06-19", Holiday("Juneteenth National Independence Day")),
    ("2029-07-03", EarlyClose("13:00")),
    ("2029-07-04", Holiday("Independence Day")),
    ("2029-09-03", Holiday("Labor Day")),
    ("2029-11-22", Holiday("Thanksgiving Day")),
    ("2029-11-23", EarlyClose("13:00")),
    ("2029-12-24", EarlyClose("13:00")),
    ("2029-12-25", Holiday("Christmas Day")),
    // 2030
    ("2030-01-01", Holiday("New Year's Day")),
    ("2030-01-21", Holiday("Martin Luther King Jr. Day")),
    ("2030-02-18", Holiday("Washington's Birthday")),
    ("2030-04-19", Holiday("Good Friday")),
    ("2030-05-27", Holiday("Memorial Day")),
    ("2030-06-19", Holiday("Juneteenth National Independence Day")),
    ("2030-07-03", EarlyClose("13:00")),
    ("2030-07-04", Holiday("Independence Day")),
    ("2030-09-02", Holiday("Labor Day")),
    ("2030-11-28", Holiday("Thanksgiving Day")),
    ("2030-11-29", EarlyClose("13:00")),
    ("2030-12-24", EarlyClose("13:00")),
    ("2030-12-25", Holiday("Christmas Day")),
    // 2031
    ("2031-01-01", Holiday("New Year's Day")),
    ("2031-01-20", Holiday("Martin Luther King Jr. Day")),
    ("2031-02-17", Holiday("Washington's Birthday")),
    ("2031-04-11", Holiday("Good Friday")),
    ("2031-05-26", Holiday("Memorial Day")),
    ("2031-06-19", Holiday("Juneteenth National Independence Day")),
    ("2031-07-03", EarlyClose("13:00")),
    ("2031-07-04", Holiday("Independence Day")),
    ("2031-09-01", Holiday("Labor Day")),
    ("2031-11-27", Holiday("Thanksgiving Day")),
    ("2031-11-28", EarlyClose("13:00")),
    ("2031-12-24", EarlyClose("13:00")),
    ("2031-12-25", Holiday("Christmas Day")),
    // 2032
    ("2032-01-01", Holiday("New Year's Day")),
    ("2032-01-19", Holiday("Martin Luther King Jr. Day")),
    ("2032-02-16", Holiday("Washington's Birthday")),
    ("2032-03-26", Holiday("Good Friday")),
    ("2032-05-31", Holiday("Memorial Day")),
    ("2032-06-18", Holiday("Juneteenth National Independence Day")),
    ("2032-07-05", Holiday("Independence Day")),
    ("2032-09-06", Holiday("Labor Day")),
    ("2032-11-25", Holiday("Thanksgiving Day")),
    ("2032-11-26", EarlyClose("13:00")),
    ("2032-12-24", Holiday("Christmas Day")),
    // 2033
    ("2033-01-17", Holiday("Martin Luther King Jr. Day")),
    ("2033-02-21", Holiday("Washington's Birthday")),
    ("2033-04-15", Holiday("Good Friday")),
    ("2033-05-30", Holiday("Memorial Day")),
    ("2033-06-20", Holiday("Juneteenth National Independence Day")),
    ("2033-07-04", Holiday("Independence Day")),
    ("2033-09-05", Holiday("Labor Day")),
    ("2033-11-24", Holiday("Thanksgiving Day")),
    ("2033-11-25", EarlyClose("13:00")),
    ("2033-12-26", Holiday("Christmas Day")),
    // 2034
    ("2034-01-02", Holiday("New Year's Day")),
    ("2034-01-16", Holiday("Martin Luther King Jr. Day")),
    ("2034-02-20", Holiday("Washington's Birthday")),
    ("2034-04-07", Holiday("Good Friday")),
    ("2034-05-29", Holiday("Memorial Day")),
    ("2034-06-19", Holiday("Juneteenth National Independence Day")),
    ("2034-07-03", EarlyClose("13:00")),
    ("2034-07-04", Holiday("Independence Day")),
    ("2034-09-04", Holiday("Labor Day")),
    ("2034-11-23", Holiday("Thanksgiving Day")),
    ("2034-11-24", EarlyClose("13:00")),
    ("2034-12-25", Holiday("Christmas Day")),
    // 2035
    ("2035-01-01", Holiday("New Year's Day")),
    ("2035-01-15", Holiday("Martin Luther King Jr. Day")),
    ("2035-02-19", Holiday("Washington's Birthday")),
    ("2035-03-23", Holiday("Good Friday")),
    ("2035-05-28", Holiday("Memorial Day")),
    ("2035-06-19", Holiday("Juneteenth National Independence Day")),
    ("2035-07-03", EarlyClose("13:00")),
    ("2035-07-04", Holiday("Independence Day")),
    ("2035-09-03", Holiday("Labor Day")),
    ("2035-11-22", Holiday("Thanksgiving Day")),
    ("2035-11-23", EarlyClose("13:00")),
    ("2035-12-24", EarlyClose("13:00")),
    ("2035-12-25", Holiday("Christmas Day")),
];

/// Sessions per year, from the same reference schedule.
#[rustfmt::skip]
const SESSIONS_PER_YEAR: &[(i32, usize)] = &[
    (2000, 252), (2001, 248), (2002, 252), (2003, 252), (2004, 252), (2005, 252),
    (2006, 251), (2007, 251), (2008, 253), (2009, 252), (2010, 252), (2011, 252),
    (2012, 250), (2013, 252), (2014, 252), (2015, 252), (2016, 252), (2017, 251),
    (2018, 251), (2019, 252), (2020, 253), (2021, 252), (2022, 251), (2023, 250),
    (2024, 252), (2025, 250), (2026, 251), (2027, 251), (2028, 251), (2029, 251),
    (2030, 251), (2031, 251), (2032, 252), (2033, 251), (2034, 250), (2035, 251),
];

/// What the reference says about one date.
#[derive(Debug, Default, Clone, Copy)]
struct DayExpectation {
    closed: Option<DayKind>,
    open: Option<&'static str>,
    close: Option<&'static str>,
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("bad date {text}: {e}"))
}

fn reference() -> BTreeMap<NaiveDate, DayExpectation> {
    let mut map: BTreeMap<NaiveDate, DayExpectation> = BTreeMap::new();
    for &(text, expect) in REFERENCE {
        let day = date(text);
        assert!(
            !matches!(day.weekday(), Weekday::Sat | Weekday::Sun),
            "reference lists weekend {text}"
        );
        let entry = map.entry(day).or_default();
        let slot_was_free = match expect {
            Holiday(name) => entry.closed.replace(DayKind::Holiday(name)).is_none(),
            Closure(reason) => entry.closed.replace(DayKind::SpecialClosure(reason)).is_none(),
            EarlyClose(time) => entry.close.replace(time).is_none(),
            LateOpen(time) => entry.open.replace(time).is_none(),
        };
        assert!(slot_was_free, "duplicate reference entry for {text}");
        assert!(
            entry.closed.is_none() || (entry.open.is_none() && entry.close.is_none()),
            "{text} is both closed and trading"
        );
    }
    map
}

fn all_days() -> impl Iterator<Item = NaiveDate> {
    let first = NaiveDate::from_ymd_opt(SUPPORTED_FROM_YEAR, 1, 1).expect("valid date");
    let last = NaiveDate::from_ymd_opt(SUPPORTED_TO_YEAR, 12, 31).expect("valid date");
    first.iter_days().take_while(move |d| *d <= last)
}

fn ny_hhmm(at: DateTime<Utc>) -> String {
    at.with_timezone(&New_York).format("%H:%M").to_string()
}

#[test]
fn every_day_matches_reference() {
    let reference = reference();
    let mut failures = Vec::new();
    let mut days = 0;
    for day in all_days() {
        days += 1;
        let expectation = reference.get(&day).copied().unwrap_or_default();
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let expected_kind = if weekend {
            DayKind::Weekend
        } else if let Some(kind) = expectation.closed {
            kind
        } else if expectation.close.is_some() {
            DayKind::EarlyClose
        } else {
            DayKind::Regular
        };

        let actual_kind = classify(day);
        if actual_kind != expected_kind {
            failures.push(format!(
                "{day}: classify = {actual_kind:?}, expected {expected_kind:?}"
            ));
        }

        let actual = session(day);
        let trading = matches!(expected_kind, DayKind::Regular | DayKind::EarlyClose);
        match (trading, actual) {
            (false, None) => {}
            (false, Some(s)) => failures.push(format!("{day}: unexpected session {s:?}")),
            (true, None) => failures.push(format!("{day}: missing session")),
            (true, Some(s)) => {
                let open = expectation.open.unwrap_or("09:30");
                let close = expectation.close.unwrap_or("16:00");
                let got = (s.date, ny_hhmm(s.open), ny_hhmm(s.close), s.early_close);
                let want = (day, open.to_string(), close.to_string(), close != "16:00");
                if got != want {
                    failures.push(format!("{day}: session {got:?}, expected {want:?}"));
                }
                if s.open.with_timezone(&New_York).date_naive() != day
                    || s.close.with_timezone(&New_York).date_naive() != day
                {
                    failures.push(format!("{day}: session times on another NY date: {s:?}"));
                }
            }
        }
    }
    assert_eq!(days, 13_149, "range covers 2000-01-01..=2035-12-31");
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn reference_table_is_complete_for_fixed_holidays() {
    // Guards the table itself: a year that lost a row would otherwise let a
    // rule bug slip through as "Regular". Thanksgiving and Good Friday are
    // never on a weekend, so each year must list exactly one of each.
    let reference = reference();
    for year in SUPPORTED_FROM_YEAR..=SUPPORTED_TO_YEAR {
        for name in ["Thanksgiving Day", "Good Friday", "Memorial Day", "Labor Day"] {
            let count = reference
                .iter()
                .filter(|(d, e)| {
                    d.year() == year && matches!(e.closed, Some(DayKind::Holiday(n)) if n == name)
                })
                .count();
            assert_eq!(count, 1, "{year} {name}");
        }
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid UTC time")
}

fn trading(y: i32, m: u32, d: u32) -> keel_calendar::Session {
    let day = NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
    session(day).unwrap_or_else(|| panic!("{day} should trade"))
}

#[test]
fn utc_spot_checks_across_dst() {
    // Day after Thanksgiving: 13:00 EST.
    let s = trading(2026, 11, 27);
    assert_eq!(
        (s.open, s.close, s.early_close),
        (utc(2026, 11, 27, 14, 30), utc(2026, 11, 27, 18, 0), true)
    );
    // First Monday after DST starts (2026-03-08): 09:30 EDT.
    let s = trading(2026, 3, 9);
    assert_eq!(
        (s.open, s.close),
        (utc(2026, 3, 9, 13, 30), utc(2026, 3, 9, 20, 0))
    );
    // Last Friday before DST starts: 09:30 EST.
    let s = trading(2026, 3, 6);
    assert_eq!(
        (s.open, s.close),
        (utc(2026, 3, 6, 14, 30), utc(2026, 3, 6, 21, 0))
    );
    // DST ends 2026-11-01: Friday before is EDT, Monday after is EST.
    assert_eq!(trading(2026, 10, 30).open, utc(2026, 10, 30, 13, 30));
    assert_eq!(trading(2026, 11, 2).open, utc(2026, 11, 2, 14, 30));
    // Pre-2007 DST rules (first Sunday of April): 2006-03-31 EST, 2006-04-03 EDT.
    assert_eq!(trading(2006, 3, 31).open, utc(2006, 3, 31, 14, 30));
    assert_eq!(trading(2006, 4, 3).open, utc(2006, 4, 3, 13, 30));
    // Christmas Eve and the eve of Independence Day close at 13:00 local.
    assert_eq!(trading(2024, 12, 24).close, utc(2024, 12, 24, 18, 0));
    assert_eq!(trading(2025, 7, 3).close, utc(2025, 7, 3, 17, 0));
    // Delayed open on the first anniversary of 9/11 (noon EDT).
    assert_eq!(trading(2002, 9, 11).open, utc(2002, 9, 11, 16, 0));
    // Systems problem closed trading at 15:56 EDT.
    assert_eq!(trading(2005, 6, 1).close, utc(2005, 6, 1, 19, 56));
    // The last supported year still gets DST.
    assert_eq!(trading(2035, 7, 2).open, utc(2035, 7, 2, 13, 30));
}

#[test]
fn sessions_per_year() {
    for &(year, expected) in SESSIONS_PER_YEAR {
        let from = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid date");
        let to = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid date");
        let count = sessions(from, to).len();
        assert!((248..=253).contains(&count), "{year}: {count} sessions");
        assert_eq!(count, expected, "{year}");
    }
    assert_eq!(SESSIONS_PER_YEAR.len(), 36);
    // Independently known totals.
    let year_count = |y| {
        sessions(
            NaiveDate::from_ymd_opt(y, 1, 1).expect("valid date"),
            NaiveDate::from_ymd_opt(y, 12, 31).expect("valid date"),
        )
        .len()
    };
    assert_eq!(year_count(2023), 250);
    assert_eq!(year_count(2024), 252);
}
