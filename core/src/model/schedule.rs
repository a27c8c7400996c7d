//! Scheduled messages (a message's `scheduled_at`): the bounds of a schedule's time and the
//! typed errors of scheduling. A scheduled message waits in its author's `private`
//! document (`scheduled/<message>`), which only the author reads, until the server posts it
//! at its time (docs/FEATURES.md, "Scheduled messages").

use crate::ids::ConvId;
use crate::limits::BODY_MAX_CHARS;

/// How far in the past a new time may be (clock skew between a device and the server): a
/// time before `now - SCHEDULE_SKEW_MS` is `schedule_in_past`.
pub const SCHEDULE_SKEW_MS: i64 = 60_000;

/// How far ahead a message may be scheduled: 366 days (`schedule_too_far`).
pub const SCHEDULE_MAX_AHEAD_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// Pending scheduled messages an account may hold (its private document stays small).
pub const SCHEDULE_MAX_PENDING: usize = 100;

/// Why a schedule, an edit or a cancel was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{at} is in the past (now {now}, {SCHEDULE_SKEW_MS} ms of skew allowed)")]
    InPast { at: i64, now: i64 },
    #[error("{at} is more than {SCHEDULE_MAX_AHEAD_MS} ms after now ({now})")]
    TooFar { at: i64, now: i64 },
    #[error("no pending scheduled message {0} of this account")]
    NotFound(String),
    #[error("the scheduled message {0} was refused; schedule it again or cancel it")]
    Refused(String),
    #[error("{SCHEDULE_MAX_PENDING} scheduled messages are pending already")]
    TooMany,
    #[error("the body is empty or longer than {BODY_MAX_CHARS} characters")]
    Body,
}

impl ScheduleError {
    /// Stable, machine-readable code (REST `code`, wasm error `code`).
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::InPast { .. } => "schedule_in_past",
            ScheduleError::TooFar { .. } => "schedule_too_far",
            ScheduleError::NotFound(_) => "schedule_not_found",
            ScheduleError::Refused(_) => "schedule_refused",
            ScheduleError::TooMany => "schedule_too_many",
            ScheduleError::Body => "invalid_body",
        }
    }
}

/// Checks a new time against `now` (the clock of whoever checks: the device or the server).
pub fn check_at(at: i64, now: i64) -> Result<(), ScheduleError> {
    if at < now.saturating_sub(SCHEDULE_SKEW_MS) {
        return Err(ScheduleError::InPast { at, now });
    }
    if at > now.saturating_add(SCHEDULE_MAX_AHEAD_MS) {
        return Err(ScheduleError::TooFar { at, now });
    }
    Ok(())
}

/// Checks a scheduled body (a text message's body).
pub fn check_body(body: &str) -> Result<(), ScheduleError> {
    let chars = body.chars().count();
    if chars == 0 || chars > BODY_MAX_CHARS {
        return Err(ScheduleError::Body);
    }
    Ok(())
}

/// A new scheduled message, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule {
    pub conv: ConvId,
    pub body: String,
    pub at: i64,
}

impl NewSchedule {
    pub fn validate(&self, now: i64) -> Result<(), ScheduleError> {
        check_body(&self.body)?;
        check_at(self.at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn times_within_the_bounds_are_taken() {
        assert_eq!(check_at(NOW, NOW), Ok(()));
        assert_eq!(check_at(NOW - SCHEDULE_SKEW_MS, NOW), Ok(()));
        assert_eq!(check_at(NOW + SCHEDULE_MAX_AHEAD_MS, NOW), Ok(()));
    }

    #[test]
    fn times_past_the_skew_or_too_far_are_refused_with_their_codes() {
        let past = check_at(NOW - SCHEDULE_SKEW_MS - 1, NOW).unwrap_err();
        assert_eq!(past.code(), "schedule_in_past");
        let far = check_at(NOW + SCHEDULE_MAX_AHEAD_MS + 1, NOW).unwrap_err();
        assert_eq!(far.code(), "schedule_too_far");
        assert_eq!(
            check_at(i64::MIN, NOW).unwrap_err().code(),
            "schedule_in_past"
        );
        assert_eq!(
            check_at(i64::MAX, NOW).unwrap_err().code(),
            "schedule_too_far"
        );
    }

    #[test]
    fn bodies_must_be_text_within_the_limit() {
        assert_eq!(check_body("").unwrap_err().code(), "invalid_body");
        assert_eq!(
            check_body(&"x".repeat(BODY_MAX_CHARS + 1)).unwrap_err(),
            ScheduleError::Body
        );
        assert_eq!(check_body("hello"), Ok(()));
    }
}
