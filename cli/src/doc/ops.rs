//! The document commands: clap arguments parsed into the clerk library's
//! typed requests, and its outcomes printed in words or as JSON; and the
//! reads (show, history, list, receipt), which record nothing.

use crate::clerk::{self, Context};
use crate::sealed_text::Opener;
use custody_ledger::records::{Document, DocumentEvent, DocumentStatus, EventKind, Member};
use custody_ledger::sealed::fields;
use custody_ledger::tx::FixityResult;
use custody_ledger::types::{DepartmentId, DocumentId, Format, Timestamp};
use serde_json::json;

use super::node_api::NodeApi;
use super::sealed;
use super::util;
use super::{AmendArgs, CommonArgs, DocArgs, DocCommand, DocError, RegisterArgs};
use crate::when::DayBound;

/// Runs `custody doc …`.
pub async fn run(args: DocArgs) -> Result<(), DocError> {
    let common = args.common;
    let mut api = NodeApi::new(&common.node)?.with_transient_retries(common.transient_retries);
    // Read once: it signs the reads of records and every step's transactions.
    let member_key = match &common.key {
        Some(_) => Some(util::member_key(&common)?),
        None => None,
    };
    if let Some(key) = &member_key {
        api = api.signed_by(key.clone());
    }
    let acting = |department_key: bool| context(&common, member_key.as_ref(), department_key);
    match args.command {
        DocCommand::Register(register_args) => {
            register(&api, &common, &acting, register_args).await
        }
        DocCommand::Offer {
            document,
            to,
            until,
        } => {
            let document = document_id(&document)?;
            let to = department_id(&to)?;
            let expires_at = match until {
                Some(text) => Some(Timestamp(util::parse_time(
                    &text,
                    util::now_ms(),
                    &common,
                    DayBound::End,
                )?)),
                None => None,
            };
            let request = clerk::OfferRequest {
                document,
                to,
                expires_at,
            };
            let outcome = clerk::offer(&api, &acting(true)?, request).await?;
            let done = format!("offered document {} to `{}`", outcome.document, outcome.to);
            print_committed(&common, &outcome, &done, &outcome.committed)
        }
        DocCommand::Accept { document } => {
            let outcome = clerk::accept(&api, &acting(true)?, &document_id(&document)?).await?;
            if common.json {
                return print_json_value(&outcome);
            }
            println!(
                "accepted document {} (fixity checked: SHA-256 {}); transaction {} committed at height {}",
                outcome.document,
                outcome.plaintext_sha256,
                outcome.committed.tx_id,
                outcome.committed.height
            );
            Ok(())
        }
        DocCommand::Reject { document, reason } => {
            let outcome =
                clerk::reject(&api, &acting(true)?, &document_id(&document)?, &reason).await?;
            let done = format!("rejected the offer of document {}", outcome.document);
            print_committed(&common, &outcome, &done, &outcome.committed)
        }
        DocCommand::Cancel { document } => {
            let outcome = clerk::cancel(&api, &acting(false)?, &document_id(&document)?).await?;
            let done = format!("cancelled the offer of document {}", outcome.document);
            print_committed(&common, &outcome, &done, &outcome.committed)
        }
        DocCommand::Grant {
            document,
            to,
            until,
        } => {
            let document = document_id(&document)?;
            let to = department_id(&to)?;
            let expires_at = Timestamp(util::parse_time(
                &until,
                util::now_ms(),
                &common,
                DayBound::End,
            )?);
            let request = clerk::GrantRequest {
                document,
                to,
                expires_at,
            };
            let outcome = clerk::grant(&api, &acting(true)?, request).await?;
            let done = format!(
                "granted `{}` read access to document {} until {}",
                outcome.to,
                outcome.document,
                util::format_time(outcome.expires_at.0, &common)
            );
            print_committed(&common, &outcome, &done, &outcome.committed)
        }
        DocCommand::Revoke { document, from } => {
            let document = document_id(&document)?;
            let from = department_id(&from)?;
            let outcome = clerk::revoke(&api, &acting(false)?, &document, &from).await?;
            let done = format!("revoked a grant on document {}", outcome.document);
            print_committed(&common, &outcome, &done, &outcome.committed)
        }
        DocCommand::Open {
            document,
            output,
            purpose,
        } => {
            let document = document_id(&document)?;
            let outcome = clerk::open(&api, &acting(true)?, &document, output, &purpose).await?;
            if common.json {
                return print_json_value(&outcome);
            }
            println!(
                "opened document {} into {} ({} bytes, fixity checked); read recorded by transaction {} at height {}",
                outcome.document,
                outcome.output.display(),
                outcome.plaintext_bytes,
                outcome.committed.tx_id,
                outcome.committed.height
            );
            Ok(())
        }
        DocCommand::Amend(amend_args) => amend(&api, &common, &acting(true)?, amend_args).await,
        DocCommand::Fixity { document, note } => {
            let outcome = clerk::fixity(
                &api,
                &acting(true)?,
                &document_id(&document)?,
                note.as_deref(),
            )
            .await?;
            if common.json {
                print_json(&outcome)?;
            } else {
                println!(
                    "fixity of document {}: {} (ciphertext read back SHA-256 {}, {} bytes; the chain records {}, {} bytes); read recorded by transaction {}, check recorded by transaction {} at height {}",
                    outcome.document,
                    match outcome.result {
                        FixityResult::Intact => "intact",
                        FixityResult::Mismatch => "MISMATCH",
                    },
                    outcome.found.sha256,
                    outcome.found.size_bytes,
                    outcome.expected.sha256,
                    outcome.expected.size_bytes,
                    outcome.read.tx_id,
                    outcome.committed.tx_id,
                    outcome.committed.height
                );
            }
            match outcome.result {
                FixityResult::Intact => Ok(()),
                FixityResult::Mismatch => Err(DocError::FixityMismatch {
                    document: outcome.document.to_string(),
                    expected: outcome.expected.sha256.to_string(),
                    found: outcome.found.sha256.to_string(),
                    tx: outcome.committed.tx_id.to_string(),
                }),
            }
        }
        DocCommand::Dispose {
            document,
            authority,
            reason,
        } => {
            let outcome = clerk::dispose(
                &api,
                &acting(true)?,
                &document_id(&document)?,
                &authority,
                &reason,
            )
            .await?;
            if common.json {
                return print_json(&outcome);
            }
            println!(
                "disposed of document {} (transaction {} committed at height {}); every node now deletes its ciphertexts",
                outcome.document, outcome.committed.tx_id, outcome.committed.height
            );
            Ok(())
        }
        DocCommand::Show { document } => show(&api, &common, &document).await,
        DocCommand::History {
            document,
            limit,
            cursor,
            all,
        } => history(&api, &common, &document, limit, cursor, all).await,
        DocCommand::Receipt {
            subject,
            subject_key,
        } => {
            let receipt = util::receipt_code(&common, &subject, subject_key.as_deref())?;
            if common.json {
                return print_json(&json!({
                    "receipt_code": receipt.to_string(),
                    "subject_tag": receipt.subject_tag(),
                }));
            }
            println!("{receipt}");
            Ok(())
        }
        DocCommand::List {
            custodian,
            status,
            classification,
            subject,
            subject_key,
            limit,
            cursor,
        } => {
            let subject_tag = match &subject {
                Some(identity) => Some(
                    util::receipt_code(&common, identity, subject_key.as_deref())?
                        .subject_tag()
                        .to_string(),
                ),
                None => None,
            };
            let page = api
                .list(&[
                    ("custodian", custodian),
                    ("status", status),
                    ("classification", classification),
                    ("subject_tag", subject_tag),
                    ("limit", limit.map(|l| l.to_string())),
                    ("cursor", cursor),
                ])
                .await?;
            if common.json {
                return print_json(&page);
            }
            for doc in &page.items {
                println!(
                    "{:<32} {:<12} {:<13} {:<20} {}",
                    doc.id,
                    classification_name(doc),
                    doc.status.name(),
                    doc.custodian,
                    doc.title
                );
            }
            if let Some(next) = &page.next_cursor {
                println!("more: --cursor {next}");
            }
            Ok(())
        }
    }
}

