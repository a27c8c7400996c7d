//! RFC 3339 timestamps as milliseconds since the Unix epoch, and IANA-like time zone names.
//!
//! Hand-written (no chrono/time crate) to keep the core small and wasm-friendly. Only the
//! profile the proposal contracts use is accepted: `YYYY-MM-DDTHH:MM:SS(.f{1,9})?` then `Z`
//! or `±HH:MM`.

use crate::error::ModelError;

/// The earliest representable instant, `0000-01-01T00:00:00.000Z` (RFC 3339 years are 4 digits).
pub const MIN_MS: i64 = -62_167_219_200_000;
/// The latest representable instant, `9999-12-31T23:59:59.999Z`.
pub const MAX_MS: i64 = 253_402_300_799_999;
/// Longest time zone name (longest IANA name is 32; room for `Etc/GMT+n` style aliases).
pub const TIMEZONE_MAX_CHARS: usize = 64;

const MS_PER_DAY: i64 = 86_400_000;

fn bad(field: &'static str, reason: &str) -> ModelError {
    ModelError::InvalidFormat {
        field,
        reason: format!("{reason} (expected YYYY-MM-DDTHH:MM:SS(.fff)Z or ±HH:MM offset)"),
    }
}

/// Reads exactly `len` ASCII digits at `at`.
fn digits(bytes: &[u8], at: usize, len: usize) -> Option<u32> {
    let slice = bytes.get(at..at + len)?;
    slice.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: `(year, month, day)`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch (UTC).
///
/// Fractions beyond milliseconds are truncated; leap seconds (`:60`) are refused because
/// epoch milliseconds cannot represent them.
pub fn parse_rfc3339(field: &'static str, s: &str) -> Result<i64, ModelError> {
    let b = s.as_bytes();
    let num = |at, len| digits(b, at, len).ok_or_else(|| bad(field, "expected digits"));
    let sep = |at: usize, want: u8| match b.get(at) {
        Some(c) if *c == want => Ok(()),
        _ => Err(bad(field, &format!("expected {:?} at {at}", want as char))),
    };
    let year = i64::from(num(0, 4)?);
    sep(4, b'-')?;
    let month = num(5, 2)?;
    sep(7, b'-')?;
    let day = num(8, 2)?;
    sep(10, b'T')?;
    let hour = num(11, 2)?;
    sep(13, b':')?;
    let minute = num(14, 2)?;
    sep(16, b':')?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad(field, "no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad(field, "no such time of day"));
    }

    let mut at = 19;
    let mut millis = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let frac = &b[start..at];
        if frac.is_empty() || frac.len() > 9 {
            return Err(bad(field, "a fraction has 1 to 9 digits"));
        }
        // Keep the first three digits, padded: ".5" is 500 ms, ".1239" is 123 ms.
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
        }
    }

    let offset_minutes = match (b.get(at), b.len() - at) {
        (Some(b'Z'), 1) => 0,
        (Some(sign @ (b'+' | b'-')), 6) => {
            sep(at + 3, b':')?;
            let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err(bad(field, "no such offset"));
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return Err(bad(field, "expected Z or an offset at the end")),
    };

    let secs = i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    let ms = days_from_civil(year, month, day) * MS_PER_DAY + secs * 1000 + millis;
    check_range(field, ms)?;
    Ok(ms)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// Values outside [`MIN_MS`, `MAX_MS`] are clamped so the output always parses back;
/// [`check_range`] is how validation refuses them.
pub fn format_rfc3339(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Refuses instants that RFC 3339 cannot write (years outside 0000-9999).
pub fn check_range(field: &'static str, ms: i64) -> Result<(), ModelError> {
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(ModelError::OutOfRange {
            field,
            reason: "outside years 0000-9999".into(),
        });
    }
    Ok(())
}

/// Serde `serialize_with`: epoch milliseconds written as [`format_rfc3339`].
pub fn serialize_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

/// Serde `serialize_with` for an optional time (pair it with `skip_serializing_if`).
pub fn serialize_ms_opt<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serialize_ms(ms, s),
        None => s.serialize_none(),
    }
}

/// For `deserialize_with` functions: reads an RFC 3339 string; errors name `field`.
pub fn deserialize_ms<'de, D: serde::Deserializer<'de>>(
    field: &'static str,
    d: D,
) -> Result<i64, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_rfc3339(field, &text).map_err(serde::de::Error::custom)
}

