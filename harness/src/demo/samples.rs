//! Sample archives for the demo: plausible records of four departments,
//! generated deterministically so that every run shows the same story.
//!
//! The people and places are invented. The files are small text, CSV,
//! JSON and XML documents of a few kilobytes to a few hundred kilobytes,
//! enough to show encryption, upload and fixity at work without a wait.

use std::path::{Path, PathBuf};

use super::DemoError;

/// One record type a department keeps.
pub struct RecordKind {
    pub record_type: &'static str,
    pub label: &'static str,
    pub classification: &'static str,
    pub retention: &'static str,
}

/// The file formats the samples come in: extension, MIME type, PRONOM id.
const FORMATS: [(&str, &str, &str); 4] = [
    ("txt", "text/plain", "x-fmt/111"),
    ("csv", "text/csv", "x-fmt/18"),
    ("json", "application/json", "fmt/817"),
    ("xml", "application/xml", "fmt/101"),
];

/// The people the samples are about: their names appear in titles, which
/// travel on chain only sealed.
pub const PEOPLE: [&str; 12] = [
    "Zhao Min",
    "Qian Hui",
    "Sun Lei",
    "Zhou Yan",
    "Wu Jun",
    "Zheng Xia",
    "Feng Tao",
    "He Ling",
    "Lu Ping",
    "Shi Rong",
    "Tang Bo",
    "Xu Qing",
];

const DISTRICTS: [&str; 5] = ["Dongcheng", "Xicheng", "Haidian", "Chaoyang", "Fengtai"];

/// The record types of a department, in the order samples cycle through
/// them. The scenario relies on the first two of each.
pub fn record_kinds(department: &str) -> &'static [RecordKind] {
    const CIVIL: &[RecordKind] = &[
        RecordKind {
            record_type: "birth-registration",
            label: "Birth registration",
            classification: "confidential",
            retention: "permanent",
        },
        RecordKind {
            record_type: "marriage-registration",
            label: "Marriage registration",
            classification: "confidential",
            retention: "permanent",
        },
        RecordKind {
            record_type: "household-register-extract",
            label: "Household register extract",
            classification: "internal",
            retention: "30",
        },
        RecordKind {
            record_type: "name-change-notice",
            label: "Public notice of a change of name",
            classification: "public",
            retention: "10",
        },
    ];
    const SOCIAL: &[RecordKind] = &[
        RecordKind {
            record_type: "pension-entitlement",
            label: "Pension entitlement decision",
            classification: "confidential",
            retention: "permanent",
        },
        RecordKind {
            record_type: "contribution-statement",
            label: "Contribution statement",
            classification: "internal",
            retention: "30",
        },
        RecordKind {
            record_type: "unemployment-benefit-claim",
            label: "Unemployment benefit claim",
            classification: "confidential",
            retention: "10",
        },
        RecordKind {
            record_type: "benefit-rates-circular",
            label: "Benefit rates circular",
            classification: "public",
            retention: "permanent",
        },
    ];
    const HEALTH: &[RecordKind] = &[
        RecordKind {
            record_type: "vaccination-record",
            label: "Vaccination record",
            classification: "confidential",
            retention: "permanent",
        },
        RecordKind {
            record_type: "discharge-summary",
            label: "Hospital discharge summary",
            classification: "confidential",
            retention: "30",
        },
        RecordKind {
            record_type: "medical-certificate",
            label: "Medical certificate",
            classification: "internal",
            retention: "10",
        },
        RecordKind {
            record_type: "clinic-licence",
            label: "Clinic licence",
            classification: "public",
            retention: "permanent",
        },
    ];
    const SECURITY: &[RecordKind] = &[
        RecordKind {
            record_type: "residence-permit",
            label: "Residence permit",
            classification: "confidential",
            retention: "30",
        },
        RecordKind {
            record_type: "identity-card-application",
            label: "Identity card application",
            classification: "internal",
            retention: "30",
        },
        RecordKind {
            record_type: "traffic-notice",
            label: "Traffic management notice",
            classification: "public",
            retention: "10",
        },
        RecordKind {
            record_type: "investigation-file",
            label: "Investigation file",
            classification: "secret",
            retention: "permanent",
        },
    ];
    match department {
        "civil-affairs" => CIVIL,
        "social-security" => SOCIAL,
        "health" => HEALTH,
        _ => SECURITY,
    }
}

