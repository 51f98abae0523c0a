//! Timestamps as the state file spells them: lenient parsing, Python-exact formatting.
//!
//! Owns the one way a moment is read from or written to the state file, and the range of moments
//! that can be (the years Python's `datetime` has: 0001 to 9999, in UTC). It must not read the clock:
//! every function here takes the moment it works on.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};

/// A moment in UTC with microsecond precision, the resolution Python's `datetime` keeps.
pub type Timestamp = DateTime<Utc>;

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// Why a text is not a moment this product takes as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MomentError {
    /// The text is no form [`parse`] reads.
    #[error("not an RFC 3339 time")]
    NotATime,
    /// The moment is outside [`earliest`] ..= [`latest`] in UTC.
    #[error("outside 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999Z in UTC")]
    OutOfRange,
}

/// The first moment a state file can hold: `0001-01-01T00:00:00+00:00`, Python's `datetime.min`.
pub fn earliest() -> Timestamp {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .map_or(DateTime::UNIX_EPOCH, |d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
}

/// The last moment a state file can hold: `9999-12-31T23:59:59.999999+00:00`, Python's
/// `datetime.max`.
pub fn latest() -> Timestamp {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .map_or(DateTime::UNIX_EPOCH, |t| Utc.from_utc_datetime(&t))
}

/// Whether a moment can be written so that Python's `fromisoformat` (and [`parse`]) reads it back.
pub fn in_range(at: Timestamp) -> bool {
    // By the year first: only the last year's end needs the comparison.
    match at.year() {
        1..=9998 => true,
        9999 => at <= latest(),
        _ => false,
    }
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// Parses a moment given as input (`--now`, a serve message's `ts`): what [`parse`] reads, and
/// only inside [`earliest`] ..= [`latest`] once taken to UTC.
pub fn parse_moment(text: &str) -> Result<Timestamp, MomentError> {
    let at = parse_any(text).ok_or(MomentError::NotATime)?;
    if in_range(at) { Ok(at) } else { Err(MomentError::OutOfRange) }
}

/// Cuts a moment to whole microseconds, so that what is written reads back equal.
pub fn truncate_to_micros(at: Timestamp) -> Timestamp {
    let nanos = at.nanosecond();
    at.with_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

/// Formats a moment the way Python's `datetime.isoformat()` formats an aware UTC value:
/// `2026-04-18T20:00:00+00:00`, with `.ffffff` only when the microseconds are not zero. A moment
/// past either end of the range (a deadline computed near it) is written as that end, so nothing
/// written is unreadable.
pub fn format(at: Timestamp) -> String {
    let mut out = Vec::with_capacity(32);
    write(&mut out, at);
    // Only ASCII digits and punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`format()`]'s text to `out`, from the moment's date and time fields (no format string
/// is interpreted).
pub fn write(out: &mut Vec<u8>, at: Timestamp) {
    let at = at.clamp(earliest(), latest()).naive_utc();
    let year = u32::try_from(at.year()).unwrap_or(1);
    digits(out, year / 100);
    digits(out, year % 100);
    out.push(b'-');
    digits(out, at.month());
    out.push(b'-');
    digits(out, at.day());
    out.push(b'T');
    digits(out, at.hour());
    out.push(b':');
    digits(out, at.minute());
    out.push(b':');
    digits(out, at.second());
    let micros = at.nanosecond() / 1_000 % 1_000_000;
    if micros != 0 {
        out.push(b'.');
        digits(out, micros / 10_000);
        digits(out, micros / 100 % 100);
        digits(out, micros % 100);
    }
    out.extend_from_slice(b"+00:00");
}

/// Rounds a moment up to whole microseconds: a deadline given at the precision moments leave the
/// engine with is never before the moment it stands for.
pub fn ceil_to_micros(at: Timestamp) -> Timestamp {
    let cut = truncate_to_micros(at);
    if cut < at { cut + chrono::TimeDelta::microseconds(1) } else { cut }
}

/// A moment on the wire: [`format()`]'s text out, [`parse_moment`]'s reading in (for serde's
/// `with`; reading only with the `serde` feature).
pub(crate) mod wire {
    use serde::Serializer;
    #[cfg(feature = "serde")]
    use serde::{Deserialize, Deserializer, de::Error};

    use super::Timestamp;

    pub(crate) fn serialize<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*at))
    }

    #[cfg(feature = "serde")]
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_moment(&text).map_err(|e| D::Error::custom(format_args!("{text:?}: {e}")))
    }

    /// The same for an optional moment, `null` when absent.
    pub(crate) mod option {
        use serde::Serializer;

        use super::Timestamp;

        pub(crate) fn serialize<S: Serializer>(
            at: &Option<Timestamp>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// Appends a number below 100 as two digits.
fn digits(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Parses a stored moment. Accepts RFC 3339 with `Z` or any offset, the same without seconds or
/// with a space instead of `T`, a bare date (midnight), and naive forms, which are taken as UTC.
/// Returns `None` for anything else, and for a moment outside [`earliest`] ..= [`latest`] once
/// taken to UTC; never panics.
pub fn parse(text: &str) -> Option<Timestamp> {
    parse_any(text).filter(|at| in_range(*at))
}

/// [`parse`] without the range check.
fn parse_any(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.len() < 10 || !text.is_ascii() {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let date = match plain_date(date.as_bytes()) {
        Some(date) => date,
        None => NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?,
    };
    if rest.is_empty() {
        return Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)));
    }
    if let Some(time) = written_clock(rest.as_bytes()) {
        return Some(Utc.from_utc_datetime(&NaiveDateTime::new(date, time)));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = split_offset(rest)?;
    let time = parse_clock(clock)?;
    let naive = NaiveDateTime::new(date, time);
    let at = match offset {
        None => Utc.from_utc_datetime(&naive),
        Some(offset) => offset.from_local_datetime(&naive).single()?.with_timezone(&Utc),
    };
    Some(truncate_to_micros(at))
}

/// `YYYY-MM-DD` with every digit written, read without chrono's format machinery (the form every
/// stored moment has); `None` for anything else, which chrono's parser then reads as before.
fn plain_date(date: &[u8]) -> Option<NaiveDate> {
    if date.len() != 10 || date[4] != b'-' || date[7] != b'-' {
        return None;
    }
    let year = i32::try_from(number(&date[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&date[5..7])?, number(&date[8..10])?)
}

/// `THH:MM:SS+00:00` or `THH:MM:SS.ffffff+00:00`, the form [`format`] writes, read digit by digit;
/// `None` for any other form, which the general reading then takes (to the same moment).
fn written_clock(rest: &[u8]) -> Option<NaiveTime> {
    let (clock, micros) = match rest.len() {
        15 => (rest, 0),
        22 if rest[9] == b'.' => (rest, number(&rest[10..16])?),
        _ => return None,
    };
    let tail = &clock[clock.len() - 6..];
    if clock[0] != b'T' || clock[3] != b':' || clock[6] != b':' || tail != b"+00:00" {
        return None;
    }
    let (hour, minute, second) =
        (number(&clock[1..3])?, number(&clock[4..6])?, number(&clock[7..9])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
}

/// A run of ASCII digits as a number; `None` when any byte is not a digit.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

/// Splits `HH:MM[:SS[.f]]` from a trailing `Z`, `+HH:MM`, `+HHMM` or `+HH`.
fn split_offset(rest: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, FixedOffset::east_opt(0)));
    }
    let Some(sign_at) = rest.rfind(['+', '-']) else {
        return Some((rest, None));
    };
    let (clock, offset) = rest.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4 | 6) {
        return None;
    }
    let hours: i32 = digits[0..2].parse().ok()?;
    let minutes: i32 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
    let seconds: i32 = digits.get(4..6).map_or(Some(0), |s| s.parse().ok())?;
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let offset = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60 + seconds))?;
    Some((clock, Some(offset)))
}

