//! Times as a clerk types and reads them, and as machines read them: the
//! one place the CLI turns text into an instant and an instant into text.
//!
//! The chain keeps times as milliseconds since the Unix epoch (UTC). A
//! department works in its own time zone (`--time-zone`, env
//! `CUSTODY_TIME_ZONE`, default `Asia/Shanghai`), so:
//!
//! - a date alone (`2026-12-31`) is the whole of that day in the zone: an
//!   end bound (`--until`, `--to-date`) is its last millisecond (the day is
//!   included), a start bound (`--created`, `--from-date`,
//!   `--genesis-date`) its first;
//! - a date and time without an offset (`2026-12-31T17:00`) is a wall-clock
//!   time in the zone (a time skipped by a daylight-saving change is moved
//!   forward by the change, a repeated one is the earlier of the two);
//! - a time with an offset (`2026-12-31T09:00:00Z`,
//!   `2026-12-31T17:00:00+08:00`, or the human form this module prints) is
//!   taken as given, whatever the zone;
//! - `+N` followed by `s`, `m`, `h` or `d` counts from now, and a bare
//!   number is milliseconds since 1970.
//!
//! Times shown to people are in the zone with its offset
//! (`2026-12-05 17:20:00 +08:00`); JSON output stays RFC 3339 UTC.
//!
//! Calendar and time-zone rules come from jiff with its bundled time-zone
//! database, so a container without `/usr/share/zoneinfo` gives the same
//! answers.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The zone dates are read and shown in when none is configured.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// The environment variable that names the department's time zone.
pub const TIME_ZONE_ENV: &str = "CUSTODY_TIME_ZONE";

/// How this module prints a time for people (and reads it back).
const HUMAN_FORMAT: &str = "%Y-%m-%d %H:%M:%S %:z";

/// What a date alone stands for: the first or the last moment of that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayBound {
    /// The first millisecond of the day (`--created`, `--from-date`).
    Start,
    /// The last millisecond of the day, so the day is included (`--until`,
    /// `--to-date`).
    End,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("`{name}` is not a time zone of the IANA time-zone database: give a name such as Asia/Shanghai, Europe/Berlin or UTC")]
    UnknownZone { name: String },
    #[error("`{text}` is not a time: use a date YYYY-MM-DD (the whole day in {zone}), a date and time YYYY-MM-DDTHH:MM[:SS] (in {zone}), a time with its offset such as 2026-12-31T17:00:00+08:00 or 2026-12-31T09:00:00Z, +N followed by s, m, h or d (from now), or milliseconds since 1970")]
    NotATime { text: String, zone: String },
    #[error("`{text}` is before 1970-01-01 or beyond the year 9999: give a time in between")]
    OutOfRange { text: String },
}

/// A time zone of the IANA database, with the name it was given by
/// (shared: every command's arguments carry one).
#[derive(Clone)]
pub struct Zone(std::sync::Arc<ZoneInner>);

/// What a [`Zone`] shares.
pub struct ZoneInner {
    name: String,
    zone: TimeZone,
}

