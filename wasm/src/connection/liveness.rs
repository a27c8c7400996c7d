//! Is the welcomed connection still alive? A pure state machine over device time (ms), so
//! it is tested with a fake clock; the connection drives it with `js::now_ms` and one timer
//! at [`Liveness::next_wakeup`].
//!
//! A socket can die without a `close` event (a Wi-Fi that drops, a NAT that forgets, a
//! laptop lid): only an answer proves the server is there. So:
//! - while the client waits for an answer (a submit or subscribe went out and the host says
//!   something is still unanswered), a silence of [`Timing::probe_ms`] sends a ping;
//! - otherwise a silence of [`Timing::idle_ms`] sends one;
//! - a ping unanswered for [`Timing::deadline_ms`] (nothing at all received) is death.
//!
//! Any frame received counts as an answer: a busy connection never needs a ping.

/// When to ping and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Silence before a ping while nothing is awaited.
    pub idle_ms: i64,
    /// Silence before a ping while an answer is awaited.
    pub probe_ms: i64,
    /// How long a ping may go unanswered.
    pub deadline_ms: i64,
}

/// What the connection must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing until this time (device ms).
    WaitUntil(i64),
    /// Send `ping {nonce}`, then wait until the given time.
    Ping { nonce: u64, until: i64 },
    /// No answer within the deadline: the connection is dead.
    Dead,
}

#[derive(Debug, Clone)]
pub struct Liveness {
    timing: Timing,
    last_rx: i64,
    /// Since when an answer is awaited (a request went out, or was still open at `last_rx`).
    awaiting_since: Option<i64>,
    /// The unanswered ping's send time.
    ping_sent: Option<i64>,
    nonce: u64,
}

impl Liveness {
    /// A connection that has just been welcomed at `now`.
    pub fn new(timing: Timing, now: i64) -> Liveness {
        Liveness {
            timing,
            last_rx: now,
            awaiting_since: None,
            ping_sent: None,
            nonce: 0,
        }
    }

    /// A frame arrived.
    pub fn received(&mut self, now: i64) {
        self.last_rx = self.last_rx.max(now);
        self.ping_sent = None;
        // Still waiting? The next poll asks the host; until then probe from here.
        if self.awaiting_since.is_some() {
            self.awaiting_since = Some(now);
        }
    }

    /// A frame that expects an answer went out. Returns whether the next wakeup moved
    /// earlier (the caller's timer must be set again).
    pub fn sent(&mut self, now: i64) -> bool {
        if self.awaiting_since.is_some() {
            return false;
        }
        let before = self.next_wakeup();
        self.awaiting_since = Some(now);
        self.next_wakeup() < before
    }

    /// When [`Liveness::poll`] has something to do.
    pub fn next_wakeup(&self) -> i64 {
        if let Some(at) = self.ping_sent {
            return at + self.timing.deadline_ms;
        }
        let idle = self.last_rx + self.timing.idle_ms;
        match self.awaiting_since {
            Some(since) => idle.min(since.max(self.last_rx) + self.timing.probe_ms),
            None => idle,
        }
    }

    /// What to do at `now`. `still_awaiting` tells whether the host still waits for an
    /// answer (asked only when a probe would be sent, so it may cost a scan).
    pub fn poll(&mut self, now: i64, still_awaiting: impl FnOnce() -> bool) -> Step {
        if let Some(at) = self.ping_sent {
            let dead_at = at + self.timing.deadline_ms;
            return if now >= dead_at {
                Step::Dead
            } else {
                Step::WaitUntil(dead_at)
            };
        }
        if self.awaiting_since.is_some() && now >= self.next_wakeup() && !still_awaiting() {
            self.awaiting_since = None;
        }
        let due = self.next_wakeup();
        if now < due {
            return Step::WaitUntil(due);
        }
        self.nonce += 1;
        self.ping_sent = Some(now);
        Step::Ping {
            nonce: self.nonce,
            until: now + self.timing.deadline_ms,
        }
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::*;

    const T: Timing = Timing {
        idle_ms: 10_000,
        probe_ms: 1_000,
        deadline_ms: 2_000,
    };

    /// Polls at every wakeup from `from` up to `to`, as the connection's timer does; returns
    /// the steps that did something, with their times.
    fn run(l: &mut Liveness, from: i64, to: i64, awaiting: bool) -> Vec<(i64, Step)> {
        let mut now = from;
        let mut out = Vec::new();
        while now <= to {
            match l.poll(now, || awaiting) {
                Step::WaitUntil(at) => now = at,
                step @ Step::Ping { until, .. } => {
                    out.push((now, step));
                    now = until;
                }
                Step::Dead => {
                    out.push((now, Step::Dead));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn idle_connection_pings_every_interval_and_lives_while_answered() {
        let mut l = Liveness::new(T, 0);
        assert_eq!(l.poll(5_000, || false), Step::WaitUntil(10_000));
        assert_eq!(
            l.poll(10_000, || false),
            Step::Ping {
                nonce: 1,
                until: 12_000
            }
        );
        l.received(10_003); // pong
        assert_eq!(l.poll(12_000, || false), Step::WaitUntil(20_003));
    }

    #[test]
    fn idle_connection_that_goes_silent_is_dead_after_interval_plus_deadline() {
        let mut l = Liveness::new(T, 0);
        let steps = run(&mut l, 0, 60_000, false);
        assert_eq!(
            steps,
            vec![
                (
                    10_000,
                    Step::Ping {
                        nonce: 1,
                        until: 12_000
                    }
                ),
                (12_000, Step::Dead)
            ]
        );
    }

    #[test]
    fn awaited_answer_is_probed_quickly_and_death_known_within_3_s() {
        let mut l = Liveness::new(T, 0);
        // Quiet for a while, then a submit goes out at 7 s and nothing ever comes back.
        assert!(l.sent(7_000), "the probe is earlier than the idle ping");
        assert!(!l.sent(7_500), "already awaiting");
        let steps = run(&mut l, 7_000, 60_000, true);
        assert_eq!(
            steps,
            vec![
                (
                    8_000,
                    Step::Ping {
                        nonce: 1,
                        until: 10_000
                    }
                ),
                (10_000, Step::Dead)
            ]
        );
    }

    #[test]
    fn a_busy_connection_never_pings() {
        let mut l = Liveness::new(T, 0);
        l.sent(0);
        for t in (100..30_000).step_by(500) {
            l.received(t);
            assert!(matches!(l.poll(t, || true), Step::WaitUntil(_)));
        }
    }

    #[test]
    fn answered_requests_fall_back_to_the_idle_interval() {
        let mut l = Liveness::new(T, 0);
        l.sent(1_000);
        l.received(1_002); // the ack
                           // At the probe time the host has nothing open any more: no ping until idle.
        assert_eq!(l.poll(2_002, || false), Step::WaitUntil(11_002));
        assert!(matches!(l.poll(11_002, || false), Step::Ping { .. }));
    }

    #[test]
    fn a_late_frame_after_a_ping_revives_the_connection() {
        let mut l = Liveness::new(T, 0);
        l.sent(0);
        assert!(matches!(
            l.poll(1_000, || true),
            Step::Ping { nonce: 1, .. }
        ));
        l.received(2_900); // just in time
        assert_eq!(l.poll(3_000, || true), Step::WaitUntil(3_900));
        assert!(matches!(
            l.poll(3_900, || true),
            Step::Ping { nonce: 2, .. }
        ));
        assert_eq!(l.poll(5_899, || true), Step::WaitUntil(5_900));
        assert_eq!(l.poll(5_900, || true), Step::Dead);
    }
}