/// [`deserialize_ms`] for an optional time (`null` is `None`).
pub fn deserialize_ms_opt<'de, D: serde::Deserializer<'de>>(
    field: &'static str,
    d: D,
) -> Result<Option<i64>, D::Error> {
    let text = <Option<String> as serde::Deserialize>::deserialize(d)?;
    text.map(|t| parse_rfc3339(field, &t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Checks an IANA-like time zone name: `UTC`, or `Area/Location(/More)` made of
/// `A-Z a-z 0-9 _ + -`. Whether the zone exists is left to clients with a tz database.
pub fn validate_timezone(field: &'static str, tz: &str) -> Result<(), ModelError> {
    if tz.is_empty() {
        return Err(ModelError::Empty { field });
    }
    crate::error::check_chars(field, tz, TIMEZONE_MAX_CHARS)?;
    if tz == "UTC" {
        return Ok(());
    }
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
    };
    if !tz.contains('/') || !tz.split('/').all(part_ok) {
        return Err(ModelError::InvalidFormat {
            field,
            reason: "expected UTC or Area/Location (A-Z a-z 0-9 _ + -)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<i64, ModelError> {
        parse_rfc3339("t", s)
    }

    #[test]
    fn parses_the_seed_examples() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("2026-04-15T16:00:00.000Z"), Ok(1_776_268_800_000));
        assert_eq!(
            format_rfc3339(1_776_268_800_000),
            "2026-04-15T16:00:00.000Z"
        );
    }

    #[test]
    fn round_trips_leap_years_and_dates_before_1970() {
        for s in [
            "2024-02-29T12:34:56.789Z",
            "2000-02-29T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "1900-03-01T00:00:00.001Z",
            "1600-02-29T08:00:00.000Z",
            "0000-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let ms = parse(s).expect(s);
            assert_eq!(format_rfc3339(ms), s);
        }
        assert_eq!(parse("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(parse("0000-01-01T00:00:00Z"), Ok(MIN_MS));
        assert_eq!(parse("9999-12-31T23:59:59.999Z"), Ok(MAX_MS));
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = days_from_civil(1800, 1, 1);
        for days in start..start + 146_097 * 2 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn refuses_impossible_dates() {
        assert!(parse("2023-02-28T00:00:00Z").is_ok());
        for s in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-06-30T23:59:60Z",
        ] {
            assert_eq!(parse(s).expect_err(s).code(), "invalid_format", "{s}");
        }
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            parse("2026-04-15T10:00:00-06:00"),
            parse("2026-04-15T16:00:00Z")
        );
        assert_eq!(
            parse("2026-04-16T01:30:00+09:30"),
            parse("2026-04-15T16:00:00Z")
        );
        assert_eq!(
            parse("2026-04-15T16:00:00+00:00"),
            parse("2026-04-15T16:00:00Z")
        );
        assert!(parse("2026-04-15T16:00:00+24:00").is_err());
        assert!(parse("2026-04-15T16:00:00+0100").is_err());
        assert_eq!(
            parse("0000-01-01T00:00:00+01:00")
                .expect_err("before year 0")
                .code(),
            "out_of_range"
        );
    }

    #[test]
    fn fractions_keep_milliseconds() {
        assert_eq!(parse("1970-01-01T00:00:00.5Z"), Ok(500));
        assert_eq!(parse("1970-01-01T00:00:00.123456789Z"), Ok(123));
        assert!(parse("1970-01-01T00:00:00.Z").is_err());
        assert!(parse("1970-01-01T00:00:00.1234567890Z").is_err());
    }

    #[test]
    fn refuses_other_shapes() {
        for s in [
            "",
            "2026-04-15",
            "2026-04-15 16:00:00Z",
            "2026-04-15T16:00:00",
            "2026-04-15T16:00:00ZZ",
            "2026-4-15T16:00:00Z",
            "+2026-04-15T16:00:00Z",
            "２０２６-04-15T16:00:00Z",
        ] {
            assert_eq!(parse(s).expect_err(s).field(), "t");
        }
    }

    #[test]
    fn format_clamps_and_range_is_checked() {
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert!(check_range("t", 0).is_ok());
        assert_eq!(
            check_range("t", MAX_MS + 1).expect_err("refused").code(),
            "out_of_range"
        );
    }

    #[test]
    fn timezones_are_iana_like() {
        for tz in [
            "UTC",
            "America/Mexico_City",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(validate_timezone("timezone", tz).is_ok(), "{tz}");
        }
        assert_eq!(
            validate_timezone("timezone", "")
                .expect_err("refused")
                .code(),
            "empty"
        );
        let long = format!("Area/{}", "x".repeat(TIMEZONE_MAX_CHARS));
        assert_eq!(
            validate_timezone("timezone", &long)
                .expect_err("refused")
                .code(),
            "too_long"
        );
        for tz in [
            "GMT",
            "Europe/",
            "/Paris",
            "Europe//Paris",
            "Europe/Par is",
            "Europe/Zürich",
        ] {
            let err = validate_timezone("timezone", tz).expect_err(tz);
            assert_eq!(err.code(), "invalid_format", "{tz}");
        }
    }
}
