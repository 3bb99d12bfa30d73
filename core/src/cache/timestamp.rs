//! RFC 3339 times as Go's `time.Time` writes them in JSON (spec section 2.3).
//!
//! Go writes `RFC3339Nano`: the fraction of a second with trailing zeros removed (and no `.` at
//! all when it is zero), then `Z` for a zero offset or `+hh:mm`/`-hh:mm`. A [`Timestamp`] keeps
//! the parsed wall-clock components and the offset, so any value Go wrote comes back byte for
//! byte, and other spellings of the same time (`+00:00`, trailing zeros) come out the way Go
//! would re-marshal them. `core` reads no clock: callers build timestamps from times they hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar time with a UTC offset, in Go's JSON form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanos: u32,
    /// Offset east of UTC, in minutes.
    offset_minutes: i16,
}

/// Why a string is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {input:?} is not RFC 3339: {reason}")]
pub struct TimestampError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Timestamp {
    /// Go's zero time, `0001-01-01T00:00:00Z`, which BuildKit writes for "no time".
    pub const ZERO: Timestamp = Timestamp {
        year: 1,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        offset_minutes: 0,
    };

    /// The UTC time `nanos` nanoseconds after the Unix epoch, or `None` outside years 0 to 9999
    /// (which Go refuses to marshal).
    pub fn from_unix_nanos(nanos: i128) -> Option<Timestamp> {
        let secs = nanos.div_euclid(1_000_000_000);
        let frac = nanos.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let in_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(i64::try_from(days).ok()?);
        if !(0..=9999).contains(&year) {
            return None;
        }
        Some(Timestamp {
            year: year as u16,
            month,
            day,
            hour: (in_day / 3600) as u8,
            minute: (in_day / 60 % 60) as u8,
            second: (in_day % 60) as u8,
            nanos: frac,
            offset_minutes: 0,
        })
    }

    /// Nanoseconds since the Unix epoch of the instant this names (offset applied), for
    /// comparing times written in different zones ("newest result wins", spec section 9.2).
    pub fn unix_nanos(&self) -> i128 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = i128::from(days) * 86_400
            + i128::from(self.hour) * 3600
            + i128::from(self.minute) * 60
            + i128::from(self.second)
            - i128::from(self.offset_minutes) * 60;
        secs * 1_000_000_000 + i128::from(self.nanos)
    }

    /// Whether this is Go's zero time.
    pub fn is_zero(&self) -> bool {
        self.unix_nanos() == Timestamp::ZERO.unix_nanos()
    }

    /// The offset east of UTC in minutes.
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }
}

impl Default for Timestamp {
    fn default() -> Timestamp {
        Timestamp::ZERO
    }
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads exactly `n` ASCII digits at `at`.
fn digits(bytes: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = bytes.get(at..at + n)?;
    slice.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(input: &str) -> Result<Timestamp, TimestampError> {
        let fail = |reason| TimestampError {
            input: input.to_owned(),
            reason,
        };
        let b = input.as_bytes();
        let field = |at, n, reason| digits(b, at, n).ok_or_else(|| fail(reason));
        let expect = |at: usize, c: u8, reason| {
            if b.get(at) == Some(&c) {
                Ok(())
            } else {
                Err(fail(reason))
            }
        };
        let year = field(0, 4, "expected a four-digit year")? as u16;
        expect(4, b'-', "expected `-` after the year")?;
        let month = field(5, 2, "expected a two-digit month")? as u8;
        expect(7, b'-', "expected `-` after the month")?;
        let day = field(8, 2, "expected a two-digit day")? as u8;
        expect(10, b'T', "expected `T` between date and time")?;
        let hour = field(11, 2, "expected a two-digit hour")? as u8;
        expect(13, b':', "expected `:` after the hour")?;
        let minute = field(14, 2, "expected two-digit minutes")? as u8;
        expect(16, b':', "expected `:` after the minutes")?;
        let second = field(17, 2, "expected two-digit seconds")? as u8;
        if !(1..=12).contains(&month) {
            return Err(fail("month out of range"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(fail("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail("time of day out of range"));
        }
        let mut at = 19;
        let mut nanos = 0u32;
        // Go accepts `,` as the decimal separator too (since Go 1.17).
        if matches!(b.get(at), Some(b'.' | b',')) {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                // Go keeps nine digits and ignores the rest.
                if at - start < 9 {
                    nanos = nanos * 10 + u32::from(b[at] - b'0');
                }
                at += 1;
            }
            let count = at - start;
            if count == 0 {
                return Err(fail("expected digits after `.`"));
            }
            for _ in count..9 {
                nanos *= 10;
            }
        }
        let offset_minutes = match b.get(at) {
            Some(b'Z') => {
                at += 1;
                0
            }
            Some(&sign @ (b'+' | b'-')) => {
                let oh = field(at + 1, 2, "expected a two-digit offset hour")?;
                expect(at + 3, b':', "expected `:` in the offset")?;
                let om = field(at + 4, 2, "expected two-digit offset minutes")?;
                if oh > 23 || om > 59 {
                    return Err(fail("offset out of range"));
                }
                at += 6;
                let minutes = (oh * 60 + om) as i16;
                if sign == b'-' { -minutes } else { minutes }
            }
            _ => return Err(fail("expected `Z` or a `+hh:mm` offset")),
        };
        if at != b.len() {
            return Err(fail("unexpected text after the offset"));
        }
        Ok(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset_minutes,
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        if self.offset_minutes == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let m = self.offset_minutes.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms_round_trip() {
        for text in [
            "0001-01-01T00:00:00Z",
            "2026-11-27T23:39:22.91950267Z",
            "2026-11-27T23:39:22.907466368Z",
            "2024-02-29T12:00:00.5+05:30",
            "1999-12-31T23:59:59-08:00",
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert!(Timestamp::ZERO.is_zero());
    }

    #[test]
    fn normalises_like_go() {
        let t: Timestamp = "2026-01-01T00:00:00.500+00:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.5Z");
        let t: Timestamp = "2026-01-01T00:00:00,25Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.25Z");
        let t: Timestamp = "2026-01-01T00:00:00.1234567891Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.123456789Z");
    }

    #[test]
    fn rejects_bad_times() {
        for text in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00+0100",
        ] {
            assert!(text.parse::<Timestamp>().is_err(), "{text}");
        }
    }

    #[test]
    fn unix_nanos_round_trip() {
        let t: Timestamp = "2026-11-27T23:39:22.91950267Z".parse().unwrap();
        assert_eq!(Timestamp::from_unix_nanos(t.unix_nanos()), Some(t));
        let shifted: Timestamp = "2026-11-28T00:39:22.91950267+01:00".parse().unwrap();
        assert_eq!(shifted.unix_nanos(), t.unix_nanos());
        assert_eq!(
            Timestamp::from_unix_nanos(0).unwrap().to_string(),
            "1970-01-01T00:00:00Z"
        );
    }
}
