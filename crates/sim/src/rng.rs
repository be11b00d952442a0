//! A tiny seeded generator. Every random choice of the simulator comes from
//! one of these, each on its own named stream, so that (for example) the
//! allocator writes the same target sets whatever the fault profile is.

pub(crate) use keel_broker::universe::splitmix as mix;

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream named `label` of run `seed`.
    pub fn new(seed: u64, label: &str) -> Self {
        let mut h = mix(seed ^ 0x6b65_656c_2d73_696d);
        for b in label.bytes() {
            h = mix(h ^ u64::from(b));
        }
        Self(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        xs.get(self.below(xs.len() as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1, "x").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(1, "x").next_u64(), Rng::new(1, "y").next_u64());
        assert_ne!(Rng::new(1, "x").next_u64(), Rng::new(2, "x").next_u64());
        let mut r = Rng::new(3, "z");
        for _ in 0..1000 {
            assert!(r.range(5, 9) >= 5 && r.range(5, 9) <= 9);
            assert!(r.unit() < 1.0);
        }
    }
}