/// The clerk acting in a command that records something: the member key
/// of `--key` (read once, in [`run`]) and, for a step that unwraps a data
/// key, the department key of `--department-key` when one is given (a step
/// that needs it and has none says so).
fn context(
    common: &CommonArgs,
    member_key: Option<&ed25519_dalek::SigningKey>,
    department_key: bool,
) -> Result<Context, DocError> {
    let member_key = match member_key {
        Some(key) => key.clone(),
        None => util::member_key(common)?,
    };
    let mut context = Context::new(
        member_key,
        std::time::Duration::from_secs(common.wait_seconds),
    );
    context.show_progress = !common.json;
    if let (true, Some(path)) = (department_key, &common.department_key) {
        context = context.with_department_key(util::department_key(common)?, path.clone());
    }
    Ok(context)
}

/// Prints `value` as JSON, in the order it serializes.
pub(super) fn print_json(value: &impl serde::Serialize) -> Result<(), DocError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| DocError::Output(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as a JSON object with its fields in name order, as the
/// commands that record one transaction always have.
fn print_json_value(value: &impl serde::Serialize) -> Result<(), DocError> {
    let value = serde_json::to_value(value).map_err(|e| DocError::Output(e.to_string()))?;
    print_json(&value)
}

/// Prints a step that recorded one transaction: `{document, tx_id, height}`
/// as JSON, or `done` and where the transaction landed.
fn print_committed(
    common: &CommonArgs,
    outcome: &impl serde::Serialize,
    done: &str,
    committed: &clerk::Committed,
) -> Result<(), DocError> {
    if common.json {
        return print_json_value(outcome);
    }
    println!(
        "{done} (transaction {} committed at height {})",
        committed.tx_id, committed.height
    );
    Ok(())
}

pub(super) fn document_id(text: &str) -> Result<DocumentId, DocError> {
    DocumentId::new(text.to_string()).map_err(|error| DocError::Usage(error.to_string()))
}

fn department_id(text: &str) -> Result<DepartmentId, DocError> {
    DepartmentId::new(text.to_string()).map_err(|error| DocError::Usage(error.to_string()))
}

fn classification_name(doc: &Document) -> String {
    serde_json::to_value(doc.classification)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn register(
    api: &NodeApi,
    common: &CommonArgs,
    acting: &impl Fn(bool) -> Result<Context, DocError>,
    args: RegisterArgs,
) -> Result<(), DocError> {
    let created = created_time(common, args.created.as_deref(), util::now_ms())?;
    // Derived first: a missing or wrong subject key stops the command
    // before anything is encrypted or uploaded.
    let subject = match &args.subject {
        Some(identity) => Some(util::receipt_code(
            common,
            identity,
            args.subject_key.as_deref(),
        )?),
        None => None,
    };
    let context = acting(false)?;
    let request = clerk::RegisterRequest {
        file: args.file,
        title: args.title,
        record_type: args.record_type,
        classification: util::parse_classification(&args.classification)?,
        retention: util::parse_retention(&args.retention)?,
        format: Format {
            mime: args.mime,
            pronom: args.pronom,
        },
        id: args.id.as_deref().map(document_id).transpose()?,
        created,
        subject,
        work_dir: args.work_dir,
    };
    let outcome = clerk::register(api, &context, request).await?;
    if common.json {
        return print_json_value(&outcome);
    }
    println!("{}", outcome.document);
    if let Some(receipt) = &outcome.receipt_code {
        eprintln!(
            "receipt code for the citizen (give it to them; it is not kept anywhere): {receipt}"
        );
    }
    eprintln!(
        "registered {} ({} bytes, SHA-256 {}) at height {}",
        outcome.file.display(),
        outcome.plaintext_bytes,
        outcome.plaintext_sha256,
        outcome.committed.height
    );
    Ok(())
}

async fn amend(
    api: &NodeApi,
    common: &CommonArgs,
    context: &Context,
    args: AmendArgs,
) -> Result<(), DocError> {
    let format = args.mime.map(|mime| Format {
        mime,
        pronom: args.pronom,
    });
    let request = clerk::AmendRequest {
        document: document_id(&args.document)?,
        file: args.file.clone(),
        reason: args.reason.into(),
        note: args.note,
        title: args.title,
        format,
        work_dir: args.work_dir,
    };
    let outcome = clerk::amend(api, context, request).await?;
    if common.json {
        return print_json(&outcome);
    }
    println!(
        "amended document {} to version {} ({}) from {} ({} bytes, SHA-256 {}); transaction {} committed at height {}",
        outcome.document,
        outcome.version,
        outcome.reason,
        args.file.display(),
        outcome.plaintext.size_bytes,
        outcome.plaintext.sha256,
        outcome.committed.tx_id,
        outcome.committed.height
    );
    Ok(())
}

/// The record's creation time from `--created` (default: `now_ms`):
/// retention runs from it, so a date after `now_ms` is refused here, as the
/// chain would refuse it.
fn created_time(
    common: &CommonArgs,
    text: Option<&str>,
    now_ms: u64,
) -> Result<Timestamp, DocError> {
    let Some(text) = text else {
        return Ok(Timestamp(now_ms));
    };
    let created = util::parse_time(text, now_ms, common, DayBound::Start)?;
    if created > now_ms {
        return Err(DocError::Usage(format!(
            "--created {text} is in the future ({}): give the date the record was made",
            util::format_time(created, common)
        )));
    }
    Ok(Timestamp(created))
}

async fn show(api: &NodeApi, common: &CommonArgs, document: &str) -> Result<(), DocError> {
    let doc = api.document(&document_id(document)?).await?;
    let opener = Opener::for_document(&doc, util::department_key(common).ok().as_ref());
    let sealed_title = if doc.title_is_sealed() {
        sealed::latest_sealed_title(api, &doc.id).await?
    } else {
        None
    };
    let title = opener.title(&doc, sealed_title.as_ref());
    if common.json {
        let mut value = serde_json::to_value(&doc).map_err(|e| DocError::Output(e.to_string()))?;
        if let Some(sealed_title) = &sealed_title {
            value["sealed_title"] = json!(sealed_title);
            value["title_opened"] = json!(opener.open(fields::TITLE, sealed_title));
        }
        return print_json(&value);
    }
    println!("document       {}", doc.id);
    println!("title          {title}");
    println!("record type    {}", doc.record_type);
    println!(
        "created by     {} at {}",
        doc.creating_department,
        util::format_time(doc.created.0, common)
    );
    println!("classification {}", classification_name(&doc));
    println!("retention      {}", doc.retention);
    println!(
        "format         {}{}",
        doc.format.mime,
        doc.format
            .pronom
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    println!(
        "fixity         SHA-256 {} ({} bytes)",
        doc.plaintext.sha256, doc.plaintext.size_bytes
    );
    println!(
        "ciphertext     SHA-256 {} ({} bytes)",
        doc.ciphertext.sha256, doc.ciphertext.size_bytes
    );
    println!("custodian      {}", doc.custodian);
    match &doc.status {
        DocumentStatus::InTransfer(offer) => println!(
            "status         in-transfer to {} until {}",
            offer.to,
            util::format_time(offer.expires_at.0, common)
        ),
        other => println!("status         {}", other.name()),
    }
    for grant in &doc.grants {
        println!(
            "grant          {} until {}",
            grant.department,
            util::format_time(grant.expires_at.0, common)
        );
    }
    println!("version        {}", doc.version);
    println!(
        "events         {} (latest {})",
        doc.event_count, doc.latest_event
    );
    Ok(())
}

fn describe(event: &DocumentEvent, opener: &Opener, common: &CommonArgs) -> String {
    let text = || opener.event_text(&event.kind).unwrap_or_default();
    match &event.kind {
        EventKind::Registered { .. } | EventKind::RegisteredSealed { .. } => {
            "registered".to_string()
        }
        EventKind::Offered { to, expires_at } => {
            format!(
                "offered to {to} until {}",
                util::format_time(expires_at.0, common)
            )
        }
        EventKind::Accepted { from } => format!("accepted (from {from})"),
        EventKind::Rejected { .. } | EventKind::RejectedSealed { .. } => {
            format!("rejected: {}", text())
        }
        EventKind::Cancelled => "offer cancelled".to_string(),
        EventKind::Granted { to, expires_at } => {
            format!(
                "granted to {to} until {}",
                util::format_time(expires_at.0, common)
            )
        }
        EventKind::Revoked { from } => format!("grant of {from} revoked"),
        EventKind::Accessed { .. } | EventKind::AccessedSealed { .. } => {
            format!("read: {}", text())
        }
        EventKind::Amended {
            version, reason, ..
        }
        | EventKind::AmendedSealed {
            version, reason, ..
        } => {
            let reason = clerk::reason_name(*reason);
            match text() {
                note if note.is_empty() => format!("amended to version {version} ({reason})"),
                note => format!("amended to version {version} ({reason}): {note}"),
            }
        }
        EventKind::FixityChecked { result, .. } => format!("fixity checked: {result:?}"),
        EventKind::Disposed { .. } | EventKind::DisposedSealed { .. } => {
            format!("disposed: {}", text())
        }
    }
}

/// The members who signed a document's events, each looked up once per
/// command (at most [`Signers::KEYS_MAX`]; past that, a signer is shown by
/// key and department only).
#[derive(Default)]
struct Signers {
    known: std::collections::BTreeMap<custody_ledger::types::PublicKey, Option<Member>>,
}

impl Signers {
    const KEYS_MAX: usize = 1024;

    async fn who(
        &mut self,
        api: &NodeApi,
        event: &DocumentEvent,
    ) -> Result<crate::names::Who, DocError> {
        if !self.known.contains_key(&event.member) && self.known.len() < Self::KEYS_MAX {
            let member = api.member_record(&event.member).await?;
            self.known.insert(event.member, member);
        }
        let member = self.known.get(&event.member).and_then(Option::as_ref);
        Ok(crate::names::Who {
            name: member.map(|m| m.name.clone()),
            department: Some(
                member
                    .map(|m| m.department.to_string())
                    .unwrap_or_else(|| event.department.to_string()),
            ),
            key: event.member.to_hex(),
        })
    }
}

/// An event as the node gives it, with `by`: the signer's name,
/// department and key.
fn named_event(
    event: &DocumentEvent,
    by: crate::names::Who,
) -> Result<serde_json::Value, DocError> {
    let mut value = serde_json::to_value(event).map_err(|e| DocError::Output(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        let by = serde_json::to_value(by).map_err(|e| DocError::Output(e.to_string()))?;
        object.insert("by".to_string(), by);
    }
    Ok(value)
}

async fn history(
    api: &NodeApi,
    common: &CommonArgs,
    document: &str,
    limit: Option<u32>,
    cursor: Option<String>,
    all: bool,
) -> Result<(), DocError> {
    let id = document_id(document)?;
    // Texts sealed under the current version's key open with the keys the
    // document now wraps; earlier versions' need their own (`custody audit
    // history` follows every key the chain ever wrapped).
    let opener = if common.json {
        Opener::new(&id, &[])
    } else {
        let doc = api.document(&id).await?;
        Opener::for_document(&doc, util::department_key(common).ok().as_ref())
    };
    let mut signers = Signers::default();
    let mut cursor = cursor;
    loop {
        let page = api.history(&id, cursor.as_deref(), limit).await?;
        if common.json && !all {
            let mut items = Vec::with_capacity(page.items.len());
            for event in &page.items {
                items.push(named_event(event, signers.who(api, event).await?)?);
            }
            return print_json(&json!({ "items": items, "next_cursor": page.next_cursor }));
        }
        for event in &page.items {
            let by = signers.who(api, event).await?;
            if common.json {
                // One event per line, so that --all never holds more than a page.
                let line = serde_json::to_string(&named_event(event, by)?)
                    .map_err(|e| DocError::Output(e.to_string()))?;
                println!("{line}");
            } else {
                println!(
                    "{:>4}  {}  height {:<6} {:<20} {}  by {}",
                    event.sequence,
                    util::format_time(event.time.0, common),
                    event.height.0,
                    event.department,
                    describe(event, &opener, common),
                    by.label()
                );
            }
        }
        match page.next_cursor {
            Some(next) if all => cursor = Some(next),
            Some(next) => {
                if !common.json {
                    println!("more: --cursor {next}");
                }
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}
