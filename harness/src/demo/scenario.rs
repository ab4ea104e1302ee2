//! The demo's story: four departments enrol clerks, register their
//! archives, hand some over, refuse one, let each other read, correct one,
//! check another's fixity and dispose of an old record.
//!
//! Every step calls the clerk library behind `custody doc …`
//! ([`custody_cli::clerk`]: register, offer, accept, …) against the
//! clerk's own department node, exactly as a clerk at a terminal would,
//! and tells its typed outcome.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custody_cli::clerk::{self, AmendRequest, Committed, Context, DocError, NodeApi};
use custody_cli::doc::util;
use custody_cli::when::DayBound;
use custody_ledger::tx::{AmendReason, FixityResult, TxBody};
use custody_ledger::types::{Classification, DepartmentId, DocumentId, Format, Role, Timestamp};

use super::samples::{self, Sample};
use super::{say, section, DemoError};

/// Longest wait for one transaction to commit.
const COMMIT_WAIT_SECONDS: u64 = 60;
/// Longest wait for a node to reach a height another node committed.
const CATCH_UP_TIMEOUT_MS: u64 = 30_000;
/// Retries of a step the node refused with "refresh and retry".
const RETRIES_MAX: u32 = 5;
const RETRY_PAUSE_MS: u64 = 200;
/// How long the demo's grants last (30 days).
const GRANT_MS: u64 = 30 * 24 * 60 * 60 * 1000;
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
const DISPOSAL_RETENTION_YEARS: u16 = 30;
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
    clerk::INSPECTION_PURPOSE,
    clerk::FIXITY_PURPOSE,
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
    /// The clerk as the library sees them: their member key, their
    /// department's key, the demo's commit wait.
    fn context(&self) -> Result<Context, DocError> {
        self.context_signed_by(&self.key)
    }

    /// The key file of the clerk's department administrator (next to the
    /// clerk's, as the trial network lays out a home).
    fn admin_key(&self) -> PathBuf {
        let home = self.key.parent().map(Path::to_owned).unwrap_or_default();
        home.join("admin.key")
    }

    /// [`Clerk::context`] signed by the department's administrator.
    fn admin_context(&self) -> Result<Context, DocError> {
        self.context_signed_by(&self.admin_key())
    }

    fn context_signed_by(&self, member_key: &Path) -> Result<Context, DocError> {
        let member_key = util::member_key_at(member_key, None)?;
        let department_key = util::department_key_at(&self.department_key, None)?;
        Ok(
            Context::new(member_key, Duration::from_secs(COMMIT_WAIT_SECONDS))
                .with_department_key(department_key, self.department_key.clone()),
        )
    }

    /// The clerk's node, reading records signed with `context`'s key.
    fn api(&self, context: &Context) -> Result<NodeApi, DocError> {
        Ok(NodeApi::new(&self.api_url)?.signed_by(context.member_key.clone()))
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

/// An outcome of the clerk library that committed a transaction.
trait Recorded {
    fn committed(&self) -> &Committed;

    fn height(&self) -> u64 {
        self.committed().height
    }
}

macro_rules! recorded {
    ($($outcome:ty),*) => {
        $(impl Recorded for $outcome {
            fn committed(&self) -> &Committed {
                &self.committed
            }
        })*
    };
}

recorded!(
    clerk::RegisterOutcome,
    clerk::OfferOutcome,
    clerk::AcceptOutcome,
    clerk::RejectOutcome,
    clerk::GrantOutcome,
    clerk::OpenOutcome
);

fn kilobytes(bytes: u64) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}

/// Whether the node asked for a retry. Between committing a block and
/// rebuilding its mempool, a node can still fold a just-committed event in
/// as pending and refuse a transaction that names it; it answers "refresh
/// and retry", and so the demo does.
fn is_transient(error: &DocError) -> bool {
    matches!(
        error,
        DocError::TransactionRefused { code, .. }
            if code == "stale_previous_event" || code == "wrong_nonce"
    )
}

