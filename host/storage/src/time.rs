//! Clock and calendar for stored times: unix milliseconds, and UTC days as
//! `YYYY-MM-DD`. Computed here rather than by SQL so both backends store the
//! same values.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Now, in unix milliseconds.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        // A clock before 1970 is broken; 0 still orders sensibly.
        .unwrap_or(0)
}

/// The UTC day containing `ms`, as `YYYY-MM-DD` (which sorts as text).
pub(super) fn utc_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC day `days_back` days before the one containing `ms`.
pub(super) fn utc_day_before(ms: i64, days_back: u32) -> String {
    utc_day(ms.saturating_sub(i64::from(days_back).saturating_mul(MS_PER_DAY)))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: Howard Hinnant's `civil_from_days`, which needs no tables and holds
/// for any date we will meet.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction ([1, 31] and [1, 12]).
    (year, day_or_month(month), day_or_month(day))
}

fn day_or_month(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_render_as_utc_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(MS_PER_DAY - 1), "1970-01-01");
        assert_eq!(utc_day(-1), "1969-12-31");
        // 2000-02-29, a leap day in a century year divisible by 400.
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(951_782_400_000 + MS_PER_DAY), "2000-03-01");
        // 2024-12-31T23:59:59.999Z and the next millisecond.
        assert_eq!(utc_day(1_735_689_599_999), "2024-12-31");
        assert_eq!(utc_day(1_735_689_600_000), "2025-01-01");
        assert_eq!(utc_day_before(1_735_689_600_000, 1), "2024-12-31");
        assert_eq!(utc_day_before(1_735_689_600_000, 366), "2024-01-01");
    }
}
