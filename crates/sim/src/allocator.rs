//! The seeded allocator: writes target sets as JSON text, the way an external
//! model would, realistic ones and hostile ones. Every set goes through the
//! real intake (`keel_intake::parse_json`) before the worker sees it.

use crate::rng::Rng;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use keel_domain::Symbol;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// What kind of target set the allocator wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SetKind {
    /// A normal rebalance drifting from the previous day's book.
    Rebalance,
    /// A completely different book: turnover above the per-cycle limit.
    Turnover,
    /// An explicit `"liquidate": true` empty set.
    Liquidate,
    /// An empty or near-empty set without `liquidate` (a crashed allocator).
    Empty,
    /// A set delivered twice (same id, same text).
    Replay,
    /// Computed hours ago.
    Stale,
    /// Valid for only a few minutes.
    Expiring,
    /// Dated in the future (a machine with a wrong clock).
    FutureDated,
    /// Not a valid target set at all (syntax, NaN, lowercase, shorts, duplicates, ...).
    Malformed,
    /// Gross above 1 (leverage).
    Leveraged,
    /// Includes a symbol nobody quotes.
    UnknownSymbol,
}

impl SetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::Rebalance => "rebalance",
            SetKind::Turnover => "large_turnover",
            SetKind::Liquidate => "liquidate",
            SetKind::Empty => "empty_without_liquidate",
            SetKind::Replay => "replay",
            SetKind::Stale => "stale",
            SetKind::Expiring => "expiring",
            SetKind::FutureDated => "future_dated",
            SetKind::Malformed => "malformed",
            SetKind::Leveraged => "leveraged",
            SetKind::UnknownSymbol => "unknown_symbol",
        }
    }
}

/// One target set handed to keel.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub kind: SetKind,
    pub json: String,
}

/// The allocator of one run.
pub(crate) struct Allocator {
    rng: Rng,
    seed: u64,
    universe: Vec<Symbol>,
    /// The book: universe index -> relative weight. Slow-moving, like a real
    /// low-turnover strategy: most days a few weights drift, sometimes a name
    /// is swapped, rarely the whole book turns over.
    book: BTreeMap<usize, u64>,
    /// Gross exposure the book is scaled to.
    gross: Decimal,
    /// The last set delivered, for replays.
    last_json: Option<String>,
    written: u64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Weights proportional to `raw`, summing to at most `gross`, to 4 dp.
fn weights(raw: &[u64], gross: Decimal) -> Vec<Decimal> {
    let total: u64 = raw.iter().sum::<u64>().max(1);
    raw.iter()
        .map(|r| {
            (Decimal::from(*r) * gross / Decimal::from(total))
                .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::ToZero)
        })
        .collect()
}

impl Allocator {
    pub fn new(seed: u64) -> Self {
        let universe = keel_broker::universe::symbols();
        let mut a = Self {
            rng: Rng::new(seed, "allocator"),
            seed,
            universe,
            book: BTreeMap::new(),
            gross: Decimal::new(90, 2),
            last_json: None,
            written: 0,
        };
        a.turn_over();
        a
    }

    /// Replaces the book with 8–14 names not in it now.
    fn turn_over(&mut self) {
        let n = self.universe.len() as u64;
        let k = self.rng.range(8, 14) as usize;
        let mut fresh = BTreeMap::new();
        while fresh.len() < k {
            let i = self.rng.below(n) as usize;
            if !self.book.contains_key(&i) {
                fresh.insert(i, self.rng.range(30, 90));
            }
        }
        self.book = fresh;
    }

