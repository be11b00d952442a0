//! [`keel_broker::MarketData`] over Alpaca's Market Data API (prices) and the
//! Trading API's asset list (what may be traded).

use crate::config::Feed;
use crate::http::client::{Host, RestClient};
use crate::http::models::{AlpacaAsset, LatestQuotes, MultiBars};
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use keel_broker::{AssetFacts, BrokerError, MarketData};
use keel_domain::{Clock, Quote, Symbol};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Symbols per market-data request (keeps URLs short).
const SYMBOLS_PER_REQUEST: usize = 100;
/// Pages read per bars request at most.
const MAX_PAGES: usize = 100;
/// Sessions averaged for ADV.
const ADV_SESSIONS: usize = 20;
/// The most daily closes served for one symbol.
const MAX_CLOSES: usize = 2_000;
/// How long the asset list is trusted before it is fetched again.
const ASSET_TTL_SECS: i64 = 3_600;

type AssetCache = Option<(DateTime<Utc>, BTreeMap<String, AssetFacts>)>;

/// Alpaca market data and asset facts.
#[derive(Clone)]
pub struct AlpacaData {
    rest: RestClient,
    feed: Feed,
    clock: Arc<dyn Clock>,
    assets: Arc<Mutex<AssetCache>>,
}

impl std::fmt::Debug for AlpacaData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpacaData")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

/// A keel quote from Alpaca's bid and ask, or `None` when the book is not
/// sane (a zero or crossed side): no quote is better than a made-up price.
pub fn to_quote(
    symbol: &Symbol,
    bid: Option<Decimal>,
    ask: Option<Decimal>,
    ts: DateTime<Utc>,
) -> Option<Quote> {
    let (bid, ask) = (bid?, ask?);
    if bid <= Decimal::ZERO || ask < bid {
        return None;
    }
    Some(Quote {
        symbol: symbol.clone(),
        bid,
        ask,
        // The latest-quote endpoint has no trade; the mid stands in for it.
        last: (bid + ask) / Decimal::TWO,
        ts,
    })
}

/// True when the daily bar dated `t` is a completed session at `now`.
fn completed(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    match keel_calendar::session(t.date_naive()) {
        Some(s) => s.close <= now,
        None => t.date_naive() < now.date_naive(),
    }
}

impl AlpacaData {
    /// Market data over `rest` (sharing its request budget).
    pub fn new(rest: RestClient, feed: Feed, clock: Arc<dyn Clock>) -> Self {
        Self {
            rest,
            feed,
            clock,
            assets: Arc::new(Mutex::new(None)),
        }
    }

    /// Daily bars of `symbols` from `start`, every page, by symbol.
    async fn daily_bars(
        &self,
        symbols: &[Symbol],
        start: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<crate::http::models::DataBar>>, BrokerError> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for chunk in symbols.chunks(SYMBOLS_PER_REQUEST) {
            let list = chunk.iter().map(Symbol::as_str).collect::<Vec<_>>().join(",");
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut q = vec![
                    ("symbols", list.clone()),
                    ("timeframe", "1Day".to_string()),
                    ("start", start.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    ("limit", "10000".to_string()),
                    ("adjustment", "all".to_string()),
                    ("feed", self.feed.as_str().to_string()),
                ];
                if let Some(t) = &token {
                    q.push(("page_token", t.clone()));
                }
                let Some(page) = self
                    .rest
                    .get::<MultiBars>(Host::Data, "/v2/stocks/bars", &q)
                    .await?
                else {
                    break;
                };
                for (s, bars) in page.bars {
                    out.entry(s).or_default().extend(bars);
                }
                match page.next_page_token.filter(|t| !t.is_empty()) {
                    Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                    _ => break,
                }
            }
        }
        let now = self.clock.now();
        for bars in out.values_mut() {
            bars.retain(|b| completed(b.t, now));
            bars.sort_by_key(|b| b.t);
            bars.dedup_by_key(|b| b.t);
        }
        Ok(out)
    }

