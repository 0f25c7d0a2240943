//! Shopify's timestamps (`2023-03-29T18:00:27.877041743Z`,
//! `2024-01-02T10:00:00-05:00`) as unix milliseconds, without a date library.

/// Parses an ISO 8601 / RFC 3339 date-time with `Z` or a `±HH:MM` offset and
/// any number of fractional digits (truncated to milliseconds). `None` for
/// anything else.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for (i, place) in [100, 10, 1].into_iter().enumerate() {
            if i < len {
                millis += i64::from(fraction[i] - b'0') * place;
            }
        }
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && usize::try_from(month - 1)
            .ok()
            .and_then(|m| month_days.get(m))
            .is_some_and(|&last| day <= last)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's
/// `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_timestamps() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ms("2023-03-29T18:00:27.877041743Z"),
            Some(1_680_112_827_877)
        );
        assert_eq!(
            parse_timestamp_ms("2023-03-29T18:00:27.8Z"),
            Some(1_680_112_827_800)
        );
        // The same instant with an offset.
        assert_eq!(
            parse_timestamp_ms("2023-03-29T14:00:27-04:00"),
            parse_timestamp_ms("2023-03-29T18:00:27Z")
        );
        assert_eq!(
            parse_timestamp_ms("2025-01-01T05:30:00+05:30"),
            Some(1_735_689_600_000)
        );
        assert_eq!(
            parse_timestamp_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_timestamp_ms("1969-12-31T23:59:59Z"), Some(-1_000));
        for bad in [
            "",
            "2023-03-29",
            "2023-03-29T18:00:27",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-01-32T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00+0500",
            "2023-01-01T00:00:00+25:00",
            "2023-01-01T00:00:00Zjunk",
            "20a3-01-01T00:00:00Z",
            "2023-01-01T00:00:00Ă",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
    }
}
