//! Exponential backoff with jitter: the one rule of every retry loop (webhook
//! deliveries, the CLI's requests).

use std::time::Duration;

/// Retry delays doubling from `first` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The whole delay before retry `failed + 1`.
    pub fn full(self, failed: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << failed.min(20))
            .min(self.max)
    }

    /// The delay before retry `failed + 1`, drawn by `random` (any `u32`, uniformly
    /// spread) between half and all of [`Backoff::full`]: clients failing together do
    /// not come back together.
    pub fn delay(self, failed: u32, random: u32) -> Duration {
        let full = self.full(failed);
        full / 2 + (full / 2).mul_f64(f64::from(random) / f64::from(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_their_cap() {
        let b = Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(8),
        };
        assert_eq!(b.full(0), Duration::from_millis(250));
        assert_eq!(b.full(2), Duration::from_secs(1));
        assert_eq!(b.full(40), Duration::from_secs(8));
        for failed in 0..40 {
            let full = b.full(failed);
            for random in [0, 1, u32::MAX / 2, u32::MAX] {
                let delay = b.delay(failed, random);
                assert!(delay >= full / 2 && delay <= full, "{failed}: {delay:?}");
            }
        }
        assert_eq!(b.delay(3, 0), b.full(3) / 2);
        assert_eq!(b.delay(3, u32::MAX), b.full(3));
    }
}
