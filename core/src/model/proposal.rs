//! Proposal payload contracts: the `payload` of messages of kind `proposal` and
//! `proposal_response` (docs/SCHEMA.md, "`msgs`").
//!
//! The JSON is the platform's contract: camelCase names, RFC 3339 UTC times, unknown fields
//! refused. In memory, times are milliseconds since the epoch.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{check_bytes, check_chars, ModelError};
use crate::limits::{COMMENT_MAX_CHARS, PAYLOAD_MAX_BYTES, SUGGESTED_SLOTS_MAX};
use crate::model::str_enum::str_enum;
use crate::model::time::{
    check_range, deserialize_ms, deserialize_ms_opt, serialize_ms, serialize_ms_opt,
    validate_timezone,
};

/// Longest proposal `location` (an address or a call link).
pub const LOCATION_MAX_CHARS: usize = 500;

str_enum!(
    /// What is proposed.
    ProposalType, "proposalType" {
        Visit = "visit",
        BookingManual = "booking_manual",
    }
);

str_enum!(
    /// How a visit happens; required for `visit`.
    MeetingType, "meetingType" {
        OnSite = "on_site",
        VideoCall = "video_call",
    }
);

str_enum!(
    /// Where a proposal stands; only `pending` moves, once.
    ProposalStatus, "status" {
        Pending = "pending",
        Accepted = "accepted",
        Rejected = "rejected",
        RescheduleRequested = "reschedule_requested",
    }
);

str_enum!(
    /// Who sent the proposal (clients answer, they do not propose).
    CreatedByRole, "createdByRole" {
        Owner = "owner",
        Staff = "staff",
        Root = "root",
    }
);

str_enum!(
    /// A client's answer to a proposal.
    ProposalResponse, "response" {
        Accept = "accept",
        Reject = "reject",
        RequestChange = "request_change",
    }
);

impl ProposalStatus {
    /// Only a pending proposal is answered, and an answer is final.
    pub fn can_move_to(self, next: ProposalStatus) -> bool {
        self == ProposalStatus::Pending && next != ProposalStatus::Pending
    }
}

impl ProposalResponse {
    /// The status the answered proposal takes.
    pub fn status(self) -> ProposalStatus {
        match self {
            ProposalResponse::Accept => ProposalStatus::Accepted,
            ProposalResponse::Reject => ProposalStatus::Rejected,
            ProposalResponse::RequestChange => ProposalStatus::RescheduleRequested,
        }
    }
}

/// A proposal's payload showing `status`, the one its message holds: the payload is
/// written once with `pending`, and the answer moves the message's own `status` field, so
/// readers see the document's status rather than the stale copy. `None`: not a JSON
/// object (left as written).
pub fn payload_with_status(payload: &str, status: ProposalStatus) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let object = value.as_object_mut()?;
    object.insert("status".into(), status.as_str().into());
    Some(value.to_string())
}

fn parse_payload<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ModelError> {
    check_bytes("payloadJson", json, PAYLOAD_MAX_BYTES)?;
    serde_json::from_str(json).map_err(|e| ModelError::InvalidFormat {
        field: "payloadJson",
        reason: e.to_string(),
    })
}

fn to_json_text<T: Serialize>(value: &T) -> String {
    // Strings, integers, booleans and unit enums under string keys: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn check_interval(
    (start_field, start): (&'static str, i64),
    (end_field, end): (&'static str, i64),
) -> Result<(), ModelError> {
    check_range(start_field, start)?;
    check_range(end_field, end)?;
    if end <= start {
        return Err(ModelError::OutOfRange {
            field: end_field,
            reason: format!("must be after {start_field}"),
        });
    }
    Ok(())
}

// `deserialize_with` takes no arguments: one function per field, so errors name the field.
fn de_time_start<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    deserialize_ms("timeStart", d)
}
fn de_time_end<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    deserialize_ms("timeEnd", d)
}
fn de_expires_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    deserialize_ms_opt("expiresAt", d)
}
fn de_slot_start<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    deserialize_ms("startDateTime", d)
}
fn de_slot_end<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    deserialize_ms("endDateTime", d)
}

