//! The demo's story: four departments enrol clerks, register their
//! archives, hand some over, refuse one, let each other read, correct one,
//! check another's fixity and dispose of an old record.
//!
//! Every step runs the clerk's own command code (`custody doc …`, through
//! [`custody_cli::doc::run`] with its JSON result captured, or the library
//! functions of `doc::lifecycle` behind `custody doc amend | fixity |
//! dispose`) against the clerk's own department node, exactly as a clerk
//! at a terminal would.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custody_ledger::tx::{AmendReason, FixityResult, TxBody};
use custody_ledger::types::{Classification, DepartmentId, DocumentId, Role};
use serde_json::Value;

use super::samples::{self, Sample};
use super::{say, section, DemoError};
use custody_cli::doc::lifecycle::{self, AmendRequest};
use custody_cli::doc::node_api::NodeApi;
use custody_cli::doc::{self, CommonArgs, DocArgs, DocCommand, RegisterArgs};

/// Longest wait for one transaction to commit.
const COMMIT_WAIT_SECONDS: u64 = 60;
/// Longest wait for a node to reach a height another node committed.
const CATCH_UP_TIMEOUT_MS: u64 = 30_000;
/// Retries of a step the node refused with "refresh and retry".
const RETRIES_MAX: u32 = 5;
const RETRY_PAUSE_MS: u64 = 200;
/// The year the sample records are dated from.
const SAMPLE_YEAR: u32 = 2026;

/// The reason the social security clerk rejects an offer with.
const REJECTION_REASON: &str =
    "contribution statements are kept by Social Security; not ours to archive";
/// The purposes the clerks open documents for.
const PURPOSE_RESIDENCE_CHECK: &str = "residence check for marriage application 2026-0412";
const PURPOSE_PENSION_REVIEW: &str = "medical assessment for pension review 2026-118";
const PURPOSE_CERTIFIED_COPY: &str = "certified copy requested by the couple";
const PURPOSE_STATISTICS: &str = "statistics for the annual report";
const PURPOSE_FIXITY_CHECK: &str = "periodic fixity check";
/// The note of the correction, and of the fixity check.
const AMENDMENT_NOTE: &str = "the date of the ceremony was entered as 12 March instead of 21 March";
const FIXITY_NOTE: &str = "periodic fixity check by the custodian";
/// The old record the demo disposes of, and why.
const DISPOSAL_TITLE: &str = "Index cards of the civil register, 1988";
const DISPOSAL_CREATED: &str = "1988-06-01";
const DISPOSAL_RETENTION_YEARS: &str = "30";
const DISPOSAL_AUTHORITY: &str = "records committee decision 2026/14";
const DISPOSAL_REASON: &str =
    "index cards superseded by the electronic register; retention of 30 years elapsed";

/// Every free text the scenario records on chain about a document
/// (reasons, purposes, notes, and the disposed record's title): each
/// travels sealed.
pub const SEALED_TEXTS: [&str; 13] = [
    REJECTION_REASON,
    PURPOSE_RESIDENCE_CHECK,
    PURPOSE_PENSION_REVIEW,
    PURPOSE_CERTIFIED_COPY,
    PURPOSE_STATISTICS,
    PURPOSE_FIXITY_CHECK,
    AMENDMENT_NOTE,
    FIXITY_NOTE,
    custody_cli::doc::INSPECTION_PURPOSE,
    lifecycle::FIXITY_PURPOSE,
    DISPOSAL_TITLE,
    DISPOSAL_AUTHORITY,
    DISPOSAL_REASON,
];

/// The record registered about a citizen, and the identity number the
/// clerk files them under (with the first of `samples::PEOPLE`).
const CITIZEN_RECORD_TITLE: &str = "Birth registration, citizen's copy";
const CITIZEN_ID_NUMBER: &str = "110101199003071234";

/// A clerk the demo acts as.
pub struct Clerk {
    pub department: String,
    pub name: String,
    pub api_url: String,
    pub key: PathBuf,
    pub department_key: PathBuf,
}

