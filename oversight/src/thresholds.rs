//! Every number a rule compares against, with its default, loadable from
//! TOML or JSON (`serde`). Missing fields take their defaults, unknown
//! fields are refused so that a misspelt threshold is never silently
//! ignored. `docs/audit.md` explains each one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A department's working day, in its own time zone.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkingHours {
    /// First working hour, local time (0–23): reads from `start_hour:00` on
    /// are inside working hours.
    pub start_hour: u8,
    /// End of the working day, local time (1–24): reads from `end_hour:00`
    /// on are outside.
    pub end_hour: u8,
    /// The department's offset from UTC, in minutes (UTC+8 is 480).
    pub utc_offset_minutes: i32,
}

impl Default for WorkingHours {
    fn default() -> Self {
        WorkingHours {
            start_hour: 8,
            end_hour: 18,
            utc_offset_minutes: 8 * 60,
        }
    }
}

/// Bulk reads: a member's reads on one local day against their own
/// baseline (and the department's, while they have too little history).
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkReads {
    /// Days of history the baseline is learned from (a sliding window
    /// ending the day before).
    pub window_days: u32,
    /// Days with reads the member needs in the window before their own
    /// baseline is used; below it the department's baseline is used.
    pub history_days_min: u32,
    /// Fewest reads in a day that can be called bulk.
    pub reads_min: u32,
    /// The day's reads must be at least this many times the member's daily
    /// median.
    pub member_ratio_min: f64,
    /// … and this many robust standard deviations (1.4826 × MAD) above it.
    pub robust_z_min: f64,
    /// Without a baseline of their own: this many times the department's
    /// median of member-days.
    pub department_ratio_min: f64,
}

impl Default for BulkReads {
    fn default() -> Self {
        BulkReads {
            window_days: 30,
            history_days_min: 10,
            reads_min: 40,
            member_ratio_min: 3.0,
            robust_z_min: 5.0,
            department_ratio_min: 4.0,
        }
    }
}

/// Reads outside the department's working hours.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffHoursReads {
    /// Fewest out-of-hours reads by one member on one local day that raise
    /// an alert (a clerk finishing one file after six is normal).
    pub reads_min: u32,
}

impl Default for OffHoursReads {
    fn default() -> Self {
        OffHoursReads { reads_min: 5 }
    }
}

/// Reads of record types or classifications the member never handled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnfamiliarRecords {
    /// Days since the member's first read or registration before the rule
    /// applies.
    pub warmup_days: u32,
    /// Reads and registrations the member must have made before it applies.
    pub warmup_actions: u32,
    /// Fewest reads of unfamiliar records on one local day that raise an
    /// alert.
    pub reads_min: u32,
}

impl Default for UnfamiliarRecords {
    fn default() -> Self {
        UnfamiliarRecords {
            warmup_days: 14,
            warmup_actions: 50,
            reads_min: 3,
        }
    }
}

/// A burst of reads just before an exit: a transfer away, or the reader's
/// revocation.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadsBeforeExit {
    /// How far back from the offer or revocation reads are counted.
    pub window_hours: u32,
    /// Fewest reads in the window that raise an alert.
    pub reads_min: u32,
    /// The window's reads must be at least this many times the member's
    /// daily median (learned over `bulk_reads.window_days`).
    pub member_ratio_min: f64,
}

impl Default for ReadsBeforeExit {
    fn default() -> Self {
        ReadsBeforeExit {
            window_hours: 24,
            reads_min: 15,
            member_ratio_min: 2.0,
        }
    }
}

/// Many actions of one kind by one member in a short window.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Burst {
    pub window_minutes: u32,
    /// Fewest actions in the window that raise an alert.
    pub count_min: u32,
}

/// Grants that the receiving department never used.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnusedGrants {
    /// How long the receiving department has to read a granted document.
    pub window_days: u32,
    /// Fewest unused grants by one member to one department on one local
    /// day that raise an alert.
    pub grants_min: u32,
}

impl Default for UnusedGrants {
    fn default() -> Self {
        UnusedGrants {
            window_days: 14,
            grants_min: 3,
        }
    }
}

/// One document read by many departments in a short window.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManyDepartments {
    pub window_hours: u32,
    /// Fewest distinct reading departments in the window that raise an alert.
    pub departments_min: u32,
}

impl Default for ManyDepartments {
    fn default() -> Self {
        ManyDepartments {
            window_hours: 24,
            departments_min: 3,
        }
    }
}

/// All thresholds.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Working hours of a department not named in `departments`.
    pub working_hours: WorkingHours,
    /// Working hours by department id.
    pub departments: BTreeMap<String, WorkingHours>,
    pub bulk_reads: BulkReads,
    pub off_hours_reads: OffHoursReads,
    pub unfamiliar_records: UnfamiliarRecords,
    pub reads_before_transfer: ReadsBeforeExit,
    pub reads_before_revocation: ReadsBeforeExit,
    pub grant_burst: Burst,
    pub unused_grants: UnusedGrants,
    pub many_departments: ManyDepartments,
    pub denied_attempts: Burst,
    /// Most evidence transactions listed in one alert (the rest are
    /// counted in `evidence_total`).
    pub evidence_per_alert_max: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            working_hours: WorkingHours::default(),
            departments: BTreeMap::new(),
            bulk_reads: BulkReads::default(),
            off_hours_reads: OffHoursReads::default(),
            unfamiliar_records: UnfamiliarRecords::default(),
            reads_before_transfer: ReadsBeforeExit::default(),
            reads_before_revocation: ReadsBeforeExit::default(),
            grant_burst: Burst {
                window_minutes: 60,
                count_min: 10,
            },
            unused_grants: UnusedGrants::default(),
            many_departments: ManyDepartments::default(),
            denied_attempts: Burst {
                window_minutes: 60,
                count_min: 5,
            },
            evidence_per_alert_max: 1000,
        }
    }
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            window_minutes: 60,
            count_min: 10,
        }
    }
}