    /// A normal day's drift: a few weights move, sometimes a name is swapped,
    /// now and then the gross changes.
    fn drift(&mut self) {
        for w in self.book.values_mut() {
            if self.rng.chance(0.35) {
                *w = (*w * self.rng.range(80, 120) / 100).max(10);
            }
        }
        if self.rng.chance(0.2) {
            let names: Vec<usize> = self.book.keys().copied().collect();
            if let Some(out) = self.rng.pick(&names).copied() {
                self.book.remove(&out);
            }
            let n = self.universe.len() as u64;
            loop {
                let i = self.rng.below(n) as usize;
                if !self.book.contains_key(&i) {
                    self.book.insert(i, self.rng.range(30, 90));
                    break;
                }
            }
        }
        if self.rng.chance(0.1) {
            self.gross = Decimal::new(80 + self.rng.range(0, 15) as i64, 2);
        }
    }

    /// The book scaled to `gross`, as (symbol, weight) sorted by symbol.
    fn render_book(&self, gross: Decimal) -> Vec<(String, Decimal)> {
        let raw: Vec<u64> = self.book.values().copied().collect();
        let mut out: Vec<(String, Decimal)> = self
            .book
            .keys()
            .zip(weights(&raw, gross))
            .map(|(i, w)| (self.universe[*i].as_str().to_string(), w))
            .collect();
        out.sort();
        out
    }

    /// Symbols of the current book (where market-data faults hurt most).
    pub fn last_symbols(&self) -> Vec<Symbol> {
        self.book.keys().map(|i| self.universe[*i].clone()).collect()
    }

    /// Whether to write a set at this step and which kind: the morning set
    /// is always written; later in the day only sometimes.
    pub fn choose(&mut self, morning: bool) -> Option<SetKind> {
        if !morning {
            // About one extra set every two days, hostile half the time.
            return match self.rng.below(1000) {
                0..=14 => Some(SetKind::Rebalance),
                15..=24 => Some(SetKind::Replay),
                25..=29 => Some(SetKind::Expiring),
                30..=34 => Some(SetKind::Malformed),
                35..=39 => Some(SetKind::Turnover),
                _ => None,
            };
        }
        Some(match self.rng.below(100) {
            0..=59 => SetKind::Rebalance,
            60..=66 => SetKind::Turnover,
            67..=69 => SetKind::Liquidate,
            70..=73 => SetKind::Empty,
            74..=77 => SetKind::Replay,
            78..=81 => SetKind::Stale,
            82..=86 => SetKind::Expiring,
            87..=89 => SetKind::FutureDated,
            90..=94 => SetKind::Malformed,
            95..=96 => SetKind::Leveraged,
            _ => SetKind::UnknownSymbol,
        })
    }

    fn next_id(&mut self, now: DateTime<Utc>) -> String {
        self.written += 1;
        format!("s{}-{}-{}", self.seed, now.format("%Y%m%d"), self.written)
    }

