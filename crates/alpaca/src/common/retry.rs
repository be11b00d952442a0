//! The retry budget for reads. Only requests that change nothing at the
//! broker are retried here; a submit or cancel is never resent by the
//! adapter (its unknown outcome goes back to the worker, which resolves it
//! by client order id).

use std::time::Duration;

/// How many times and how patiently a read is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (the first one included), at least 1.
    pub max_tries: u32,
    /// Wait before the second attempt; doubles each time.
    pub base: Duration,
    /// Longest wait between two attempts (also caps a `Retry-After`).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 3,
            base: Duration::from_millis(250),
            max_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), honouring
    /// the server's `Retry-After` when it asked for longer.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let shift = attempt.saturating_sub(1).min(16);
        let backoff = self.base.saturating_mul(1u32 << shift).min(self.max_wait);
        retry_after.map_or(backoff, |r| r.min(self.max_wait).max(backoff))
    }

    /// True when another attempt may follow failed attempt `attempt`.
    pub fn again(&self, attempt: u32) -> bool {
        attempt < self.max_tries.max(1)
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is
/// treated as absent: the backoff applies).
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    let s = v?.trim();
    let secs: u64 = s.parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait(1, None), Duration::from_millis(250));
        assert_eq!(p.wait(2, None), Duration::from_millis(500));
        assert_eq!(p.wait(30, None), Duration::from_secs(10));
        assert_eq!(p.wait(1, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.wait(1, Some(Duration::from_secs(999))), Duration::from_secs(10));
        assert!(p.again(1) && p.again(2) && !p.again(3));
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
