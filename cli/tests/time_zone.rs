//! Dates a clerk types are read in the department's time zone, times shown
//! to people are in that zone with its offset, and JSON stays UTC
//! (`custody_cli::when`; docs/audit.md, "Dates and time zones"): one test
//! per rule, and a property that what is printed reads back.

use std::path::PathBuf;
use std::process::Command;

use custody_cli::when::{utc_millis, utc_seconds, DayBound, TimeError, Zone};
use proptest::prelude::*;

const USAGE: i32 = 2;

fn zone(name: &str) -> Zone {
    Zone::named(name).expect("a zone of the bundled database")
}

/// Runs the built `custody ARGS` (without the caller's time-zone setting);
/// returns its exit code and stderr.
fn custody(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .env_remove("CUSTODY_TIME_ZONE")
        .output()
        .expect("run custody");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn export_vector() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ledger/tests/vectors/export-v1.bin")
}

#[test]
fn a_date_alone_as_until_ends_at_the_last_moment_of_that_day_in_shanghai() {
    // 2026-12-31T23:59:59.999+08:00, not 2026-12-31T00:00Z (08:00 Beijing).
    let until = zone("Asia/Shanghai").parse("2026-12-31", 0, DayBound::End);
    assert_eq!(until, Ok(1_798_732_799_999));
    assert_eq!(utc_millis(1_798_732_799_999), "2026-12-31T15:59:59.999Z");
}

#[test]
fn a_date_alone_as_a_start_is_the_first_moment_of_that_day_in_the_zone() {
    let created = zone("Asia/Shanghai").parse("2026-12-31", 0, DayBound::Start);
    assert_eq!(created, Ok(1_798_646_400_000));
    assert_eq!(
        zone("Asia/Shanghai").show(1_798_646_400_000),
        "2026-12-31 00:00:00 +08:00"
    );
}

#[test]
fn a_time_with_an_offset_is_taken_as_given_whatever_the_zone() {
    for name in ["Asia/Shanghai", "Europe/Berlin", "UTC"] {
        let zone = zone(name);
        for text in [
            "2026-12-31T09:00:00Z",
            "2026-12-31T17:00:00+08:00",
            "2026-12-31T10:00:00+01:00",
            "2026-12-31 17:00:00 +08:00",
        ] {
            for bound in [DayBound::Start, DayBound::End] {
                assert_eq!(
                    zone.parse(text, 0, bound),
                    Ok(1_798_707_600_000),
                    "{text} in {name}"
                );
            }
        }
    }
}

#[test]
fn a_date_and_time_without_an_offset_is_a_wall_clock_time_in_the_zone() {
    let at = zone("Asia/Shanghai").parse("2026-12-31T17:00", 0, DayBound::End);
    assert_eq!(at, Ok(1_798_707_600_000));
}

#[test]
fn a_bad_date_names_the_forms_it_accepts() {
    for text in [
        "2026-02-30",
        "31/12/2026",
        "tomorrow",
        "2026-1-1",
        "",
        "+5w",
    ] {
        let error = zone("Asia/Shanghai")
            .parse(text, 0, DayBound::End)
            .expect_err(text);
        assert!(
            matches!(error, TimeError::NotATime { .. }),
            "{text}: {error:?}"
        );
        let message = error.to_string();
        for form in ["YYYY-MM-DD", "+08:00", "Asia/Shanghai", "+N"] {
            assert!(message.contains(form), "{text}: {message} lacks {form}");
        }
    }
    let (code, stderr) = custody(&[
        "audit",
        "report",
        "--export",
        export_vector().to_str().expect("utf-8 path"),
        "--from-date",
        "2026-02-30",
    ]);
    assert_eq!(code, USAGE, "{stderr}");
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
}

#[test]
fn a_time_before_1970_is_refused() {
    let error = zone("UTC").parse("1969-12-31", 0, DayBound::Start);
    assert!(
        matches!(error, Err(TimeError::OutOfRange { .. })),
        "{error:?}"
    );
}

#[test]
fn an_unknown_time_zone_is_a_usage_error() {
    assert!(matches!(
        Zone::named("Mars/Olympus_Mons"),
        Err(TimeError::UnknownZone { .. })
    ));
    let (code, stderr) = custody(&[
        "doc",
        "grant",
        "civil-affairs-0001",
        "--to",
        "health",
        "--until",
        "2026-12-31",
        "--time-zone",
        "Mars/Olympus_Mons",
    ]);
    assert_eq!(code, USAGE, "{stderr}");
    assert!(stderr.contains("Mars/Olympus_Mons"), "{stderr}");
    let (code, stderr) = custody(&[
        "audit",
        "report",
        "--export",
        export_vector().to_str().expect("utf-8 path"),
        "--time-zone",
        "Beijing",
    ]);
    assert_eq!(code, USAGE, "{stderr}");
    assert!(stderr.contains("IANA"), "{stderr}");
}

#[test]
fn a_day_in_berlin_when_daylight_saving_ends_lasts_25_hours() {
    let berlin = zone("Europe/Berlin");
    let start = berlin.parse("2026-10-25", 0, DayBound::Start);
    let end = berlin.parse("2026-10-25", 0, DayBound::End);
    assert_eq!(start, Ok(1_792_879_200_000));
    assert_eq!(end, Ok(1_792_969_199_999));
    assert_eq!(berlin.show(1_792_879_200_000), "2026-10-25 00:00:00 +02:00");
    assert_eq!(berlin.show(1_792_969_199_999), "2026-10-25 23:59:59 +01:00");
}

