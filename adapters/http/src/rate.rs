//! Requests per API key, as a token bucket per key: `rate.requests_per_sec` come back each
//! second, up to `rate.burst`. A key over it gets 429 with `Retry-After`. Counted after the key
//! is authenticated, so the buckets are as many as the keys that exist (a flood of made-up keys
//! gets 401, and fills nothing). Per process: several servers each allow the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use filegate_domain::ApiKeyId;

/// The rate each key may send at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub requests_per_sec: f64,
    pub burst: f64,
}

/// The buckets of the keys seen; no limit when `limit` is `None`.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<ApiKeyId, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter for `limit`; `None`, or a rate or burst of zero, limits nothing.
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit: limit.filter(|l| l.requests_per_sec > 0.0 && l.burst >= 1.0),
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from the key's bucket, or answers how long until one is there.
    pub(crate) fn admit(&self, key: ApiKeyId, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: limit.burst,
            at: now,
        });
        let refill =
            now.saturating_duration_since(bucket.at).as_secs_f64() * limit.requests_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - bucket.tokens) / limit.requests_per_sec,
        ))
    }

    pub(crate) fn limit(&self) -> Option<RateLimit> {
        self.limit
    }
}

/// A wait as `Retry-After` says it: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_others_their_own() {
        let limiter = RateLimiter::new(Some(RateLimit {
            requests_per_sec: 2.0,
            burst: 3.0,
        }));
        let (a, b) = (
            ApiKeyId::from_uuid(Uuid::from_u128(1)),
            ApiKeyId::from_uuid(Uuid::from_u128(2)),
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit(a, t0).is_ok());
        }
        let wait = limiter.admit(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        assert!(
            limiter.admit(b, t0).is_ok(),
            "another key has its own bucket"
        );
        assert!(limiter.admit(a, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.admit(a, t0 + Duration::from_millis(500)).is_err());
        assert!(limiter.admit(a, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn zero_limits_nothing() {
        for limit in [
            None,
            Some(RateLimit {
                requests_per_sec: 0.0,
                burst: 10.0,
            }),
            Some(RateLimit {
                requests_per_sec: 10.0,
                burst: 0.0,
            }),
        ] {
            let limiter = RateLimiter::new(limit);
            let key = ApiKeyId::from_uuid(Uuid::from_u128(1));
            assert!((0..10_000).all(|_| limiter.admit(key, Instant::now()).is_ok()));
        }
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