/// One try of a step: the clerk's keys read, a fresh connection to their
/// node (no member or nonce remembered from a refused try), the step run.
async fn act<T, Step, Running>(clerk: &Clerk, action: &Step) -> Result<T, DocError>
where
    Step: Fn(NodeApi, Context) -> Running,
    Running: Future<Output = Result<T, DocError>>,
{
    let context = clerk.context()?;
    let api = clerk.api(&context)?;
    action(api, context).await
}

/// A sample registered as the clerk would register it by hand.
fn sample_request(sample: &Sample, work_dir: &Path) -> Result<clerk::RegisterRequest, DemoError> {
    let setup = |error: DocError| DemoError::Setup(format!("sample {}: {error}", sample.id));
    Ok(clerk::RegisterRequest {
        file: sample.path.clone(),
        title: sample.title.clone(),
        record_type: sample.record_type.clone(),
        classification: util::parse_classification(&sample.classification).map_err(setup)?,
        retention: util::parse_retention(&sample.retention).map_err(setup)?,
        format: Format {
            mime: sample.mime.clone(),
            pronom: Some(sample.pronom.clone()),
        },
        id: Some(document_id(&sample.id)?),
        created: Timestamp(util::now_ms()),
        subject: None,
        work_dir: Some(work_dir.to_owned()),
    })
}

fn document_id(text: &str) -> Result<DocumentId, DemoError> {
    DocumentId::new(text.to_string()).map_err(|error| DemoError::Setup(error.to_string()))
}

fn department_id(text: &str) -> Result<DepartmentId, DemoError> {
    DepartmentId::new(text.to_string()).map_err(|error| DemoError::Setup(error.to_string()))
}