impl std::ops::Deref for Zone {
    type Target = ZoneInner;
    fn deref(&self) -> &ZoneInner {
        &self.0
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Default for Zone {
    /// `Asia/Shanghai`; UTC only if the bundled database lacked it.
    fn default() -> Zone {
        Zone::named(DEFAULT_TIME_ZONE).unwrap_or_else(|_| {
            Zone(std::sync::Arc::new(ZoneInner {
                name: "UTC".to_string(),
                zone: TimeZone::UTC,
            }))
        })
    }
}

impl Zone {
    /// The zone called `name` (`Asia/Shanghai`, `Europe/Berlin`, `UTC`).
    pub fn named(name: &str) -> Result<Zone, TimeError> {
        let unknown = || TimeError::UnknownZone {
            name: name.to_string(),
        };
        if name.trim().is_empty() {
            return Err(unknown());
        }
        let zone = TimeZone::get(name).map_err(|_| unknown())?;
        Ok(Zone(std::sync::Arc::new(ZoneInner {
            name: name.to_string(),
            zone,
        })))
    }

    /// For clap's `value_parser`: an unknown zone is a usage error.
    pub fn parse_arg(name: &str) -> Result<Zone, String> {
        Zone::named(name).map_err(|error| error.to_string())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant `text` names, in milliseconds since the epoch (rules in
    /// the module's documentation); `now_ms` anchors `+N` times.
    pub fn parse(&self, text: &str, now_ms: u64, bound: DayBound) -> Result<u64, TimeError> {
        let not_a_time = || TimeError::NotATime {
            text: text.to_string(),
            zone: self.name.clone(),
        };
        let out_of_range = || TimeError::OutOfRange {
            text: text.to_string(),
        };
        let trimmed = text.trim();
        if let Some(relative) = trimmed.strip_prefix('+') {
            return relative_ms(relative, now_ms).ok_or_else(not_a_time);
        }
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return trimmed.parse().map_err(|_| out_of_range());
        }
        let instant = if let Ok(instant) = trimmed.parse::<Timestamp>() {
            instant
        } else if let Ok(instant) =
            jiff::fmt::strtime::parse(HUMAN_FORMAT, trimmed).and_then(|t| t.to_timestamp())
        {
            instant
        } else if let Ok(date) = strict_date(trimmed) {
            self.day_bound(date, bound).ok_or_else(out_of_range)?
        } else if let Ok(civil) = trimmed.parse::<DateTime>() {
            self.zone.to_timestamp(civil).map_err(|_| out_of_range())?
        } else {
            return Err(not_a_time());
        };
        u64::try_from(instant.as_millisecond()).map_err(|_| out_of_range())
    }

    /// The first or last millisecond of `date` in this zone (a day is 23 or
    /// 25 hours long where daylight saving starts or ends).
    fn day_bound(&self, date: Date, bound: DayBound) -> Option<Timestamp> {
        match bound {
            DayBound::Start => date
                .to_zoned_datetime(self.zone.clone())
                .ok()
                .map(|z| z.timestamp()),
            DayBound::End => {
                let next = date
                    .tomorrow()
                    .ok()?
                    .to_zoned_datetime(self.zone.clone())
                    .ok()?;
                next.timestamp()
                    .checked_sub(jiff::SignedDuration::from_millis(1))
                    .ok()
            }
        }
    }

    /// `2026-12-05 17:20:00 +08:00`: the time in this zone with its offset.
    pub fn show(&self, ms: u64) -> String {
        match instant(ms) {
            Some(instant) => instant
                .to_zoned_datetime(self.zone.clone())
                .strftime(HUMAN_FORMAT)
                .to_string(),
            None => format!("{ms} ms since 1970"),
        }
    }
}

/// `2026-11-26T05:30:00Z`: RFC 3339 UTC to the second, for JSON.
pub fn utc_seconds(ms: u64) -> String {
    match instant(ms) {
        Some(instant) => instant.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{ms} ms since 1970"),
    }
}

/// `2026-01-01T00:00:00.000Z`: RFC 3339 UTC to the millisecond, for JSON.
pub fn utc_millis(ms: u64) -> String {
    match instant(ms) {
        Some(instant) => instant.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{ms} ms since 1970"),
    }
}

fn instant(ms: u64) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()
}

/// `YYYY-MM-DD` exactly (jiff alone would also read other ISO 8601 forms).
fn strict_date(text: &str) -> Result<Date, ()> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return Err(());
    }
    text.parse::<Date>().map_err(|_| ())
}

/// `N{s,m,h,d}` from `now_ms`.
fn relative_ms(text: &str, now_ms: u64) -> Option<u64> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(now_ms.saturating_add(count.saturating_mul(unit_ms)))
}