impl Clerk {
    fn common(&self) -> CommonArgs {
        CommonArgs {
            node: self.api_url.clone(),
            key: Some(self.key.clone()),
            department_key: Some(self.department_key.clone()),
            passphrase_file: None,
            passphrase_env: None,
            wait_seconds: COMMIT_WAIT_SECONDS,
            json: true,
            transient_retries: custody_cli::doc::node_api::TRANSIENT_RETRIES_MAX,
            time_zone: custody_cli::when::Zone::default(),
        }
    }

    /// The key file of the clerk's department administrator (next to the
    /// clerk's, as the trial network lays out a home).
    fn admin_key(&self) -> PathBuf {
        let home = self.key.parent().map(Path::to_owned).unwrap_or_default();
        home.join("admin.key")
    }

    /// [`Clerk::common`] signed by the department's administrator.
    fn admin_common(&self) -> CommonArgs {
        CommonArgs {
            key: Some(self.admin_key()),
            ..self.common()
        }
    }

    /// The clerk's node, reading records signed with `common`'s key.
    fn api(&self, common: &CommonArgs) -> Result<NodeApi, doc::DocError> {
        let key = doc::util::member_key(common)?;
        Ok(NodeApi::new(&self.api_url)?.signed_by(key))
    }
}

/// What the audit afterwards looks at.
#[derive(Default)]
pub struct Outcome {
    pub registered: usize,
    /// A document handed over, and the transaction that accepted it.
    pub transferred: Option<(String, String)>,
    /// The amended document.
    pub amended: Option<String>,
    /// A copy opened before the amendment (now an old version).
    pub old_copy: Option<(String, PathBuf)>,
    /// The copy read for the fixity check (the current version).
    pub checked_copy: Option<(String, PathBuf)>,
    /// The document disposed of after its retention.
    pub disposed: Option<String>,
    pub steps: usize,
}

pub struct Scenario {
    pub clerks: Vec<Clerk>,
    samples: Vec<Vec<Sample>>,
    work_dir: PathBuf,
    last_height: u64,
    pub outcome: Outcome,
}

/// Who the demo's clerks are: (department, name, clearance).
const CLERKS: [(&str, &str, Classification); 4] = [
    ("civil-affairs", "Wang Fang", Classification::Confidential),
    ("social-security", "Li Na", Classification::Confidential),
    ("health", "Zhang Wei", Classification::Confidential),
    ("public-security", "Chen Jie", Classification::Secret),
];

fn height_of(value: &Value) -> u64 {
    value.get("height").and_then(Value::as_u64).unwrap_or(0)
}