/// The `payloadJson` of a `proposal` message. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposalPayload {
    pub proposal_type: ProposalType,
    #[serde(serialize_with = "serialize_ms", deserialize_with = "de_time_start")]
    pub time_start: i64,
    #[serde(serialize_with = "serialize_ms", deserialize_with = "de_time_end")]
    pub time_end: i64,
    /// IANA zone the times are shown in, e.g. `America/Mexico_City`.
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_type: Option<MeetingType>,
    /// An address or a call link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_resource_address: Option<bool>,
    pub status: ProposalStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_ms_opt",
        deserialize_with = "de_expires_at"
    )]
    pub expires_at: Option<i64>,
    pub created_by_role: CreatedByRole,
}

impl ProposalPayload {
    /// Parses and validates a payload: at most [`PAYLOAD_MAX_BYTES`], exactly the contract's
    /// fields (a JSON error is `invalid_format` on `payloadJson`), then [`Self::validate`].
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let payload: Self = parse_payload(json)?;
        payload.validate()?;
        Ok(payload)
    }

    /// The contract's JSON, times as `YYYY-MM-DDTHH:MM:SS.mmmZ`; absent options are omitted.
    pub fn to_json(&self) -> String {
        to_json_text(self)
    }

    /// Rules of any stored proposal, whatever its status.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_timezone("timezone", &self.timezone)?;
        check_interval(("timeStart", self.time_start), ("timeEnd", self.time_end))?;
        if let Some(at) = self.expires_at {
            check_range("expiresAt", at)?;
        }
        if self.proposal_type == ProposalType::Visit && self.meeting_type.is_none() {
            return Err(ModelError::Missing {
                field: "meetingType",
            });
        }
        if let Some(location) = &self.location {
            check_chars("location", location, LOCATION_MAX_CHARS)?;
        }
        Ok(())
    }

    /// [`Self::validate`], plus: a proposal is sent as `pending`; only answers move it on.
    pub fn validate_new(&self) -> Result<(), ModelError> {
        self.validate()?;
        if self.status != ProposalStatus::Pending {
            return Err(ModelError::OutOfRange {
                field: "status",
                reason: format!("a new proposal is pending, not {}", self.status.as_str()),
            });
        }
        Ok(())
    }
}

/// A time a client offers instead. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestedSlot {
    #[serde(serialize_with = "serialize_ms", deserialize_with = "de_slot_start")]
    pub start_date_time: i64,
    #[serde(serialize_with = "serialize_ms", deserialize_with = "de_slot_end")]
    pub end_date_time: i64,
    pub timezone: String,
}

impl SuggestedSlot {
    /// A valid zone, and an end after the start.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_timezone("timezone", &self.timezone)?;
        check_interval(
            ("startDateTime", self.start_date_time),
            ("endDateTime", self.end_date_time),
        )
    }
}

/// The `payloadJson` of a `proposal_response` message.
///
/// Rule: `suggestedSlots` is optional and belongs to a request for changes, so slots may
/// only be given with `request_change`; an empty list counts as none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposalResponsePayload {
    pub response: ProposalResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_slots: Option<Vec<SuggestedSlot>>,
}