    /// Writes a set of `kind` at `now`; `close` bounds its validity.
    pub fn write(&mut self, kind: SetKind, now: DateTime<Utc>, close: DateTime<Utc>) -> Delivery {
        let valid_until = Some(close - Duration::minutes(5));
        let json = match kind {
            SetKind::Replay => match self.last_json.clone() {
                Some(j) => j,
                None => return self.write(SetKind::Rebalance, now, close),
            },
            SetKind::Rebalance => {
                self.drift();
                let book = self.render_book(self.gross);
                let id = self.next_id(now);
                render(&id, now, valid_until, false, &book)
            }
            SetKind::Turnover => {
                self.turn_over();
                let book = self.render_book(self.gross);
                let id = self.next_id(now);
                render(&id, now, valid_until, false, &book)
            }
            SetKind::Liquidate => {
                let id = self.next_id(now);
                render(&id, now, valid_until, true, &[])
            }
            SetKind::Empty => {
                let id = self.next_id(now);
                if self.rng.chance(0.5) {
                    render(&id, now, valid_until, false, &[])
                } else {
                    // Near-empty: a crashed allocator that wrote a few lines.
                    let book: Vec<(String, Decimal)> = self
                        .render_book(Decimal::new(20, 2))
                        .into_iter()
                        .take(3)
                        .collect();
                    render(&id, now, valid_until, false, &book)
                }
            }
            SetKind::Stale => {
                let book = self.render_book(self.gross);
                let id = self.next_id(now);
                let as_of = now - Duration::minutes(self.rng.range(61, 600) as i64);
                render(&id, as_of, None, false, &book)
            }
            SetKind::Expiring => {
                self.drift();
                let book = self.render_book(self.gross);
                let id = self.next_id(now);
                let until = now + Duration::minutes(self.rng.range(1, 45) as i64);
                render(&id, now, Some(until), false, &book)
            }
            SetKind::FutureDated => {
                let book = self.render_book(self.gross);
                let id = self.next_id(now);
                let as_of = now + Duration::minutes(self.rng.range(5, 240) as i64);
                render(&id, as_of, None, false, &book)
            }
            SetKind::Leveraged => {
                let book = self.render_book(Decimal::new(130, 2));
                let id = self.next_id(now);
                render(&id, now, valid_until, false, &book)
            }
            SetKind::UnknownSymbol => {
                let mut book = self.render_book(self.gross);
                book.push(("ZZZZ".to_string(), Decimal::new(3, 2)));
                book.sort();
                let id = self.next_id(now);
                render(&id, now, valid_until, false, &book)
            }
            SetKind::Malformed => {
                let id = self.next_id(now);
                let at = ts(now);
                match self.rng.below(8) {
                    0 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":"),
                    1 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":\"NaN\"}}]}}"),
                    2 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"aapl\",\"weight\":0.6}}]}}"),
                    3 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":0.5}},{{\"symbol\":\"MSFT\",\"weight\":-0.2}}]}}"),
                    4 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":0.3}},{{\"symbol\":\"AAPL\",\"weight\":0.3}}]}}"),
                    5 => format!("{{\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":0.6}}]}}"),
                    6 => format!("{{\"id\":\"{id}\",\"as_of\":\"{at}\",\"targets\":[{{\"symbol\":\"AAPL\",\"weight\":1e400}}]}}"),
                    _ => format!("{{\"id\":\"{id}\",\"as_of\":\"not a time\",\"targets\":[]}}"),
                }
            }
        };
        self.last_json = Some(json.clone());
        Delivery { kind, json }
    }
}

fn render(
    id: &str,
    as_of: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    liquidate: bool,
    book: &[(String, Decimal)],
) -> String {
    let targets: Vec<String> = book
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let mut out = format!("{{\"id\":\"{id}\",\"as_of\":\"{}\"", ts(as_of));
    if let Some(v) = valid_until {
        out.push_str(&format!(",\"valid_until\":\"{}\"", ts(v)));
    }
    if liquidate {
        out.push_str(",\"liquidate\":true");
    }
    out.push_str(&format!(",\"targets\":[{}]}}", targets.join(",")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_intake::{parse_json, IntakeConfig};

    #[test]
    fn realistic_sets_pass_intake_and_hostile_ones_are_refused() {
        let now: DateTime<Utc> = "2026-03-10T15:00:00Z".parse().unwrap();
        let close: DateTime<Utc> = "2026-03-10T20:00:00Z".parse().unwrap();
        let cfg = IntakeConfig::default();
        let mut a = Allocator::new(9);
        for _ in 0..20 {
            for kind in [
                SetKind::Rebalance,
                SetKind::Turnover,
                SetKind::Liquidate,
                SetKind::Expiring,
                SetKind::UnknownSymbol,
            ] {
                let d = a.write(kind, now, close);
                let r = parse_json("t", d.json.as_bytes(), &cfg, now);
                assert!(r.is_ok(), "{kind:?}: {} -> {r:?}", d.json);
            }
            for kind in [
                SetKind::Empty,
                SetKind::Stale,
                SetKind::FutureDated,
                SetKind::Malformed,
                SetKind::Leveraged,
            ] {
                let d = a.write(kind, now, close);
                assert!(
                    parse_json("t", d.json.as_bytes(), &cfg, now).is_err(),
                    "{kind:?}: {}",
                    d.json
                );
            }
        }
    }
}
