//! Reconnect delays: capped exponential backoff with jitter (pure, so it is unit-tested).

/// The delay before reconnect attempt `attempt` (1-based): `min · 2^(attempt-1)` capped at
/// `max`, then "equal jitter" — a uniformly random point in its upper half — so that many
/// clients dropped at once do not come back at once.
pub fn backoff_delay(attempt: u32, min_ms: u32, max_ms: u32, unit_random: f64) -> u32 {
    let min = f64::from(min_ms.max(1));
    let max = f64::from(max_ms.max(min_ms.max(1)));
    let exp = attempt.saturating_sub(1).min(30) as i32;
    let capped = (min * 2f64.powi(exp)).min(max);
    let jittered = capped / 2.0 + capped / 2.0 * unit_random.clamp(0.0, 1.0);
    jittered.round() as u32
}

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::backoff_delay;

    #[test]
    fn backoff_grows_exponentially_then_caps() {
        // Without jitter (random = 1) the delay is the capped exponential.
        let full: Vec<u32> = (1..=8)
            .map(|a| backoff_delay(a, 500, 30_000, 1.0))
            .collect();
        assert_eq!(full, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff_delay(1000, 500, 30_000, 1.0), 30_000);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for attempt in 1..20 {
            let cap = backoff_delay(attempt, 500, 30_000, 1.0);
            let low = backoff_delay(attempt, 500, 30_000, 0.0);
            let mid = backoff_delay(attempt, 500, 30_000, 0.5);
            assert_eq!(low, (f64::from(cap) / 2.0).round() as u32);
            assert!(low <= mid && mid <= cap);
        }
    }
}