/// A generated sample file and what the clerk will register it as.
pub struct Sample {
    pub id: String,
    pub title: String,
    pub record_type: String,
    pub classification: String,
    pub retention: String,
    pub mime: String,
    pub pronom: String,
    pub path: PathBuf,
    pub size_bytes: u64,
}

/// The body of a sample in its format: a header naming the record, then
/// enough lines to give it some weight (sizes vary with `index`).
fn body(extension: &str, title: &str, kind: &RecordKind, person: &str, index: usize) -> String {
    let lines = 20 + (index * 37) % 400;
    let mut text = String::new();
    match extension {
        "csv" => {
            text.push_str("field,value\n");
            text.push_str(&format!(
                "title,\"{title}\"\nrecord type,{}\n",
                kind.record_type
            ));
            for line in 0..lines {
                text.push_str(&format!(
                    "entry {line},\"{person}: item {line} of the {} file, amount {}.{:02}\"\n",
                    kind.label,
                    (line * 97 + index * 13) % 10_000,
                    line % 100
                ));
            }
        }
        "json" => {
            text.push_str(&format!(
                "{{\n  \"title\": \"{title}\",\n  \"record_type\": \"{}\",\n  \"subject\": \"{person}\",\n  \"entries\": [\n",
                kind.record_type
            ));
            for line in 0..lines {
                let comma = if line + 1 < lines { "," } else { "" };
                text.push_str(&format!(
                    "    {{\"n\": {line}, \"note\": \"{} entry {line} for {person}\"}}{comma}\n",
                    kind.label
                ));
            }
            text.push_str("  ]\n}\n");
        }
        "xml" => {
            text.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            text.push_str(&format!(
                "<record type=\"{}\">\n  <title>{title}</title>\n  <subject>{person}</subject>\n",
                kind.record_type
            ));
            for line in 0..lines {
                text.push_str(&format!(
                    "  <entry n=\"{line}\">{} entry {line} for {person}</entry>\n",
                    kind.label
                ));
            }
            text.push_str("</record>\n");
        }
        _ => {
            text.push_str(&format!("{title}\n{}\n\n", "=".repeat(title.len())));
            for line in 0..lines {
                text.push_str(&format!(
                    "{line:>4}. {} of {person}: line {line} of the record as kept on paper.\n",
                    kind.label
                ));
            }
        }
    }
    text
}

/// Writes `count` sample files for `department` under `directory` and
/// returns them in registration order.
pub fn generate(
    directory: &Path,
    department: &str,
    count: usize,
    year: u32,
) -> Result<Vec<Sample>, DemoError> {
    std::fs::create_dir_all(directory).map_err(|source| DemoError::Io {
        action: "create",
        path: directory.to_owned(),
        source,
    })?;
    let kinds = record_kinds(department);
    let department_index = match department {
        "civil-affairs" => 0,
        "social-security" => 1,
        "health" => 2,
        _ => 3,
    };
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let kind = &kinds[index % kinds.len()];
        let (extension, mime, pronom) = FORMATS[(index + department_index) % FORMATS.len()];
        let person = PEOPLE[(index * 5 + department_index * 3) % PEOPLE.len()];
        let district = DISTRICTS[(index + department_index) % DISTRICTS.len()];
        let title = format!(
            "{}, {person}, {district} {}",
            kind.label,
            year - index as u32
        );
        let id = format!("{department}-{year}-{:04}", index + 1);
        let path = directory.join(format!("{id}.{extension}"));
        let text = body(extension, &title, kind, person, index + department_index);
        std::fs::write(&path, text.as_bytes()).map_err(|source| DemoError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        samples.push(Sample {
            id,
            title,
            record_type: kind.record_type.to_string(),
            classification: kind.classification.to_string(),
            retention: kind.retention.to_string(),
            mime: mime.to_string(),
            pronom: pronom.to_string(),
            path,
            size_bytes: text.len() as u64,
        });
    }
    Ok(samples)
}

/// A corrected version of a sample: the same record with a correction
/// note appended, as a registry office amends an entry.
pub fn corrected(sample: &Sample, note: &str) -> Result<PathBuf, DemoError> {
    let text = std::fs::read_to_string(&sample.path).map_err(|source| DemoError::Io {
        action: "read",
        path: sample.path.clone(),
        source,
    })?;
    let fixed = format!("{text}\nCorrection: {note}.\n");
    let path = sample.path.with_extension(format!(
        "v2.{}",
        sample
            .path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("txt")
    ));
    std::fs::write(&path, fixed.as_bytes()).map_err(|source| DemoError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