#[test]
fn a_wall_clock_time_skipped_by_daylight_saving_moves_forward() {
    // 02:30 does not exist in Berlin on 2026-03-29: it is read as 03:30 CEST.
    let at = zone("Europe/Berlin").parse("2026-03-29T02:30", 0, DayBound::Start);
    assert_eq!(at, Ok(1_774_747_800_000));
}

#[test]
fn times_are_shown_in_the_zone_with_its_offset() {
    assert_eq!(
        zone("Asia/Shanghai").show(1_796_462_400_000),
        "2026-12-05 17:20:00 +08:00"
    );
    assert_eq!(
        zone("UTC").show(1_796_462_400_000),
        "2026-12-05 09:20:00 +00:00"
    );
}

#[test]
fn json_times_stay_rfc3339_utc() {
    assert_eq!(utc_seconds(1_795_671_000_000), "2026-11-26T05:30:00Z");
    assert_eq!(utc_millis(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
    assert_eq!(utc_millis(1_767_225_600_042), "2026-01-01T00:00:00.042Z");
}

#[test]
fn relative_times_and_milliseconds_count_from_now() {
    let shanghai = zone("Asia/Shanghai");
    assert_eq!(shanghai.parse("+2h", 1_000, DayBound::End), Ok(7_201_000));
    assert_eq!(shanghai.parse("+30d", 0, DayBound::End), Ok(2_592_000_000));
    assert_eq!(shanghai.parse("86400000", 0, DayBound::End), Ok(86_400_000));
}

const ZONES: [&str; 5] = [
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
];

proptest! {
    /// What a person is shown, and what JSON carries, reads back as the
    /// same instant (to the second shown), whatever the zone.
    #[test]
    fn a_printed_time_parses_back_to_the_same_instant(
        seconds in 0u64..253_402_214_400,
        which in 0usize..ZONES.len(),
        reader in 0usize..ZONES.len(),
    ) {
        let ms = seconds * 1000;
        let shown = zone(ZONES[which]).show(ms);
        let reader = zone(ZONES[reader]);
        prop_assert_eq!(reader.parse(&shown, 0, DayBound::End), Ok(ms), "{}", shown);
        prop_assert_eq!(reader.parse(&utc_seconds(ms), 0, DayBound::Start), Ok(ms));
        prop_assert_eq!(reader.parse(&utc_millis(ms + 7), 0, DayBound::Start), Ok(ms + 7));
    }
}

/// Runs the built `custody ARGS` (without the caller's time-zone setting)
/// and returns its standard output; fails the test on a non-zero exit.
fn custody_stdout(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .env_remove("CUSTODY_TIME_ZONE")
        .output()
        .expect("run custody");
    assert!(
        output.status.success(),
        "custody {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn audit_output_shows_times_in_shanghai_unless_another_zone_is_given() {
    let export = export_vector();
    let export = export.to_str().expect("a UTF-8 path");
    // The vector's first event is at 2026-01-01T00:00:02Z.
    let history = ["audit", "history", "ca/2026/0001", "--export", export];
    let shanghai = custody_stdout(&history);
    assert!(
        shanghai.contains("#0 2026-01-01 08:00:02 +08:00 height 2 registered"),
        "{shanghai}"
    );
    let berlin = custody_stdout(&[&history[..], &["--time-zone", "Europe/Berlin"]].concat());
    assert!(
        berlin.contains("#0 2026-01-01 01:00:02 +01:00 height 2 registered"),
        "{berlin}"
    );
    let report = custody_stdout(&[
        "audit",
        "--time-zone",
        "America/New_York",
        "report",
        "--export",
        export,
    ]);
    assert!(
        report.contains("from 2025-12-31 19:00:00 -05:00 to 2025-12-31 19:00:14 -05:00"),
        "{report}"
    );
    assert!(!report.contains("Z "), "{report}");
}

#[test]
fn audit_json_stays_rfc3339_utc_whatever_the_time_zone() {
    let export = export_vector();
    let export = export.to_str().expect("a UTF-8 path");
    let json = custody_stdout(&[
        "audit",
        "report",
        "--export",
        export,
        "--time-zone",
        "Europe/Berlin",
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["from"], "2026-01-01T00:00:00.000Z");
    assert_eq!(value["to"], "2026-01-01T00:00:14.000Z");
    let history = custody_stdout(&[
        "audit",
        "history",
        "ca/2026/0001",
        "--export",
        export,
        "--time-zone",
        "Europe/Berlin",
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&history).expect("JSON");
    assert_eq!(value[0]["time"], "2026-01-01T00:00:02.000Z");
}

#[test]
fn audit_report_reads_its_days_in_the_audit_time_zone() {
    let export = export_vector();
    let export = export.to_str().expect("a UTF-8 path");
    // 2025-12-31 in New York runs to 2026-01-01T04:59:59.999Z, so it holds
    // the whole vector; in Shanghai 2025-12-31 ends before the chain starts.
    let args = |zone: &'static str| {
        vec![
            "audit",
            "report",
            "--export",
            export,
            "--from-date",
            "2025-12-31",
            "--to-date",
            "2025-12-31",
            "--time-zone",
            zone,
            "--json",
        ]
    };
    let events = |zone| {
        let json = custody_stdout(&args(zone));
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        value["events"].as_u64().expect("a count of events")
    };
    assert_eq!(events("America/New_York"), 13);
    assert_eq!(events("Asia/Shanghai"), 0);
}
