//! Block time (milliseconds since the Unix epoch, UTC) to and from text,
//! without a calendar crate: the proleptic Gregorian conversions of
//! Howard Hinnant's `days_from_civil` / `civil_from_days`.

/// `2026-01-01T00:00:00.000Z` for a time in milliseconds since the epoch.
pub fn format_ms(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let rest = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Milliseconds since the epoch at the start (00:00 UTC) of `YYYY-MM-DD`.
pub fn parse_date_ms(text: &str) -> Result<u64, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let bad = || format!("`{text}` is not a date of the form YYYY-MM-DD");
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let y: i64 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let d: u32 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days as u64 * 86_400_000)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_milliseconds() {
        assert_eq!(format_ms(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(parse_date_ms("2026-01-01"), Ok(1_767_225_600_000));
        assert_eq!(
            parse_date_ms("2024-02-29").map(format_ms).unwrap(),
            "2024-02-29T00:00:00.000Z"
        );
        assert!(parse_date_ms("2023-02-29").is_err());
        assert!(parse_date_ms("2026-1-1").is_err());
    }
}
