//! One request budget per API key, shared by every REST call (trading and
//! market data alike: Alpaca counts them together, 200 per minute by
//! default). Requests are paced evenly (GCRA with a small burst), so a large
//! rebalance is slowed down here instead of meeting a 429 there. A 429 that
//! still happens pushes the whole budget back by its `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The pure pacing state, over nanoseconds since an arbitrary origin (so tests
/// drive it with a hand-held clock, not sleeps).
///
/// Generic cell rate algorithm: each request advances a theoretical arrival
/// time by `interval`; a request may go when that time is at most `burst`
/// intervals ahead of now. In any window of length W at most
/// `burst + W / interval` requests pass, so `interval` is chosen to leave
/// room for the burst inside one minute.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval_ns: u64,
    tolerance_ns: u64,
    tat_ns: u64,
}

impl Pacer {
    /// At most `per_minute` requests in any 60-second window, with up to
    /// `burst` (at least 1) of them back to back.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = u64::from(per_minute.max(2));
        let burst = u64::from(burst.clamp(1, (per_minute / 2) as u32));
        // burst + 60s/interval <= per_minute  =>  interval = 60s / (per_minute - burst)
        let slots = per_minute - burst;
        // Rounded up (a shorter interval could fit one request too many in a
        // minute), plus 2%: requests leave evenly spaced but may arrive
        // bunched by network jitter, and the venue counts arrivals. With the
        // burst's slots held back too, that leaves room for a few bunched
        // arrivals a minute (4 at Alpaca's 200) while a large rebalance still
        // finishes within 5% of budget / rate.
        let interval_ns = 60_000_000_000u64.div_ceil(slots) * 51 / 50;
        Self {
            interval_ns,
            tolerance_ns: interval_ns * (burst - 1),
            tat_ns: 0,
        }
    }

    /// Takes a slot for a request wanting to go at `now_ns`; returns how long
    /// it must wait first (zero when it may go at once).
    pub fn reserve(&mut self, now_ns: u64) -> Duration {
        let tat = self.tat_ns.max(now_ns);
        let allowed_at = tat.saturating_sub(self.tolerance_ns);
        let go_at = allowed_at.max(now_ns);
        self.tat_ns = tat.saturating_add(self.interval_ns);
        Duration::from_nanos(go_at - now_ns)
    }

    /// Nothing may go before `until_ns` (a 429's `Retry-After`).
    pub fn hold_until(&mut self, until_ns: u64) {
        self.tat_ns = self.tat_ns.max(until_ns.saturating_add(self.tolerance_ns));
    }

    /// Time between paced requests.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }
}

/// The shared, async budget: a [`Pacer`] on the monotonic clock plus counters
/// a benchmark can read.
#[derive(Debug)]
pub struct RateLimiter {
    pacer: Mutex<Pacer>,
    origin: tokio::time::Instant,
    requests: AtomicU64,
    throttled: AtomicU64,
    waited_ns: AtomicU64,
}

/// Counters of one budget (see [`RateLimiter::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetStats {
    /// REST requests sent under this budget.
    pub requests: u64,
    /// HTTP 429 answers received.
    pub throttled: u64,
    /// Total time requests waited for pacing.
    pub waited: Duration,
}

impl RateLimiter {
    /// A fresh budget.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            pacer: Mutex::new(Pacer::new(per_minute, burst)),
            origin: tokio::time::Instant::now(),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            waited_ns: AtomicU64::new(0),
        }
    }

    /// The process-wide budget of `key_id`: every client built for the same
    /// key shares it (the first caller's rate wins).
    pub fn for_key(key_id: &str, per_minute: u32, burst: u32) -> Arc<RateLimiter> {
        static BUDGETS: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
        let map = BUDGETS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key_id.to_string())
            .or_insert_with(|| Arc::new(RateLimiter::new(per_minute, burst)))
            .clone()
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let wait = {
            let mut p = self.pacer.lock().unwrap_or_else(|p| p.into_inner());
            p.reserve(self.now_ns())
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !wait.is_zero() {
            self.waited_ns.fetch_add(
                u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Records a 429 and holds every request for `retry_after`.
    pub fn throttled(&self, retry_after: Duration) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let until = self
            .now_ns()
            .saturating_add(u64::try_from(retry_after.as_nanos()).unwrap_or(u64::MAX));
        self.pacer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hold_until(until);
    }

    /// Requests sent, 429s received, time spent pacing.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000_000_000;

    /// Drives the pacer with a simulated clock: `arrivals` are request times;
    /// each request goes at arrival + its wait. Returns the send times.
    fn send_times(p: &mut Pacer, arrivals: &[u64]) -> Vec<u64> {
        arrivals
            .iter()
            .map(|&t| t + p.reserve(t).as_nanos() as u64)
            .collect()
    }

    fn max_in_window(sends: &[u64], window: u64) -> usize {
        let mut s = sends.to_vec();
        s.sort_unstable();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..s.len() {
            while s[hi] - s[lo] >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn a_1000_order_rebalance_is_paced_under_200_per_minute() {
        let mut p = Pacer::new(200, 5);
        let sends = send_times(&mut p, &vec![0; 1000]);
        assert!(
            max_in_window(&sends, MIN) <= 200,
            "{}",
            max_in_window(&sends, MIN)
        );
        // ...but not slower than needed: 1000 requests take about 5.4 minutes, not 10.
        let last = *sends.last().unwrap();
        assert!(last < 5 * MIN + MIN / 2, "{last}");
        // Without a burst, requests are evenly spaced.
        let mut p = Pacer::new(200, 1);
        let even = send_times(&mut p, &[0, 0, 0]);
        assert_eq!(even[0], 0);
        assert_eq!(even[2] - even[1], even[1] - even[0]);
        assert!(even[1] >= MIN / 200);
        assert_eq!(sends[..5], [0, 0, 0, 0, 0], "a small burst goes at once");
    }

    #[test]
    fn retry_after_holds_everything() {
        let mut p = Pacer::new(200, 5);
        p.hold_until(10_000_000_000);
        let w = p.reserve(1_000_000_000);
        assert!(w >= Duration::from_secs(9), "{w:?}");
    }

    proptest! {
        #[test]
        fn never_more_than_the_budget_in_any_minute(
            per_minute in 2u32..400,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..2_000_000_000, 1..600),
        ) {
            let mut p = Pacer::new(per_minute, burst);
            let mut t = 0u64;
            let arrivals: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
            let sends = send_times(&mut p, &arrivals);
            prop_assert!(max_in_window(&sends, MIN) <= per_minute as usize);
            // Each request waits only for the budget: never before it arrived.
            for (a, s) in arrivals.iter().zip(&sends) { prop_assert!(s >= a); }
        }
    }
}
