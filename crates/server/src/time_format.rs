//! ISO-8601 rendering of Unix milliseconds, as REST answers spell timestamps.

use std::fmt;

/// `2024-03-21T05:46:40.000Z` for the given Unix milliseconds (UTC).
pub fn iso8601(unix_ms: i64) -> String {
    Iso8601(unix_ms).to_string()
}

/// Unix milliseconds spelled as [`iso8601`] spells them, written where they go: a frame
/// serialises one for every message it carries, with no `String` and, for four-digit years
/// (every timestamp this server writes), no formatting machinery either.
pub struct Iso8601(pub i64);

impl fmt::Display for Iso8601 {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unix_ms = self.0;
        let seconds = unix_ms.div_euclid(1000);
        let millis = unix_ms.rem_euclid(1000);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let (hour, minute, second) = (
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60,
        );
        if !(0..=9999).contains(&year) {
            return write!(
                out,
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
            );
        }
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], month);
        put_digits(&mut text[8..10], day);
        put_digits(&mut text[11..13], hour);
        put_digits(&mut text[14..16], minute);
        put_digits(&mut text[17..19], second);
        put_digits(&mut text[20..23], millis);
        out.write_str(std::str::from_utf8(&text).expect("only ASCII is written"))
    }
}

impl serde::Serialize for Iso8601 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Writes `value` (not negative, and small enough) as decimal digits filling `out`.
fn put_digits(out: &mut [u8], mut value: i64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_711_000_000_000), "2024-03-21T05:46:40.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso8601(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn serialises_as_the_same_string() {
        let at = 1_711_000_000_042;
        assert_eq!(
            serde_json::to_string(&super::Iso8601(at)).unwrap(),
            format!("\"{}\"", iso8601(at))
        );
    }
}