/// Parses `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f` with one to nine fractional digits.
fn parse_clock(clock: &str) -> Option<NaiveTime> {
    let (whole, fraction) = match clock.split_once(['.', ',']) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = whole.split(':');
    let mut field = |max: u32| -> Option<u32> {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok().filter(|v| *v <= max)
    };
    let hour = field(23)?;
    let minute = field(59)?;
    let second = if whole.len() > 5 { field(59)? } else { 0 };
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if whole.len() <= 5 || f.is_empty() || f.len() > 9 => return None,
        Some(f) if !f.bytes().all(|b| b.is_ascii_digit()) => return None,
        Some(f) => f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32),
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(parse(input).map(format).as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn parses_every_accepted_form() {
        let cases = [
            ("2026-04-18T20:00:00+00:00", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18T20:00:00Z", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18T22:00:00+02:00", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18T15:30:00-04:30", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18T20:00:00+0000", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18T20:00:00", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18 20:00", Some("2026-04-18T20:00:00+00:00")),
            ("2026-04-18", Some("2026-04-18T00:00:00+00:00")),
            ("2026-04-18T20:00:00.5Z", Some("2026-04-18T20:00:00.500000+00:00")),
            ("2026-04-18T20:00:00.000001+00:00", Some("2026-04-18T20:00:00.000001+00:00")),
            ("2026-04-18T20:00:00.123456789Z", Some("2026-04-18T20:00:00.123456+00:00")),
            ("not-an-iso-string-2026-99-99", None),
            ("2026-99-99T00:00:00", None),
            ("2026-04-18T25:00:00", None),
            ("2026-04-18T20:00:00+24:00", None),
            ("2026-04-18T20:00:00.", None),
            ("", None),
            ("2026-04-18T20", None),
            ("2026-04-18T20:00:00+00:00:00:00", None),
            ("２０２６-04-18", None),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn refuses_input_moments_python_cannot_write_back() {
        let refused = [
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59.9999999-00:01",
            "0000-01-01T00:00:00Z",
            "0000-12-31T23:59:59Z",
            "0001-01-01T00:00:00+00:01",
        ];
        for text in refused {
            assert_eq!(parse_moment(text), Err(MomentError::OutOfRange), "{text}");
            assert_eq!(parse(text), None, "{text}");
        }
        assert_eq!(parse_moment("soon"), Err(MomentError::NotATime));
        let ends = [
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"),
            ("0001-01-01T00:59:00+00:59", "0001-01-01T00:00:00+00:00"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999+00:00"),
            ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999999+00:00"),
            ("9999-12-31T00:00:00-23:59", "9999-12-31T23:59:00+00:00"),
        ];
        for (text, written) in ends {
            assert_eq!(parse_moment(text).map(format).as_deref(), Ok(written), "{text}");
        }
    }

    #[test]
    fn nothing_is_formatted_outside_the_range() {
        let (first, last) = (earliest(), latest());
        assert_eq!(format(last + chrono::Duration::days(2)), "9999-12-31T23:59:59.999999+00:00");
        assert_eq!(format(first - chrono::Duration::seconds(1)), "0001-01-01T00:00:00+00:00");
        assert_eq!(format(DateTime::<Utc>::MAX_UTC), "9999-12-31T23:59:59.999999+00:00");
        assert_eq!(format(DateTime::<Utc>::MIN_UTC), "0001-01-01T00:00:00+00:00");
    }

    #[test]
    fn the_field_writer_spells_what_strftime_spells() {
        let mut at = earliest();
        let step =
            chrono::Duration::seconds(7_777_777_777) + chrono::Duration::microseconds(12_345);
        while at < latest() {
            let micros = at.nanosecond() / 1_000;
            let expected = if micros == 0 {
                at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                format!("{}.{micros:06}+00:00", at.format("%Y-%m-%dT%H:%M:%S"))
            };
            assert_eq!(format(at), expected);
            at += step;
        }
    }

    #[test]
    fn the_written_form_reads_as_the_general_reading_reads_it() {
        let cases = [
            "2026-04-18T20:00:00+00:00",
            "2026-04-18T20:00:00.000001+00:00",
            "2026-04-18T23:59:59.999999+00:00",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59.999999+00:00",
            "2024-02-29T12:30:45.5000000+00:00",
            "2026-02-29T12:30:45+00:00",
            "2026-04-18T24:00:00+00:00",
            "2026-04-18T20:60:00+00:00",
            "2026-04-18T20:00:60+00:00",
            "2026-04-18T20:00:00.12345x+00:00",
            "2026-04-18T20:00:00+00:01",
            "2026-04-18t20:00:00+00:00",
        ];
        for text in cases {
            let general = (|| {
                let (date, rest) = text.split_at(10);
                let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
                let (clock, offset) = split_offset(rest.strip_prefix(['T', 't', ' '])?)?;
                let naive = NaiveDateTime::new(date, parse_clock(clock)?);
                let at = offset?.from_local_datetime(&naive).single()?.with_timezone(&Utc);
                Some(truncate_to_micros(at))
            })();
            assert_eq!(parse_any(text), general, "{text}");
        }
    }

    #[test]
    fn formats_like_python_isoformat() {
        let at = Utc.with_ymd_and_hms(2026, 4, 18, 20, 0, 0).unwrap();
        assert_eq!(format(at), "2026-04-18T20:00:00+00:00");
        let at = at + chrono::Duration::microseconds(1);
        assert_eq!(format(at), "2026-04-18T20:00:00.000001+00:00");
    }
}
