//! Block time (milliseconds since the Unix epoch, UTC) as text for reports
//! and JSON; the calendar is `crate::when`'s (jiff).

/// `2026-01-01T00:00:00.000Z` for a time in milliseconds since the epoch.
pub fn format_ms(ms: u64) -> String {
    crate::when::utc_millis(ms)
}

/// A time as a command prints it: RFC 3339 UTC in `--json` output (what
/// scripts read), otherwise in the auditor's time zone with its offset.
pub(crate) fn shown(ms: u64, json: bool, zone: &crate::when::Zone) -> String {
    if json {
        format_ms(ms)
    } else {
        zone.show(ms)
    }
}
