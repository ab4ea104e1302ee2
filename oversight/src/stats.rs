//! The robust statistics behind the baselines, and local calendar time.
//!
//! Median and MAD are a dozen lines on a sorted slice; a statistics crate
//! would bring more than it saves and its own float conventions, while
//! these must give the same bits on every machine (they only sort and
//! average two middle values).

use crate::thresholds::WorkingHours;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Consistency constant that makes the MAD estimate a normal
/// distribution's standard deviation.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// Median of `values` (sorted in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// A robust baseline: median and median absolute deviation of daily
/// counts, over `days` days.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Baseline {
    pub median: f64,
    pub mad: f64,
    pub days: usize,
}

impl Baseline {
    /// Baseline of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Baseline> {
        let mut sorted = values.to_vec();
        let median = median(&mut sorted)?;
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mad = self::median(&mut deviations).unwrap_or(0.0);
        Some(Baseline {
            median,
            mad,
            days: values.len(),
        })
    }

    /// How many robust standard deviations `value` lies above the median.
    /// A zero MAD (a perfectly regular member) is floored at one read, so
    /// that one extra read is not infinitely surprising.
    pub fn robust_z(&self, value: f64) -> f64 {
        (value - self.median) / (MAD_TO_SIGMA * self.mad.max(1.0))
    }
}

/// The local day number (days since 1970-01-01 in the zone) of `time_ms`.
pub fn local_day(time_ms: u64, hours: &WorkingHours) -> i64 {
    local_ms(time_ms, hours).div_euclid(DAY_MS)
}

/// Local milliseconds since 1970-01-01T00:00 in the zone.
pub fn local_ms(time_ms: u64, hours: &WorkingHours) -> i64 {
    time_ms as i64 + i64::from(hours.utc_offset_minutes) * 60_000
}

/// Whether `time_ms` falls inside the working hours.
pub fn within_hours(time_ms: u64, hours: &WorkingHours) -> bool {
    let minute = local_ms(time_ms, hours).rem_euclid(DAY_MS) / 60_000;
    minute >= i64::from(hours.start_hour) * 60 && minute < i64::from(hours.end_hour) * 60
}

/// `YYYY-MM-DD` of a day number (civil-from-days, Howard Hinnant's
/// algorithm).
pub fn format_day(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM` local time, with the zone, e.g. `2026-03-04 02:13 UTC+8`.
pub fn format_local(time_ms: u64, hours: &WorkingHours) -> String {
    let local = local_ms(time_ms, hours);
    let minute = local.rem_euclid(DAY_MS) / 60_000;
    let offset = hours.utc_offset_minutes;
    let zone = if offset % 60 == 0 {
        format!("UTC{:+}", offset / 60)
    } else {
        format!("UTC{:+}:{:02}", offset / 60, (offset % 60).abs())
    };
    format!(
        "{} {:02}:{:02} {zone}",
        format_day(local.div_euclid(DAY_MS)),
        minute / 60,
        minute % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_of_daily_counts() {
        let b = Baseline::of(&[10.0, 12.0, 11.0, 30.0, 9.0]).unwrap();
        assert_eq!(b.median, 11.0);
        assert_eq!(b.mad, 1.0);
        assert_eq!(Baseline::of(&[1.0, 3.0]).unwrap().median, 2.0);
        assert!(Baseline::of(&[]).is_none());
    }

    #[test]
    fn local_days_follow_the_department_zone() {
        let utc8 = WorkingHours::default();
        // 2026-03-03T18:30Z is 2026-03-04 02:30 in UTC+8.
        let t = 1_772_562_600_000u64;
        assert_eq!(format_day(local_day(t, &utc8)), "2026-03-04");
        assert_eq!(format_local(t, &utc8), "2026-03-04 02:30 UTC+8");
        assert!(!within_hours(t, &utc8));
        assert!(within_hours(t + 6 * 3_600_000, &utc8));
    }
}