/// Why a thresholds file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdsError {
    #[error("working hours of `{department}`: start hour {start} must be below end hour {end}, and the end at most 24")]
    Hours {
        department: String,
        start: u8,
        end: u8,
    },
    #[error("working hours of `{department}`: UTC offset {minutes} minutes is beyond ±14 hours")]
    Offset { department: String, minutes: i32 },
    #[error("threshold `{0}` must be at least 1")]
    Zero(&'static str),
    #[error("threshold `{0}` must be a finite number of at least 1.0")]
    Ratio(&'static str),
    #[error("not a thresholds file: {0}")]
    Parse(String),
}

impl Thresholds {
    /// Thresholds from the text of a thresholds file, TOML or (`json`)
    /// JSON, checked. Missing keys keep their defaults; a misspelt key is
    /// refused.
    pub fn parse(text: &str, json: bool) -> Result<Thresholds, ThresholdsError> {
        let thresholds: Thresholds = if json {
            serde_json::from_str(text).map_err(|e| ThresholdsError::Parse(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| ThresholdsError::Parse(e.to_string()))?
        };
        thresholds.check()?;
        Ok(thresholds)
    }

    /// Working hours of `department`.
    pub fn hours(&self, department: &str) -> WorkingHours {
        self.departments
            .get(department)
            .copied()
            .unwrap_or(self.working_hours)
    }

    /// Check every value; a file is refused with the first bad one named.
    pub fn check(&self) -> Result<(), ThresholdsError> {
        let hours = std::iter::once(("(default)", &self.working_hours))
            .chain(self.departments.iter().map(|(d, h)| (d.as_str(), h)));
        for (department, h) in hours {
            if h.start_hour >= h.end_hour || h.end_hour > 24 {
                return Err(ThresholdsError::Hours {
                    department: department.to_string(),
                    start: h.start_hour,
                    end: h.end_hour,
                });
            }
            if h.utc_offset_minutes.abs() > 14 * 60 {
                return Err(ThresholdsError::Offset {
                    department: department.to_string(),
                    minutes: h.utc_offset_minutes,
                });
            }
        }
        let counts = [
            ("bulk_reads.window_days", self.bulk_reads.window_days),
            ("bulk_reads.reads_min", self.bulk_reads.reads_min),
            ("off_hours_reads.reads_min", self.off_hours_reads.reads_min),
            (
                "unfamiliar_records.reads_min",
                self.unfamiliar_records.reads_min,
            ),
            (
                "reads_before_transfer.window_hours",
                self.reads_before_transfer.window_hours,
            ),
            (
                "reads_before_transfer.reads_min",
                self.reads_before_transfer.reads_min,
            ),
            (
                "reads_before_revocation.window_hours",
                self.reads_before_revocation.window_hours,
            ),
            (
                "reads_before_revocation.reads_min",
                self.reads_before_revocation.reads_min,
            ),
            (
                "grant_burst.window_minutes",
                self.grant_burst.window_minutes,
            ),
            ("grant_burst.count_min", self.grant_burst.count_min),
            ("unused_grants.window_days", self.unused_grants.window_days),
            ("unused_grants.grants_min", self.unused_grants.grants_min),
            (
                "many_departments.window_hours",
                self.many_departments.window_hours,
            ),
            (
                "many_departments.departments_min",
                self.many_departments.departments_min,
            ),
            (
                "denied_attempts.window_minutes",
                self.denied_attempts.window_minutes,
            ),
            ("denied_attempts.count_min", self.denied_attempts.count_min),
            ("evidence_per_alert_max", self.evidence_per_alert_max),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return Err(ThresholdsError::Zero(name));
        }
        let ratios = [
            (
                "bulk_reads.member_ratio_min",
                self.bulk_reads.member_ratio_min,
            ),
            (
                "bulk_reads.department_ratio_min",
                self.bulk_reads.department_ratio_min,
            ),
            (
                "reads_before_transfer.member_ratio_min",
                self.reads_before_transfer.member_ratio_min,
            ),
            (
                "reads_before_revocation.member_ratio_min",
                self.reads_before_revocation.member_ratio_min,
            ),
        ];
        if let Some((name, _)) = ratios.iter().find(|(_, v)| !v.is_finite() || *v < 1.0) {
            return Err(ThresholdsError::Ratio(name));
        }
        if !self.bulk_reads.robust_z_min.is_finite() || self.bulk_reads.robust_z_min < 0.0 {
            return Err(ThresholdsError::Ratio("bulk_reads.robust_z_min"));
        }
        Ok(())
    }
}
