//! Shared state of the running venue: the clock, the venue under its lock,
//! the request budget, faults and the stream's fan-out.

use crate::faults::{FaultProfile, Rng};
use crate::venue::Venue;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{broadcast, watch, Notify};

/// The venue's clock: real time shifted by an offset, so `--at` and
/// `POST /_fake/clock` move time without anything else reading the system
/// clock.
pub struct VenueClock {
    state: Mutex<ClockState>,
}

enum ClockState {
    /// Real time plus this offset.
    Running(Duration),
    /// This instant until moved (`--frozen-clock`): a client acting "as of"
    /// a fixed instant sees the same quotes on every call.
    Frozen(DateTime<Utc>),
}

impl VenueClock {
    pub fn starting_at(at: Option<DateTime<Utc>>, frozen: bool) -> Self {
        let state = match (at, frozen) {
            (Some(t), true) => ClockState::Frozen(t),
            (None, true) => ClockState::Frozen(Utc::now()),
            (at, false) => ClockState::Running(at.map(|t| t - Utc::now()).unwrap_or_else(Duration::zero)),
        };
        VenueClock {
            state: Mutex::new(state),
        }
    }
    /// Truncated to microseconds, the precision every timestamp is written
    /// with, so a time read back from a response (`after=`, `until=`) compares
    /// equal to the stored one.
    pub fn now(&self) -> DateTime<Utc> {
        match *lock(&self.state) {
            ClockState::Running(offset) => Utc::now() + offset,
            ClockState::Frozen(at) => at,
        }
        .trunc_subsecs(6)
    }
    pub fn jump_to(&self, at: DateTime<Utc>) {
        let mut g = lock(&self.state);
        *g = match *g {
            ClockState::Running(_) => ClockState::Running(at - Utc::now()),
            ClockState::Frozen(_) => ClockState::Frozen(at),
        };
    }
}

/// A poisoned lock only means another request panicked mid-update; the fake
/// keeps serving rather than turning every later request into a 500.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A token bucket per key: `rpm` tokens, refilled continuously, so a client
/// paced at the budget never meets a 429 and a burst past it always does.
struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one request is allowed again.
    pub retry_after_secs: u64,
}

pub struct App {
    pub venue: Mutex<Venue>,
    pub clock: VenueClock,
    pub faults: Mutex<FaultProfile>,
    pub fault_rng: Mutex<Rng>,
    /// Requests left in the current 429 storm.
    pub storm_left: Mutex<u32>,
    pub rpm: u32,
    /// Bucket capacity: how many requests may go at once after a pause.
    pub burst: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
    pub events: broadcast::Sender<String>,
    /// Bumped by every authenticated stream connection; older ones close.
    pub stream_gen: watch::Sender<u64>,
    pub stream_text: bool,
    /// Log one line per /v2 request to stderr.
    pub verbose: bool,
    pub stream_ping_secs: u64,
    /// Wakes the matching loop right after a submission.
    pub tick: Notify,
    pub counters: Mutex<Counters>,
}

/// The knobs of the HTTP and stream layers (flags).
pub struct AppConfig {
    pub faults: FaultProfile,
    pub seed: u64,
    pub rpm: u32,
    pub burst: u32,
    pub stream_text: bool,
    pub verbose: bool,
    /// Seconds between server pings on the stream (0: none).
    pub stream_ping_secs: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub requests: u64,
    pub rate_limited: u64,
    pub faults_5xx: u64,
    pub faults_504: u64,
    pub stream_connections: u64,
    pub stream_evictions: u64,
}

impl App {
    pub fn new(venue: Venue, clock: VenueClock, cfg: AppConfig, events: broadcast::Sender<String>) -> Self {
        let AppConfig {
            faults,
            seed,
            rpm,
            burst,
            stream_text,
            verbose,
            stream_ping_secs,
        } = cfg;
        App {
            venue: Mutex::new(venue),
            clock,
            faults: Mutex::new(faults),
            fault_rng: Mutex::new(Rng::new(seed ^ 0x0066_6175_6c74)),
            storm_left: Mutex::new(0),
            rpm: rpm.max(1),
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
            events,
            stream_gen: watch::channel(0).0,
            stream_text,
            verbose,
            stream_ping_secs,
            tick: Notify::new(),
            counters: Mutex::new(Counters::default()),
        }
    }

    pub fn chance(&self, p: f64) -> bool {
        lock(&self.fault_rng).chance(p)
    }

    pub fn take_token(&self, key: &str) -> RateDecision {
        let cap = f64::from(self.burst);
        let per_sec = f64::from(self.rpm) / 60.0;
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        // Keys are client-chosen: bound the map so a key-spraying client
        // cannot grow it for ever.
        if buckets.len() > 10_000 && !buckets.contains_key(key) {
            buckets.clear();
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * per_sec).min(cap);
        b.last = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        RateDecision {
            allowed,
            limit: self.rpm,
            remaining: b.tokens.floor().max(0.0) as u32,
            reset_secs: ((cap - b.tokens) / per_sec).ceil().max(0.0) as u64,
            retry_after_secs: if allowed {
                0
            } else {
                ((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64
            },
        }
    }
}