    fn start_for(&self, sessions: usize) -> DateTime<Utc> {
        // Calendar days covering `sessions` sessions, holidays included.
        let days = i64::try_from(sessions).unwrap_or(i64::MAX / 4).saturating_mul(7) / 5 + 10;
        self.clock.now() - ChronoDuration::days(days.min(366 * 20))
    }
}

#[async_trait]
impl MarketData for AlpacaData {
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        let mut out = BTreeMap::new();
        for chunk in symbols.chunks(SYMBOLS_PER_REQUEST) {
            let list = chunk.iter().map(Symbol::as_str).collect::<Vec<_>>().join(",");
            let q = [("symbols", list), ("feed", self.feed.as_str().to_string())];
            let Some(page) = self
                .rest
                .get::<LatestQuotes>(Host::Data, "/v2/stocks/quotes/latest", &q)
                .await?
            else {
                continue;
            };
            for s in chunk {
                if let Some(dq) = page.quotes.get(s.as_str()) {
                    if let Some(quote) = to_quote(s, dq.bp, dq.ap, dq.t) {
                        out.insert(s.clone(), quote);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        let n = n.min(MAX_CLOSES);
        if n == 0 {
            return Ok(Vec::new());
        }
        let bars = self
            .daily_bars(std::slice::from_ref(symbol), self.start_for(n))
            .await?;
        let closes: Vec<Decimal> = bars
            .get(symbol.as_str())
            .map(|b| b.iter().map(|b| b.c).collect())
            .unwrap_or_default();
        Ok(closes[closes.len().saturating_sub(n)..].to_vec())
    }

    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        let bars = self.daily_bars(symbols, self.start_for(ADV_SESSIONS)).await?;
        let mut out = BTreeMap::new();
        for s in symbols {
            let Some(b) = bars.get(s.as_str()) else { continue };
            let vols: Vec<Decimal> = b[b.len().saturating_sub(ADV_SESSIONS)..]
                .iter()
                .filter_map(|b| b.v)
                .collect();
            if !vols.is_empty() {
                let n = Decimal::from(vols.len());
                out.insert(s.clone(), (vols.iter().sum::<Decimal>() / n).round_dp(0));
            }
        }
        Ok(out)
    }

    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        let now = self.clock.now();
        let fresh = {
            let c = self.assets.lock().unwrap_or_else(|p| p.into_inner());
            c.as_ref()
                .filter(|(at, _)| (now - *at).num_seconds().abs() < ASSET_TTL_SECS)
                .map(|(_, m)| m.clone())
        };
        let all = match fresh {
            Some(m) => m,
            None => {
                let list: Vec<AlpacaAsset> = self
                    .rest
                    .get(
                        Host::Trading,
                        "/v2/assets",
                        &[("status", "active".into()), ("asset_class", "us_equity".into())],
                    )
                    .await?
                    .unwrap_or_default();
                let m: BTreeMap<String, AssetFacts> = list
                    .into_iter()
                    .map(|a| {
                        let active = a.status.as_deref().is_none_or(|s| s == "active");
                        (
                            a.symbol,
                            AssetFacts {
                                tradable: a.tradable && active,
                                fractionable: a.fractionable,
                                shortable: a.shortable,
                            },
                        )
                    })
                    .collect();
                *self.assets.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, m.clone()));
                m
            }
        };
        Ok(symbols
            .iter()
            .filter_map(|s| all.get(s.as_str()).map(|f| (s.clone(), *f)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn only_sane_books_become_quotes() {
        let s = Symbol::new("AAPL").unwrap();
        let t = Utc::now();
        let q = to_quote(&s, Some(dec!(190.10)), Some(dec!(190.12)), t).unwrap();
        assert_eq!(q.reference(), dec!(190.11));
        assert!(to_quote(&s, Some(dec!(0)), Some(dec!(190.12)), t).is_none());
        assert!(to_quote(&s, Some(dec!(191)), Some(dec!(190)), t).is_none());
        assert!(to_quote(&s, None, Some(dec!(190)), t).is_none());
    }
}