fn step_error(step: String) -> impl FnOnce(DocError) -> DemoError {
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

    /// Runs one step of the clerk library as the clerk of `department`, on
    /// their node once it has caught up; again, on a fresh connection, when
    /// the node asks to refresh and retry.
    async fn run_step<T, Step, Running>(
        &mut self,
        department: usize,
        step: String,
        action: Step,
    ) -> Result<T, DemoError>
    where
        T: Recorded,
        Step: Fn(NodeApi, Context) -> Running,
        Running: Future<Output = Result<T, DocError>>,
    {
        self.catch_up(self.clerk(department)).await?;
        let mut attempt = 0;
        let outcome = loop {
            match act(self.clerk(department), &action).await {
                Ok(outcome) => break outcome,
                Err(error) if is_transient(&error) && attempt < RETRIES_MAX => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                }
                Err(error) => return Err(step_error(step)(error)),
            }
        };
        self.last_height = self.last_height.max(outcome.height());
        self.outcome.steps += 1;
        Ok(outcome)
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
                let request = sample_request(sample, &self.work_dir)?;
                let step = format!("register {}", sample.id);
                let line = format!(
                    "registers \"{}\" ({} {}, {}, {})",
                    sample.title,
                    sample.classification,
                    sample.record_type,
                    sample.mime,
                    kilobytes(sample.size_bytes)
                );
                let outcome = self
                    .run_step(department, step, move |api, context| {
                        let request = request.clone();
                        async move { clerk::register(&api, &context, request).await }
                    })
                    .await?;
                let clerk = self.clerk(department);
                say(
                    &clerk.department,
                    &clerk.name,
                    &format!(
                        "{line}: {} at height {}",
                        outcome.document,
                        outcome.height()
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
        let receipt = util::receipt_code_at(
            &identity,
            &home.join(custody_node::testnet::SUBJECT_KEY_FILE),
            None,
        )
        .map_err(step_error("derive the citizen's receipt code".to_string()))?;
        let request = clerk::RegisterRequest {
            title: CITIZEN_RECORD_TITLE.to_string(),
            record_type: "birth-registration".to_string(),
            classification: Classification::Confidential,
            retention: custody_ledger::types::Retention::Permanent,
            id: Some(document_id(&format!(
                "civil-affairs-{SAMPLE_YEAR}-citizen"
            ))?),
            subject: Some(receipt),
            ..sample_request(sample, &self.work_dir)?
        };
        let outcome = self
            .run_step(
                0,
                "register about a citizen".to_string(),
                move |api, context| {
                    let request = request.clone();
                    async move { clerk::register(&api, &context, request).await }
                },
            )
            .await?;
        let code = outcome
            .receipt_code
            .map(|code| code.to_string())
            .unwrap_or_default();
        let clerk = self.clerk(0);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "registers a birth record about a citizen (height {}) and hands them receipt code {code}; the chain holds only a tag derived from it",
                outcome.height()
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
        let request = clerk::RegisterRequest {
            title: "Adoption file, sealed".to_string(),
            record_type: "adoption-file".to_string(),
            classification: Classification::Secret,
            retention: custody_ledger::types::Retention::Permanent,
            id: Some(document_id(&format!("civil-affairs-{SAMPLE_YEAR}-sealed"))?),
            ..sample_request(sample, &self.work_dir)?
        };
        self.catch_up(self.clerk(0)).await?;
        let clerk = self.clerk(0);
        let refused = act(clerk, &|api: NodeApi, context: Context| {
            let request = request.clone();
            async move { clerk::register(&api, &context, request).await }
        })
        .await;
        match refused {
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
        let document = document_id(&sample.id)?;
        let title = sample.title.clone();
        let clerk = self.clerk(1);
        let refused = act(clerk, &|api: NodeApi, context: Context| {
            let (document, output) = (document.clone(), output.clone());
            async move { clerk::open(&api, &context, &document, output, "curiosity").await }
        })
        .await;
        match refused {
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
        let request = clerk::OfferRequest {
            document: document_id(&id)?,
            to: department_id(&to_department)?,
            expires_at: None,
        };
        let outcome = self
            .run_step(
                from,
                format!("offer {id} to {to_department}"),
                move |api, context| {
                    let request = request.clone();
                    async move { clerk::offer(&api, &context, request).await }
                },
            )
            .await?;
        let clerk = self.clerk(from);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "offers \"{title}\" to {to_department}, its data key wrapped to their key (height {})",
                outcome.height()
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
        let document = document_id(&id)?;
        let outcome = self
            .run_step(to, format!("accept {id}"), move |api, context| {
                let document = document.clone();
                async move { clerk::accept(&api, &context, &document).await }
            })
            .await?;
        let clerk = self.clerk(to);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "fetches \"{title}\" from {}'s node, decrypts it, checks its fixity and accepts custody ({why}; height {})",
                self.clerk(from).department,
                outcome.height()
            ),
        );
        if self.outcome.transferred.is_none() {
            self.outcome.transferred = Some((id, outcome.committed.tx_id.to_string()));
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
        let document = document_id(&id)?;
        let why = reason.to_string();
        let outcome = self
            .run_step(to, format!("reject {id}"), move |api, context| {
                let (document, why) = (document.clone(), why.clone());
                async move { clerk::reject(&api, &context, &document, &why).await }
            })
            .await?;
        let clerk = self.clerk(to);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "rejects \"{title}\": \"{reason}\" (height {}); it stays with {}",
                outcome.height(),
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
    ) -> Result<clerk::OpenOutcome, DemoError> {
        let output = self
            .work_dir
            .join(format!("{}-read-{}", self.clerk(reader).department, id));
        let document = document_id(id)?;
        let purpose = purpose.to_string();
        self.run_step(reader, format!("open {id}"), move |api, context| {
            let (document, output, purpose) = (document.clone(), output.clone(), purpose.clone());
            async move { clerk::open(&api, &context, &document, output, &purpose).await }
        })
        .await
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
        let request = clerk::GrantRequest {
            document: document_id(&id)?,
            to: department_id(&grantee_department)?,
            expires_at: Timestamp(util::now_ms().saturating_add(GRANT_MS)),
        };
        let outcome = self
            .run_step(
                custodian,
                format!("grant {id} to {grantee_department}"),
                move |api, context| {
                    let request = request.clone();
                    async move { clerk::grant(&api, &context, request).await }
                },
            )
            .await?;
        let clerk = self.clerk(custodian);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "grants {grantee_department} read access to \"{title}\" for 30 days (height {})",
                outcome.height()
            ),
        );
        let opened = self.open(grantee, &id, purpose).await?;
        let clerk = self.clerk(grantee);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "opens \"{title}\" for \"{purpose}\": the read is recorded first (height {}), then the file is downloaded, decrypted and its fixity checked",
                opened.height()
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
        let opened = self.open(custodian, &id, purpose).await?;
        let clerk = self.clerk(custodian);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "opens \"{title}\" for \"{purpose}\" (read recorded at height {})",
                opened.height()
            ),
        );
        self.outcome.old_copy = Some((id, opened.output));
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
        let context = clerk.context().map_err(step_error(step.clone()))?;
        let api = clerk.api(&context).map_err(step_error(step.clone()))?;
        let request = AmendRequest {
            document: document_id(&id)?,
            file: corrected,
            reason: AmendReason::Correction,
            note: AMENDMENT_NOTE.to_string(),
            title: Some(title.clone()),
            format: None,
            work_dir: Some(self.work_dir.clone()),
        };
        let outcome = clerk::amend(&api, &context, request)
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
        let output = self
            .open(custodian, &id, PURPOSE_FIXITY_CHECK)
            .await?
            .output;
        let step = format!("record the fixity check of {id}");
        self.catch_up(self.clerk(custodian)).await?;
        let clerk = self.clerk(custodian);
        let (department, name) = (clerk.department.clone(), clerk.name.clone());
        let context = clerk.context().map_err(step_error(step.clone()))?;
        let api = clerk.api(&context).map_err(step_error(step.clone()))?;
        let document = document_id(&id)?;
        let outcome = clerk::fixity(&api, &context, &document, Some(FIXITY_NOTE))
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
        let created = custody_cli::when::Zone::default()
            .parse(DISPOSAL_CREATED, util::now_ms(), DayBound::Start)
            .map_err(|error| DemoError::Setup(error.to_string()))?;
        let request = clerk::RegisterRequest {
            file,
            title: DISPOSAL_TITLE.to_string(),
            record_type: "register-index".to_string(),
            classification: Classification::Internal,
            retention: custody_ledger::types::Retention::Years(DISPOSAL_RETENTION_YEARS),
            format: Format {
                mime: "text/plain".to_string(),
                pronom: None,
            },
            id: Some(document_id(&id)?),
            created: Timestamp(created),
            subject: None,
            work_dir: Some(self.work_dir.clone()),
        };
        let outcome = self
            .run_step(department, format!("register {id}"), move |api, context| {
                let request = request.clone();
                async move { clerk::register(&api, &context, request).await }
            })
            .await?;
        let clerk = self.clerk(department);
        say(
            &clerk.department,
            &clerk.name,
            &format!(
                "registers \"{DISPOSAL_TITLE}\", made on {DISPOSAL_CREATED} and kept {DISPOSAL_RETENTION_YEARS} years (height {})",
                outcome.height()
            ),
        );

        let step = format!("dispose of {id}");
        self.catch_up(self.clerk(department)).await?;
        let clerk = self.clerk(department);
        let department_name = clerk.department.clone();
        let context = clerk.admin_context().map_err(step_error(step.clone()))?;
        let api = clerk.api(&context).map_err(step_error(step.clone()))?;
        let document = document_id(&id)?;
        let outcome = clerk::dispose(
            &api,
            &context,
            &document,
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
        match api.fetch(&document).await {
            Err(DocError::Refused { code, .. }) if code == "document_disposed" => say(
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