impl ProposalResponsePayload {
    /// Parses and validates a payload: at most [`PAYLOAD_MAX_BYTES`], exactly the contract's
    /// fields (a JSON error is `invalid_format` on `payloadJson`), then [`Self::validate`].
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let payload: Self = parse_payload(json)?;
        payload.validate()?;
        Ok(payload)
    }

    /// The contract's JSON; absent options are omitted.
    pub fn to_json(&self) -> String {
        to_json_text(self)
    }

    /// Comment length, slots only with `request_change`, slot count, each slot.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(comment) = &self.comment {
            check_chars("comment", comment, COMMENT_MAX_CHARS)?;
        }
        let slots = self.suggested_slots.as_deref().unwrap_or_default();
        if !slots.is_empty() && self.response != ProposalResponse::RequestChange {
            return Err(ModelError::OutOfRange {
                field: "suggestedSlots",
                reason: format!(
                    "only sent with request_change, not {}",
                    self.response.as_str()
                ),
            });
        }
        if slots.len() > SUGGESTED_SLOTS_MAX {
            return Err(ModelError::TooLong {
                field: "suggestedSlots",
                len: slots.len(),
                max: SUGGESTED_SLOTS_MAX,
                unit: "slots",
            });
        }
        slots.iter().try_for_each(SuggestedSlot::validate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::{parse_rfc3339, MAX_MS};

    /// The platform's examples of the contract, verbatim (whitespace removed).
    const PROPOSAL: &str = r#"{"proposalType":"visit","timeStart":"2026-04-15T16:00:00.000Z","timeEnd":"2026-04-15T16:30:00.000Z","timezone":"America/Mexico_City","meetingType":"on_site","location":"Address or call link","fromResourceAddress":true,"status":"pending","expiresAt":"2026-04-14T00:00:00.000Z","createdByRole":"owner"}"#;
    const RESPONSE: &str = r#"{"response":"request_change","comment":"Can we move it to tomorrow?","suggestedSlots":[{"startDateTime":"2026-04-16T16:00:00.000Z","endDateTime":"2026-04-16T16:30:00.000Z","timezone":"America/Mexico_City"}]}"#;

    fn ms(s: &str) -> i64 {
        parse_rfc3339("t", s).expect("time")
    }

    fn proposal() -> ProposalPayload {
        ProposalPayload::from_json(PROPOSAL).expect("the example parses")
    }

    fn response() -> ProposalResponsePayload {
        ProposalResponsePayload::from_json(RESPONSE).expect("the example parses")
    }

    fn code_field(r: Result<(), ModelError>) -> (&'static str, &'static str) {
        let e = r.expect_err("should be refused");
        (e.code(), e.field())
    }

    #[test]
    fn seed_proposal_round_trips_exactly() {
        let p = proposal();
        assert_eq!(p.proposal_type, ProposalType::Visit);
        assert_eq!(p.time_start, ms("2026-04-15T16:00:00Z"));
        assert_eq!(p.time_end - p.time_start, 30 * 60 * 1000);
        assert_eq!(p.meeting_type, Some(MeetingType::OnSite));
        assert_eq!(p.from_resource_address, Some(true));
        assert_eq!(p.expires_at, Some(ms("2026-04-14T00:00:00Z")));
        assert_eq!(p.created_by_role, CreatedByRole::Owner);
        assert_eq!(p.to_json(), PROPOSAL);
        assert!(p.validate_new().is_ok());
    }

    #[test]
    fn seed_response_round_trips_exactly() {
        let r = response();
        assert_eq!(r.response, ProposalResponse::RequestChange);
        assert_eq!(r.to_json(), RESPONSE);
        let accept = r#"{"response":"accept"}"#;
        let parsed = ProposalResponsePayload::from_json(accept).expect("minimal");
        assert_eq!(parsed.to_json(), accept);
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let json = r#"{"proposalType":"booking_manual","timeStart":"2026-04-15T10:00:00-06:00","timeEnd":"2026-04-15T17:00:00Z","timezone":"UTC","expiresAt":null,"status":"pending","createdByRole":"staff"}"#;
        let p = ProposalPayload::from_json(json).expect("valid");
        assert_eq!(
            (p.meeting_type, p.location.clone(), p.expires_at),
            (None, None, None)
        );
        assert_eq!(p.time_start, ms("2026-04-15T16:00:00Z"));
        assert!(p
            .to_json()
            .contains(r#""timeStart":"2026-04-15T16:00:00.000Z""#));
    }

    #[test]
    fn enums_are_the_seeds() {
        assert_eq!(
            ProposalType::parse("booking_manual"),
            Ok(ProposalType::BookingManual)
        );
        assert_eq!(MeetingType::parse("video_call"), Ok(MeetingType::VideoCall));
        let rs = ProposalStatus::parse("reschedule_requested");
        assert_eq!(rs, Ok(ProposalStatus::RescheduleRequested));
        assert_eq!(CreatedByRole::parse("root"), Ok(CreatedByRole::Root));
        assert_eq!(
            ProposalResponse::parse("request_change"),
            Ok(ProposalResponse::RequestChange)
        );
        assert_eq!(
            ProposalType::parse("call").expect_err("refused").field(),
            "proposalType"
        );
        assert_eq!(
            CreatedByRole::parse("client").expect_err("refused").code(),
            "unknown_value"
        );
        for (from, to) in [("\"visit\"", "\"tour\""), ("\"owner\"", "\"client\"")] {
            let json = PROPOSAL.replacen(from, to, 1);
            let err = ProposalPayload::from_json(&json).expect_err(to);
            assert_eq!((err.code(), err.field()), ("invalid_format", "payloadJson"));
        }
    }

    #[test]
    fn meeting_type_is_required_for_visits_only() {
        let mut p = proposal();
        p.meeting_type = None;
        assert_eq!(code_field(p.validate()), ("missing", "meetingType"));
        p.proposal_type = ProposalType::BookingManual;
        assert!(p.validate().is_ok());
        p.meeting_type = Some(MeetingType::VideoCall);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn end_must_follow_start() {
        let mut p = proposal();
        p.time_end = p.time_start + 1;
        assert!(p.validate().is_ok());
        p.time_end = p.time_start;
        assert_eq!(code_field(p.validate()), ("out_of_range", "timeEnd"));
        let json = PROPOSAL.replace("2026-04-15T16:30:00.000Z", "2026-04-15T15:30:00.000Z");
        let err = ProposalPayload::from_json(&json).expect_err("ends first");
        assert_eq!(err.field(), "timeEnd");
    }

    #[test]
    fn times_must_be_rfc3339_and_representable() {
        let json = PROPOSAL.replace("2026-04-15T16:00:00.000Z", "2026-04-15 16:00");
        let err = ProposalPayload::from_json(&json).expect_err("bad time");
        assert_eq!((err.code(), err.field()), ("invalid_format", "payloadJson"));
        assert!(err.to_string().contains("timeStart"), "{err}");
        let mut p = proposal();
        p.time_end = MAX_MS + 1;
        assert_eq!(code_field(p.validate()), ("out_of_range", "timeEnd"));
        p.time_end = p.time_start + 1;
        p.expires_at = Some(i64::MIN);
        assert_eq!(code_field(p.validate()), ("out_of_range", "expiresAt"));
    }

    #[test]
    fn timezone_is_checked() {
        let mut p = proposal();
        for (tz, code) in [
            ("", "empty"),
            ("Mexico City", "invalid_format"),
            ("GMT", "invalid_format"),
        ] {
            p.timezone = tz.into();
            assert_eq!(code_field(p.validate()), (code, "timezone"), "{tz}");
        }
        p.timezone = format!("America/{}", "X".repeat(60));
        assert_eq!(code_field(p.validate()), ("too_long", "timezone"));
        p.timezone = "UTC".into();
        assert!(p.validate().is_ok());
    }

    #[test]
    fn location_is_bounded() {
        let mut p = proposal();
        p.location = Some("é".repeat(LOCATION_MAX_CHARS));
        assert!(p.validate().is_ok());
        p.location = Some("é".repeat(LOCATION_MAX_CHARS + 1));
        assert_eq!(code_field(p.validate()), ("too_long", "location"));
    }

    #[test]
    fn new_proposals_are_pending() {
        let mut p = proposal();
        assert!(p.validate_new().is_ok());
        p.status = ProposalStatus::Accepted;
        assert!(p.validate().is_ok());
        assert_eq!(code_field(p.validate_new()), ("out_of_range", "status"));
    }

    #[test]
    fn json_size_and_shape() {
        let big = PROPOSAL.replace("Address or call link", &"x".repeat(PAYLOAD_MAX_BYTES));
        let err = ProposalPayload::from_json(&big).expect_err("too big");
        assert_eq!((err.code(), err.field()), ("too_long", "payloadJson"));
        let extra = PROPOSAL.replacen('{', r#"{"price":10,"#, 1);
        let err = ProposalPayload::from_json(&extra).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert_eq!(
            ProposalPayload::from_json("[]")
                .expect_err("refused")
                .code(),
            "invalid_format"
        );
        let big = RESPONSE.replace("Can we", &"x".repeat(PAYLOAD_MAX_BYTES));
        let err = ProposalResponsePayload::from_json(&big).expect_err("too big");
        assert_eq!(err.code(), "too_long");
        let extra = RESPONSE.replacen("\"timezone\"", "\"tz\":\"UTC\",\"timezone\"", 1);
        assert!(ProposalResponsePayload::from_json(&extra).is_err());
    }

    #[test]
    fn only_pending_moves_and_only_once() {
        use ProposalStatus::*;
        for next in [Accepted, Rejected, RescheduleRequested] {
            assert!(Pending.can_move_to(next));
            for from in [Accepted, Rejected, RescheduleRequested] {
                assert!(!from.can_move_to(next));
                assert!(!from.can_move_to(Pending));
            }
        }
        assert!(!Pending.can_move_to(Pending));
    }

    #[test]
    fn responses_map_to_statuses() {
        assert_eq!(ProposalResponse::Accept.status(), ProposalStatus::Accepted);
        assert_eq!(ProposalResponse::Reject.status(), ProposalStatus::Rejected);
        let change = ProposalResponse::RequestChange.status();
        assert_eq!(change, ProposalStatus::RescheduleRequested);
    }

    #[test]
    fn response_comment_is_bounded() {
        let mut r = response();
        r.comment = Some("é".repeat(COMMENT_MAX_CHARS));
        assert!(r.validate().is_ok());
        r.comment = Some("é".repeat(COMMENT_MAX_CHARS + 1));
        assert_eq!(code_field(r.validate()), ("too_long", "comment"));
    }

    #[test]
    fn slots_only_with_request_change() {
        let mut r = response();
        r.response = ProposalResponse::Accept;
        assert_eq!(code_field(r.validate()), ("out_of_range", "suggestedSlots"));
        r.suggested_slots = Some(Vec::new());
        assert!(r.validate().is_ok());
        let json = RESPONSE.replace("request_change", "reject");
        let err = ProposalResponsePayload::from_json(&json).expect_err("slots on reject");
        assert_eq!(err.field(), "suggestedSlots");
    }

    #[test]
    fn slot_count_and_each_slot_are_checked() {
        let mut r = response();
        let slot = r.suggested_slots.as_ref().expect("slots")[0].clone();
        r.suggested_slots = Some(vec![slot.clone(); SUGGESTED_SLOTS_MAX]);
        assert!(r.validate().is_ok());
        r.suggested_slots = Some(vec![slot.clone(); SUGGESTED_SLOTS_MAX + 1]);
        assert_eq!(code_field(r.validate()), ("too_long", "suggestedSlots"));
        let mut bad = slot.clone();
        bad.end_date_time = bad.start_date_time;
        r.suggested_slots = Some(vec![slot.clone(), bad]);
        assert_eq!(code_field(r.validate()), ("out_of_range", "endDateTime"));
        let mut bad = slot;
        bad.timezone = "nowhere".into();
        assert_eq!(code_field(bad.validate()), ("invalid_format", "timezone"));
        let json = RESPONSE.replace("2026-04-16T16:30:00.000Z", "2026-02-30T16:30:00.000Z");
        let err = ProposalResponsePayload::from_json(&json).expect_err("no such date");
        assert!(err.to_string().contains("endDateTime"), "{err}");
    }
}