fn tx_of(value: &Value) -> String {
    value
        .get("tx_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn kilobytes(bytes: u64) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}

/// Runs one `custody doc …` command as `clerk` and returns its JSON result.
async fn doc_command(clerk: &Clerk, command: DocCommand) -> Result<Value, doc::DocError> {
    let args = DocArgs {
        command,
        common: clerk.common(),
    };
    doc::CAPTURED_OUTPUT
        .scope(RefCell::new(None), async move {
            doc::run(args).await?;
            Ok(doc::CAPTURED_OUTPUT
                .with(|slot| slot.borrow_mut().take())
                .unwrap_or(Value::Null))
        })
        .await
}

/// Whether the node asked for a retry. Between committing a block and
/// rebuilding its mempool, a node can still fold a just-committed event in
/// as pending and refuse a transaction that names it; it answers "refresh
/// and retry", and so the demo does.
fn is_transient(error: &doc::DocError) -> bool {
    matches!(
        error,
        doc::DocError::TransactionRefused { code, .. }
            if code == "stale_previous_event" || code == "wrong_nonce"
    )
}

/// A copy of a document command, for a retry (the clap types do not
/// derive `Clone`). Only the commands the scenario uses are copied.
fn copy_command(command: &DocCommand) -> Option<DocCommand> {
    Some(match command {
        DocCommand::Register(args) => DocCommand::Register(RegisterArgs {
            file: args.file.clone(),
            title: args.title.clone(),
            record_type: args.record_type.clone(),
            classification: args.classification.clone(),
            retention: args.retention.clone(),
            mime: args.mime.clone(),
            pronom: args.pronom.clone(),
            id: args.id.clone(),
            work_dir: args.work_dir.clone(),
            created: args.created.clone(),
            subject: args.subject.clone(),
            subject_key: args.subject_key.clone(),
        }),
        DocCommand::Offer {
            document,
            to,
            until,
        } => DocCommand::Offer {
            document: document.clone(),
            to: to.clone(),
            until: until.clone(),
        },
        DocCommand::Accept { document } => DocCommand::Accept {
            document: document.clone(),
        },
        DocCommand::Reject { document, reason } => DocCommand::Reject {
            document: document.clone(),
            reason: reason.clone(),
        },
        DocCommand::Grant {
            document,
            to,
            until,
        } => DocCommand::Grant {
            document: document.clone(),
            to: to.clone(),
            until: until.clone(),
        },
        DocCommand::Open {
            document,
            output,
            purpose,
        } => DocCommand::Open {
            document: document.clone(),
            output: output.clone(),
            purpose: purpose.clone(),
        },
        // Not used by the scenario: not retried.
        _ => return None,
    })
}

fn step_error(step: String) -> impl FnOnce(doc::DocError) -> DemoError {
    move |source| DemoError::Step { step, source }
}

impl Scenario {
    /// Writes the sample files (`per_department` each) and enrols nothing
    /// yet: [`Scenario::run`] does it on chain.
    pub fn prepare(
        dir: &Path,
        api_urls: &[(String, String)],
        per_department: usize,
    ) -> Result<Scenario, DemoError> {
        let work_dir = dir.join("demo-work");
        let mut clerks = Vec::new();
        let mut all_samples = Vec::new();
        for (department, name, _) in CLERKS {
            let api_url = api_urls
                .iter()
                .find(|(d, _)| d == department)
                .map(|(_, url)| url.clone())
                .ok_or_else(|| DemoError::Setup(format!("no node for `{department}`")))?;
            let home = dir.join(department);
            clerks.push(Clerk {
                department: department.to_string(),
                name: name.to_string(),
                api_url,
                key: home
                    .join("members")
                    .join(format!("{}.key", name.to_lowercase().replace(' ', "-"))),
                department_key: home.join(custody_node::home::TRIAL_DEPARTMENT_KEY_FILE),
            });
            all_samples.push(samples::generate(
                &dir.join("samples").join(department),
                department,
                per_department,
                SAMPLE_YEAR,
            )?);
        }
        std::fs::create_dir_all(&work_dir).map_err(|source| DemoError::Io {
            action: "create",
            path: work_dir.clone(),
            source,
        })?;
        Ok(Scenario {
            clerks,
            samples: all_samples,
            work_dir,
            last_height: 0,
            outcome: Outcome::default(),
        })
    }

    /// What must never be on chain in the clear: every sample's title, the
    /// names of the people the samples are about, and every reason,
    /// purpose and note the scenario records. Written by the demo to
    /// `DIR/demo-private-texts.json`, for a check of its export.
    pub fn private_texts(&self) -> serde_json::Value {
        let titles: Vec<&str> = self
            .samples
            .iter()
            .flatten()
            .map(|sample| sample.title.as_str())
            .chain([CITIZEN_RECORD_TITLE])
            .collect();
        let subjects: Vec<&str> = samples::PEOPLE
            .iter()
            .copied()
            .chain([CITIZEN_ID_NUMBER])
            .collect();
        serde_json::json!({
            "titles": titles,
            "subjects": subjects,
            "texts": SEALED_TEXTS,
        })
    }

    fn clerk(&self, department: usize) -> &Clerk {
        &self.clerks[department]
    }

    fn sample(&self, department: usize, index: usize) -> &Sample {
        &self.samples[department][index]
    }

    /// Waits until `clerk`'s node has every block the demo has seen
    /// committed, so that a step never acts on a node that lags behind
    /// the previous step.
    async fn catch_up(&self, clerk: &Clerk) -> Result<(), DemoError> {
        let api = NodeApi::new(&clerk.api_url).map_err(step_error("connect".into()))?;
        let deadline = Instant::now() + Duration::from_millis(CATCH_UP_TIMEOUT_MS);
        loop {
            let status = api
                .status()
                .await
                .map_err(step_error(format!("ask {}'s node", clerk.department)))?;
            if status.height >= self.last_height {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Setup(format!(
                    "{}'s node is at height {}, still behind height {} after {} s",
                    clerk.department,
                    status.height,
                    self.last_height,
                    CATCH_UP_TIMEOUT_MS / 1000
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run_doc(
        &mut self,
        department: usize,
        command: DocCommand,
        step: String,
    ) -> Result<Value, DemoError> {
        self.catch_up(self.clerk(department)).await?;
        let mut attempt = 0;
        let mut command = Some(command);
        let value = loop {
            let Some(this_try) = command.take() else {
                return Err(DemoError::Setup(format!("step `{step}` cannot be retried")));
            };
            command = copy_command(&this_try);
            match doc_command(self.clerk(department), this_try).await {
                Ok(value) => break value,
                Err(error)
                    if is_transient(&error) && attempt < RETRIES_MAX && command.is_some() =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                }
                Err(error) => return Err(step_error(step)(error)),
            }
        };
        self.last_height = self.last_height.max(height_of(&value));
        self.outcome.steps += 1;
        Ok(value)
    }

    /// The whole story. `short` keeps only the steps that show each kind of
    /// event once or twice.
    pub async fn run(&mut self, short: bool) -> Result<(), DemoError> {
        self.enrol_clerks().await?;
        self.register_all().await?;
        self.citizen_receipt().await?;
        self.refusals().await?;

        section("Custody transfers between departments");
        self.transfer(
            0,
            0,
            3,
            "the birth must be entered in the household register",
        )
        .await?;
        self.transfer(2, 1, 1, "the patient claims a disability pension")
            .await?;
        self.offer_rejected(1, 1, 2, REJECTION_REASON).await?;
        if !short {
            for department in 0..4 {
                if self.samples[department].len() > 2 {
                    self.transfer(
                        department,
                        2,
                        (department + 1) % 4,
                        "case transferred to the competent department",
                    )
                    .await?;
                }
            }
        }

        section("Read access between departments");
        self.grant_and_read(3, 0, 0, PURPOSE_RESIDENCE_CHECK)
            .await?;
        self.grant_and_read(1, 0, 2, PURPOSE_PENSION_REVIEW).await?;
        self.custodian_read(0, 1, PURPOSE_CERTIFIED_COPY).await?;
        if !short {
            for department in 0..4 {
                // Only public security's clerk is cleared for its secret
                // investigation files: grant the next record instead.
                let index = if self.samples[department]
                    .get(3)
                    .is_some_and(|sample| sample.classification == "secret")
                {
                    4
                } else {
                    3
                };
                if self.samples[department].len() > index {
                    self.grant_and_read(
                        department,
                        index,
                        (department + 3) % 4,
                        PURPOSE_STATISTICS,
                    )
                    .await?;
                }
            }
        }

        section("Correcting a record");
        self.amend(0, 1).await?;

        section("Fixity check");
        self.fixity_check(2, 0).await?;

        section("Disposal after retention");
        self.dispose_old_record(0).await?;
        Ok(())
    }

    async fn enrol_clerks(&mut self) -> Result<(), DemoError> {
        section("Each department's administrator enrols a named clerk");
        for (index, (department, name, clearance)) in CLERKS.iter().enumerate() {
            let clerk = self.clerk(index);
            let secret = custody_node::home::generate_key_file(&clerk.key).map_err(|error| {
                DemoError::Setup(format!("cannot write {}: {error}", clerk.key.display()))
            })?;
            let public = custody_ledger::encoding::public_key_of(
                &ed25519_dalek::SigningKey::from_bytes(&secret),
            );
            let admin_key_path = clerk.admin_key();
            let admin_secret =
                custody_node::home::read_key_file(&admin_key_path).map_err(|error| {
                    DemoError::Setup(format!("cannot read {}: {error}", admin_key_path.display()))
                })?;
            let admin = ed25519_dalek::SigningKey::from_bytes(&admin_secret);
            let body = TxBody::EnrollMember {
                member: public,
                department: DepartmentId::new(department.to_string())
                    .map_err(|error| DemoError::Setup(error.to_string()))?,
                name: name.to_string(),
                roles: vec![Role::Clerk],
                clearance: *clearance,
            };
            let step = format!("enrol {name} at {department}");
            self.catch_up(self.clerk(index)).await?;
            let api = NodeApi::new(&self.clerk(index).api_url)
                .map_err(step_error(step.clone()))?
                .signed_by(admin.clone());
            let answer = api
                .submit_and_wait(&admin, body, Duration::from_secs(COMMIT_WAIT_SECONDS))
                .await
                .map_err(step_error(step))?;
            let height = answer.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0);
            self.last_height = self.last_height.max(height);
            self.outcome.steps += 1;
            say(
                department,
                "administrator",
                &format!(
                    "enrols {name} as a clerk with clearance `{}` (height {height})",
                    classification_name(*clearance)
                ),
            );
        }
        Ok(())
    }

    async fn register_all(&mut self) -> Result<(), DemoError> {
        let total: usize = self.samples.iter().map(Vec::len).sum();
        section(&format!(
            "Clerks encrypt and register {total} archives (only ciphertext reaches the nodes)"
        ));
        let per_department = self.samples.iter().map(Vec::len).max().unwrap_or(0);
        for index in 0..per_department {
            for department in 0..self.clerks.len() {
                if index >= self.samples[department].len() {
                    continue;
                }
                let sample = self.sample(department, index);
                let command = DocCommand::Register(RegisterArgs {
                    file: sample.path.clone(),
                    title: sample.title.clone(),
                    record_type: sample.record_type.clone(),
                    classification: sample.classification.clone(),
                    retention: sample.retention.clone(),
                    mime: sample.mime.clone(),
                    pronom: Some(sample.pronom.clone()),
                    id: Some(sample.id.clone()),
                    work_dir: Some(self.work_dir.clone()),
                    created: None,
                    subject: None,
                    subject_key: None,
                });
                let step = format!("register {}", sample.id);
                let line = format!(
                    "registers \"{}\" ({} {}, {}, {})",
                    sample.title,
                    sample.classification,
                    sample.record_type,
                    sample.mime,
                    kilobytes(sample.size_bytes)
                );
                let value = self.run_doc(department, command, step).await?;
                let clerk = self.clerk(department);
                say(
                    &clerk.department,
                    &clerk.name,
                    &format!(
                        "{line}: {} at height {}",
                        self.sample(department, index).id,
                        height_of(&value)
                    ),
                );
                self.outcome.registered += 1;
            }
        }
        Ok(())
    }

    /// A record registered about a citizen: the clerk hands them a receipt
    /// code, with which they see who holds their records on the open page.
    async fn citizen_receipt(&mut self) -> Result<(), DemoError> {
        section("A citizen's receipt code");
        let sample = self.sample(0, 0);
        let identity = format!("{} {CITIZEN_ID_NUMBER}", samples::PEOPLE[0]);
        let home = self
            .clerk(0)
            .department_key
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let command = DocCommand::Register(RegisterArgs {
            file: sample.path.clone(),
            title: CITIZEN_RECORD_TITLE.to_string(),
            record_type: "birth-registration".to_string(),
            classification: "confidential".to_string(),
            retention: "permanent".to_string(),
            mime: sample.mime.clone(),
            pronom: Some(sample.pronom.clone()),
            id: Some(format!("civil-affairs-{SAMPLE_YEAR}-citizen")),
            work_dir: Some(self.work_dir.clone()),
            created: None,
            subject: Some(identity),
            subject_key: Some(home.join(custody_node::testnet::SUBJECT_KEY_FILE)),
        });
        let value = self
            .run_doc(0, command, "register about a citizen".to_string())
            .await?;
        let code = value["receipt_code"].as_str().unwrap_or_default();
        let clerk = self.clerk(0);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "registers a birth record about a citizen (height {}) and hands them receipt code {code}; the chain holds only a tag derived from it",
                height_of(&value)
            ),
        );
        say(
            &clerk.department,
            "",
            &format!(
                "the citizen looks it up: curl -s -X POST {}/v1/citizen/records -H 'content-type: application/json' -d '{{\"receipt_code\": \"{code}\"}}'",
                clerk.api_url
            ),
        );
        say(
            &clerk.department,
            "",
            &format!(
                "or in a browser: open {}/citizen and enter receipt code {code}",
                clerk.api_url
            ),
        );
        Ok(())
    }

    /// Two things the rules refuse, so that the demo shows the door shut.
    async fn refusals(&mut self) -> Result<(), DemoError> {
        section("What the rules refuse");
        // A clerk cleared for `confidential` tries to register a secret file.
        let sample = self.sample(0, 0);
        let command = DocCommand::Register(RegisterArgs {
            file: sample.path.clone(),
            title: "Adoption file, sealed".to_string(),
            record_type: "adoption-file".to_string(),
            classification: "secret".to_string(),
            retention: "permanent".to_string(),
            mime: sample.mime.clone(),
            pronom: Some(sample.pronom.clone()),
            id: Some(format!("civil-affairs-{SAMPLE_YEAR}-sealed")),
            work_dir: Some(self.work_dir.clone()),
            created: None,
            subject: None,
            subject_key: None,
        });
        self.catch_up(self.clerk(0)).await?;
        let clerk = self.clerk(0);
        match doc_command(clerk, command).await {
            Err(error) => say(
                &clerk.department,
                &clerk.name,
                &format!(
                    "tries to register a `secret` adoption file: refused by the node: {error}"
                ),
            ),
            Ok(_) => {
                return Err(DemoError::Setup(
                    "a clerk cleared for `confidential` registered a secret file".to_string(),
                ))
            }
        }
        // A department with no grant tries to open someone else's record.
        let sample = self.sample(0, 1);
        let output = self.work_dir.join("should-not-exist");
        let command = DocCommand::Open {
            document: sample.id.clone(),
            output: output.clone(),
            purpose: "curiosity".to_string(),
        };
        let title = sample.title.clone();
        let clerk = self.clerk(1);
        match doc_command(clerk, command).await {
            Err(error) => say(
                &clerk.department,
                &clerk.name,
                &format!(
                    "tries to open \"{title}\" without a grant: refused, nothing recorded: {error}"
                ),
            ),
            Ok(_) => {
                return Err(DemoError::Setup(
                    "a department without a grant opened a document".to_string(),
                ))
            }
        }
        Ok(())
    }

    async fn offer(&mut self, from: usize, index: usize, to: usize) -> Result<(), DemoError> {
        let sample = self.sample(from, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let to_department = self.clerk(to).department.clone();
        let command = DocCommand::Offer {
            document: id.clone(),
            to: to_department.clone(),
            until: None,
        };
        let value = self
            .run_doc(from, command, format!("offer {id} to {to_department}"))
            .await?;
        let clerk = self.clerk(from);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "offers \"{title}\" to {to_department}, its data key wrapped to their key (height {})",
                height_of(&value)
            ),
        );
        Ok(())
    }

    async fn transfer(
        &mut self,
        from: usize,
        index: usize,
        to: usize,
        why: &str,
    ) -> Result<(), DemoError> {
        self.offer(from, index, to).await?;
        let sample = self.sample(from, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let value = self
            .run_doc(
                to,
                DocCommand::Accept {
                    document: id.clone(),
                },
                format!("accept {id}"),
            )
            .await?;
        let clerk = self.clerk(to);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "fetches \"{title}\" from {}'s node, decrypts it, checks its fixity and accepts custody ({why}; height {})",
                self.clerk(from).department,
                height_of(&value)
            ),
        );
        if self.outcome.transferred.is_none() {
            self.outcome.transferred = Some((id, tx_of(&value)));
        }
        Ok(())
    }

    async fn offer_rejected(
        &mut self,
        from: usize,
        index: usize,
        to: usize,
        reason: &str,
    ) -> Result<(), DemoError> {
        self.offer(from, index, to).await?;
        let sample = self.sample(from, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let value = self
            .run_doc(
                to,
                DocCommand::Reject {
                    document: id.clone(),
                    reason: reason.to_string(),
                },
                format!("reject {id}"),
            )
            .await?;
        let clerk = self.clerk(to);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "rejects \"{title}\": \"{reason}\" (height {}); it stays with {}",
                height_of(&value),
                self.clerk(from).department
            ),
        );
        Ok(())
    }

    async fn open(
        &mut self,
        reader: usize,
        id: &str,
        purpose: &str,
    ) -> Result<(PathBuf, Value), DemoError> {
        let output = self
            .work_dir
            .join(format!("{}-read-{}", self.clerk(reader).department, id));
        let value = self
            .run_doc(
                reader,
                DocCommand::Open {
                    document: id.to_string(),
                    output: output.clone(),
                    purpose: purpose.to_string(),
                },
                format!("open {id}"),
            )
            .await?;
        Ok((output, value))
    }

    async fn grant_and_read(
        &mut self,
        custodian: usize,
        index: usize,
        grantee: usize,
        purpose: &str,
    ) -> Result<(), DemoError> {
        let sample = self.sample(custodian, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let grantee_department = self.clerk(grantee).department.clone();
        let value = self
            .run_doc(
                custodian,
                DocCommand::Grant {
                    document: id.clone(),
                    to: grantee_department.clone(),
                    until: "+30d".to_string(),
                },
                format!("grant {id} to {grantee_department}"),
            )
            .await?;
        let clerk = self.clerk(custodian);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "grants {grantee_department} read access to \"{title}\" for 30 days (height {})",
                height_of(&value)
            ),
        );
        let (_, value) = self.open(grantee, &id, purpose).await?;
        let clerk = self.clerk(grantee);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "opens \"{title}\" for \"{purpose}\": the read is recorded first (height {}), then the file is downloaded, decrypted and its fixity checked",
                height_of(&value)
            ),
        );
        Ok(())
    }

    async fn custodian_read(
        &mut self,
        custodian: usize,
        index: usize,
        purpose: &str,
    ) -> Result<(), DemoError> {
        let sample = self.sample(custodian, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let (output, value) = self.open(custodian, &id, purpose).await?;
        let clerk = self.clerk(custodian);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "opens \"{title}\" for \"{purpose}\" (read recorded at height {})",
                height_of(&value)
            ),
        );
        self.outcome.old_copy = Some((id, output));
        Ok(())
    }

    /// A new version with a misspelt name corrected: encrypted, uploaded
    /// and recorded as an amendment linking to the old version
    /// (`custody doc amend`).
    async fn amend(&mut self, custodian: usize, index: usize) -> Result<(), DemoError> {
        let sample = self.sample(custodian, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let corrected = samples::corrected(sample, AMENDMENT_NOTE)?;
        let step = format!("amend {id}");
        self.catch_up(self.clerk(custodian)).await?;
        let clerk = self.clerk(custodian);
        let (department, name) = (clerk.department.clone(), clerk.name.clone());
        let common = clerk.common();
        let api = clerk.api(&common).map_err(step_error(step.clone()))?;
        let request = AmendRequest {
            document: DocumentId::new(id.clone())
                .map_err(|error| DemoError::Setup(error.to_string()))?,
            file: corrected,
            reason: AmendReason::Correction,
            note: AMENDMENT_NOTE.to_string(),
            title: Some(title.clone()),
            format: None,
            work_dir: Some(self.work_dir.clone()),
        };
        let outcome = lifecycle::amend(&api, &common, request)
            .await
            .map_err(step_error(step))?;
        let height = outcome.committed.height;
        self.last_height = self.last_height.max(height);
        self.outcome.steps += 1;
        say(
            &department,
            &name,
            &format!(
                "corrects \"{title}\": version {} ({}) is encrypted, uploaded and recorded as an amendment of version {} (height {height})",
                outcome.version,
                kilobytes(outcome.plaintext.size_bytes),
                outcome.previous_version
            ),
        );
        self.outcome.amended = Some(id);
        Ok(())
    }

    /// Opens the document (both fingerprints checked by the clerk's
    /// `open`), then reads its ciphertext back and records the fixity check
    /// (`custody doc fixity`).
    async fn fixity_check(&mut self, custodian: usize, index: usize) -> Result<(), DemoError> {
        let sample = self.sample(custodian, index);
        let (id, title) = (sample.id.clone(), sample.title.clone());
        let (output, _) = self.open(custodian, &id, PURPOSE_FIXITY_CHECK).await?;
        let step = format!("record the fixity check of {id}");
        self.catch_up(self.clerk(custodian)).await?;
        let clerk = self.clerk(custodian);
        let (department, name) = (clerk.department.clone(), clerk.name.clone());
        let common = clerk.common();
        let api = clerk.api(&common).map_err(step_error(step.clone()))?;
        let document_id =
            DocumentId::new(id.clone()).map_err(|error| DemoError::Setup(error.to_string()))?;
        let outcome = lifecycle::fixity(&api, &common, &document_id, Some(FIXITY_NOTE))
            .await
            .map_err(step_error(step))?;
        if outcome.result != FixityResult::Intact {
            return Err(DemoError::Setup(format!(
                "the ciphertext of {id} read back as SHA-256 {}, the chain records {}",
                outcome.found.sha256, outcome.expected.sha256
            )));
        }
        let height = outcome.committed.height;
        self.last_height = self.last_height.max(height);
        self.outcome.steps += 2;
        say(
            &department,
            &name,
            &format!(
                "reads \"{title}\" back from the node (read recorded at height {}): its ciphertext SHA-256 matches the chain ({}); records the check as intact (height {height})",
                outcome.read.height,
                outcome.expected.sha256
            ),
        );
        self.outcome.checked_copy = Some((id, output));
        Ok(())
    }

    /// Registers a record made in 1988 and kept 30 years, then has the
    /// department's administrator dispose of it (`custody doc dispose`):
    /// every node deletes its ciphertext, and the node answers a fetch of
    /// it with `document_disposed`.
    async fn dispose_old_record(&mut self, department: usize) -> Result<(), DemoError> {
        let clerk = self.clerk(department);
        let id = format!("{}-1988-index-cards", clerk.department);
        let file = self.work_dir.join(format!("{id}.txt"));
        std::fs::write(
            &file,
            b"Civil register index cards, 1988: 4 120 cards, superseded by the electronic register.\n",
        )
        .map_err(|source| DemoError::Io {
            action: "write",
            path: file.clone(),
            source,
        })?;
        let command = DocCommand::Register(RegisterArgs {
            file,
            title: DISPOSAL_TITLE.to_string(),
            record_type: "register-index".to_string(),
            classification: "internal".to_string(),
            retention: DISPOSAL_RETENTION_YEARS.to_string(),
            mime: "text/plain".to_string(),
            pronom: None,
            id: Some(id.clone()),
            work_dir: Some(self.work_dir.clone()),
            created: Some(DISPOSAL_CREATED.to_string()),
            subject: None,
            subject_key: None,
        });
        let value = self
            .run_doc(department, command, format!("register {id}"))
            .await?;
        let clerk = self.clerk(department);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "registers \"{DISPOSAL_TITLE}\", made on {DISPOSAL_CREATED} and kept {DISPOSAL_RETENTION_YEARS} years (height {})",
                height_of(&value)
            ),
        );

        let step = format!("dispose of {id}");
        self.catch_up(self.clerk(department)).await?;
        let clerk = self.clerk(department);
        let department_name = clerk.department.clone();
        let common = clerk.admin_common();
        let api = clerk.api(&common).map_err(step_error(step.clone()))?;
        let document_id =
            DocumentId::new(id.clone()).map_err(|error| DemoError::Setup(error.to_string()))?;
        let outcome = lifecycle::dispose(
            &api,
            &common,
            &document_id,
            DISPOSAL_AUTHORITY,
            DISPOSAL_REASON,
        )
        .await
        .map_err(step_error(step.clone()))?;
        let height = outcome.committed.height;
        self.last_height = self.last_height.max(height);
        self.outcome.steps += 1;
        say(
            &department_name,
            "administrator",
            &format!(
                "disposes of \"{DISPOSAL_TITLE}\": its retention ended, the reason and the authority are sealed on chain (height {height}); every node deletes its ciphertext"
            ),
        );
        match api.fetch(&document_id).await {
            Err(doc::DocError::Refused { code, .. }) if code == "document_disposed" => say(
                &department_name,
                "administrator",
                "asks the node for its ciphertext: gone (410 document_disposed)",
            ),
            Err(error) => return Err(step_error(step)(error)),
            Ok(_) => {
                return Err(DemoError::Setup(format!(
                    "the node still serves the ciphertext of disposed document {id}"
                )))
            }
        }
        self.outcome.disposed = Some(id);
        Ok(())
    }
}

fn classification_name(classification: Classification) -> &'static str {
    match classification {
        Classification::Public => "public",
        Classification::Internal => "internal",
        Classification::Confidential => "confidential",
        Classification::Secret => "secret",
    }
}
