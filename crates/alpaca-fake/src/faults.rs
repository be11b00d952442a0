//! Seeded randomness and the fault profile.
//!
//! Every random choice of the venue (ids, partial fills, faults) comes from
//! one seeded generator per purpose, so a run with the same `--seed` and the
//! same sequence of requests behaves the same.

use keel_broker::universe::splitmix;
use std::fmt::Write as _;

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(splitmix(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix(self.0)
    }
    /// Uniform in [0, 1). Probabilities are not money: f64 is fine here.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
    /// A random version-4-shaped UUID.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format_uuid(a, b)
    }
}

pub fn format_uuid(a: u64, b: u64) -> String {
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut s = String::with_capacity(36);
    let _ = write!(
        s,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
    s
}

/// Probability of each fault kind, per opportunity (see README).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultProfile {
    /// POST /v2/orders: the order is accepted, then the answer is a 504.
    pub submit_504: f64,
    /// POST /v2/orders: the order is accepted (200), then rejected on the
    /// next matching pass (`rejected` event, status `rejected`).
    pub reject_after_accept: f64,
    /// Any /v2 request starts a storm of 429s (the next few requests).
    pub rate_storm: f64,
    /// A GET answers 500/502/503 instead of its data.
    pub read_5xx: f64,
    /// Per stream event: the connection goes silent (open, sends nothing).
    pub stream_silent: f64,
    /// Per stream event: the connection is dropped before the event.
    pub stream_drop: f64,
    /// Per stream event: the event is lost (not sent); the connection stays.
    pub stream_skip: f64,
    /// Per stream event: the event is sent twice.
    pub stream_dup: f64,
    /// Per stream event: the event is held back and sent after the next one.
    pub stream_reorder: f64,
}

pub const FAULT_KINDS: &[&str] = &[
    "submit_504",
    "reject_after_accept",
    "rate_storm",
    "read_5xx",
    "stream_silent",
    "stream_drop",
    "stream_skip",
    "stream_dup",
    "stream_reorder",
];

impl FaultProfile {
    /// `--faults all`: every kind on, at rates that a run of a few hundred
    /// requests meets each several times.
    pub fn all() -> Self {
        FaultProfile {
            submit_504: 0.05,
            reject_after_accept: 0.02,
            rate_storm: 0.01,
            read_5xx: 0.03,
            stream_silent: 0.01,
            stream_drop: 0.02,
            stream_skip: 0.02,
            stream_dup: 0.05,
            stream_reorder: 0.05,
        }
    }

    fn slot(&mut self, key: &str) -> Option<&mut f64> {
        Some(match key {
            "submit_504" => &mut self.submit_504,
            "reject_after_accept" => &mut self.reject_after_accept,
            "rate_storm" => &mut self.rate_storm,
            "read_5xx" => &mut self.read_5xx,
            "stream_silent" => &mut self.stream_silent,
            "stream_drop" => &mut self.stream_drop,
            "stream_skip" => &mut self.stream_skip,
            "stream_dup" => &mut self.stream_dup,
            "stream_reorder" => &mut self.stream_reorder,
            _ => return None,
        })
    }

    /// Applies `kind=p,kind=p` overrides (`--fault-profile`).
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("--fault-profile: `{part}` is not KIND=PROBABILITY"))?;
            let p: f64 = v.trim().parse().map_err(|_| {
                format!("--fault-profile: {k}={v}: the probability must be a number in [0, 1]")
            })?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "--fault-profile: {k}={v}: the probability must be in [0, 1]"
                ));
            }
            let slot = self.slot(k.trim()).ok_or_else(|| {
                format!(
                    "--fault-profile: unknown fault `{k}` (allowed: {})",
                    FAULT_KINDS.join(", ")
                )
            })?;
            *slot = p;
        }
        Ok(())
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "submit_504": self.submit_504,
            "reject_after_accept": self.reject_after_accept,
            "rate_storm": self.rate_storm,
            "read_5xx": self.read_5xx,
            "stream_silent": self.stream_silent,
            "stream_drop": self.stream_drop,
            "stream_skip": self.stream_skip,
            "stream_dup": self.stream_dup,
            "stream_reorder": self.stream_reorder,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_overrides_and_rejects_bad_values() {
        let mut p = FaultProfile::default();
        p.apply("submit_504=1, stream_dup=0.5").unwrap();
        assert_eq!(p.submit_504, 1.0);
        assert_eq!(p.stream_dup, 0.5);
        assert_eq!(p.read_5xx, 0.0);
        assert!(p.apply("read_5xx=2").is_err());
        assert!(p.apply("bogus=0.1").is_err());
        assert!(p.apply("read_5xx").is_err());
        assert!(p.apply("read_5xx=NaN").is_err());
    }

    #[test]
    fn uuids_are_well_formed_and_distinct() {
        let mut r = Rng::new(7);
        let a = r.uuid();
        let b = r.uuid();
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(u.len(), 36);
            let parts: Vec<&str> = u.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
        }
        assert_eq!(Rng::new(7).uuid(), Rng::new(7).uuid());
    }
}
