//! Which message buckets a conversation's retention has expired (`settings/retention_days`,
//! docs/POLICY.md). Deterministic from the conversation and a time, so the server (which
//! deletes them) and every client (which drops them locally) agree without talking.

use super::conversation::Conversation;
use crate::ids::Bucket;

/// One day in milliseconds.
const DAY_MS: i64 = 86_400_000;

impl Conversation {
    /// The oldest bucket period still kept at `now_ms`: every period before it ended more
    /// than `retention_days` ago, and all its parts are deleted. `None` without a retention.
    /// A period is kept while any instant of it is within the retention, so a message is
    /// never dropped before it is `retention_days` old.
    pub fn first_kept_period(&self, now_ms: i64) -> Option<i64> {
        let days = self.settings.retention()?;
        let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        // Period p covers [p * width, (p + 1) * width): it ended at or before `cutoff` iff
        // p < floor(cutoff / width), the period `cutoff` falls in.
        Some(self.period_of(cutoff))
    }

    /// Whether `bucket` (any part) is past the retention at `now_ms`.
    pub fn is_expired(&self, bucket: Bucket, now_ms: i64) -> bool {
        self.first_kept_period(now_ms)
            .is_some_and(|kept| bucket.period < kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConvId;
    use crate::model::conversation::DEFAULT_BUCKET_MS;

    fn conv(days: Option<u32>) -> Conversation {
        let mut c = Conversation::uncreated(ConvId::new("c1").expect("id"));
        c.settings.retention_days = days;
        c
    }

    #[test]
    fn without_retention_nothing_expires() {
        // Absent, or 0: the platform writes 0 for "keep everything".
        for days in [None, Some(0)] {
            let c = conv(days);
            assert_eq!(c.first_kept_period(i64::MAX), None, "{days:?}");
            assert!(!c.is_expired(Bucket::first(0), 100 * DEFAULT_BUCKET_MS));
        }
    }

    #[test]
    fn a_period_expires_once_its_end_is_older_than_the_retention() {
        let c = conv(Some(2));
        let day = DEFAULT_BUCKET_MS;
        // Period 10 ends at 11 days; it expires at 13 days, not a millisecond before.
        assert!(!c.is_expired(Bucket::new(10, 3), 13 * day - 1));
        assert!(c.is_expired(Bucket::new(10, 3), 13 * day));
        assert!(!c.is_expired(Bucket::first(11), 13 * day));
        assert_eq!(c.first_kept_period(13 * day), Some(11));
    }

    #[test]
    fn times_before_the_epoch_do_not_overflow() {
        let c = conv(Some(crate::limits::RETENTION_MAX_DAYS));
        assert!(c.first_kept_period(i64::MIN).is_some());
        assert!(!c.is_expired(Bucket::first(0), 0));
    }
}
