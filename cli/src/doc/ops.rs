//! The document commands themselves.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use crate::envelope::{self, DataKey, DepartmentPublicKey, DepartmentSecretKey, EnvelopeSummary};
use custody_ledger::records::{Document, DocumentEvent, DocumentStatus, EventKind, Member};
use custody_ledger::sealed::fields;
use custody_ledger::subject::ReceiptCode;
use custody_ledger::tx::{FixityResult, TxBody};
use custody_ledger::types::{
    DepartmentId, DocumentId, Fixity, Format, Hash32, Timestamp, TxId, WrappedKey,
};
use custody_node::api_documents::{ReadRequest, SignedReadRequest, READ_REQUEST_VERSION};
use custody_node::api_types::SubmitResponse;
use serde_json::json;

use super::node_api::{ChannelReader, NodeApi, DOWNLOAD_CHUNKS_QUEUED_MAX};
use super::sealed;
use super::util::{self, progress, ProgressReader, TempFile};
use super::{lifecycle, AmendArgs, CommonArgs, DocArgs, DocCommand, DocError, RegisterArgs};
use crate::sealed_text::Opener;
use crate::when::DayBound;

/// Runs `custody doc …`.
pub async fn run(args: DocArgs) -> Result<(), DocError> {
    let common = args.common;
    let mut api = NodeApi::new(&common.node)?.with_transient_retries(common.transient_retries);
    if common.key.is_some() {
        api = api.signed_by(util::member_key(&common)?);
    }
    match args.command {
        DocCommand::Register(register_args) => register(&api, &common, register_args).await,
        DocCommand::Offer {
            document,
            to,
            until,
        } => offer(&api, &common, &document, &to, until.as_deref()).await,
        DocCommand::Accept { document } => accept(&api, &common, &document).await,
        DocCommand::Reject { document, reason } => {
            let doc = api.document(&document_id(&document)?).await?;
            // The reason is sealed under the key the offer wraps to the
            // receiving department, which only it and the sender hold.
            let DocumentStatus::InTransfer(offer) = &doc.status else {
                return Err(DocError::Document {
                    document: doc.id.to_string(),
                    message: format!("it has no pending offer (status `{}`)", doc.status.name()),
                });
            };
            let secret = checked_department_key(&api, &common, &offer.to).await?;
            let data_key = unwrap_key(&doc.id, &offer.wrapped_key, &secret)?;
            let body = TxBody::RejectTransferSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                reason: sealed::seal(&data_key, &doc.id, fields::REASON, &reason)?,
            };
            submit(
                &api,
                &common,
                &doc.id,
                body,
                "rejected the offer of document {document}",
            )
            .await
        }
        DocCommand::Cancel { document } => {
            let doc = api.document(&document_id(&document)?).await?;
            let body = TxBody::CancelTransfer {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
            };
            submit(
                &api,
                &common,
                &doc.id,
                body,
                "cancelled the offer of document {document}",
            )
            .await
        }
        DocCommand::Grant {
            document,
            to,
            until,
        } => grant(&api, &common, &document, &to, &until).await,
        DocCommand::Revoke { document, from } => {
            let doc = api.document(&document_id(&document)?).await?;
            let body = TxBody::RevokeAccess {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                from: department_id(&from)?,
            };
            submit(
                &api,
                &common,
                &doc.id,
                body,
                "revoked a grant on document {document}",
            )
            .await
        }
        DocCommand::Open {
            document,
            output,
            purpose,
        } => open(&api, &common, &document, &output, &purpose).await,
        DocCommand::Amend(amend_args) => amend(&api, &common, amend_args).await,
        DocCommand::Fixity { document, note } => {
            let outcome =
                lifecycle::fixity(&api, &common, &document_id(&document)?, note.as_deref()).await?;
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
            let outcome =
                lifecycle::dispose(&api, &common, &document_id(&document)?, &authority, &reason)
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

pub(super) fn print_json(value: &impl serde::Serialize) -> Result<(), DocError> {
    let captured = super::CAPTURED_OUTPUT
        .try_with(|slot| serde_json::to_value(value).map(|value| *slot.borrow_mut() = Some(value)));
    if let Ok(stored) = captured {
        return stored.map_err(|e| DocError::Output(e.to_string()));
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| DocError::Output(e.to_string()))?;
    println!("{text}");
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

pub(super) fn wait(common: &CommonArgs) -> Duration {
    Duration::from_secs(common.wait_seconds)
}

fn committed_json(document: &DocumentId, answer: &SubmitResponse) -> serde_json::Value {
    json!({
        "document": document,
        "tx_id": answer.tx_id,
        "height": answer.inclusion.as_ref().map(|i| i.height),
    })
}

/// Signs, submits and waits for a transaction on `document`.
async fn submit(
    api: &NodeApi,
    common: &CommonArgs,
    document: &DocumentId,
    body: TxBody,
    done: &str,
) -> Result<(), DocError> {
    let key = util::member_key(common)?;
    let answer = api.submit_and_wait(&key, body, wait(common)).await?;
    if common.json {
        return print_json(&committed_json(document, &answer));
    }
    println!(
        "{} (transaction {} committed at height {})",
        done.replace("{document}", document.as_str()),
        answer.tx_id,
        answer.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0)
    );
    Ok(())
}

/// The signer's member record and the department's encryption key, checked
/// against the chain so that a wrong key file is refused with a reason.
pub(super) async fn me(api: &NodeApi, key: &ed25519_dalek::SigningKey) -> Result<Member, DocError> {
    let public = custody_ledger::encoding::public_key_of(key);
    let (member, _) = api.member(&public).await?;
    Ok(member)
}

async fn checked_department_key(
    api: &NodeApi,
    common: &CommonArgs,
    department: &DepartmentId,
) -> Result<DepartmentSecretKey, DocError> {
    let secret = util::department_key(common)?;
    let on_chain = api.department(department).await?.keys.encryption_key;
    let public = secret.public_key();
    if public.0 != on_chain.0 {
        return Err(DocError::KeyFile {
            path: common.department_key.clone().unwrap_or_default(),
            message: format!(
                "this is not department `{department}`'s encryption key: its public key is {}, the chain records {}",
                hex::encode(public.0),
                on_chain
            ),
        });
    }
    Ok(secret)
}

fn unwrap_key(
    document: &DocumentId,
    wrapped: &WrappedKey,
    secret: &DepartmentSecretKey,
) -> Result<DataKey, DocError> {
    let failed = |message: String| DocError::Document {
        document: document.to_string(),
        message,
    };
    let wrapped = envelope::WrappedKey::from_bytes(&wrapped.0).map_err(|error| {
        failed(format!(
            "the wrapped data key on chain is malformed: {error}"
        ))
    })?;
    envelope::unwrap(&wrapped, secret).map_err(|error| {
        failed(format!(
            "the department key cannot unwrap the data key (wrong key, or the wrapped key was altered): {error}"
        ))
    })
}

async fn wrap_to(
    api: &NodeApi,
    document: &DocumentId,
    data_key: &DataKey,
    department: &DepartmentId,
) -> Result<WrappedKey, DocError> {
    let recipient = api.department(department).await?.keys.encryption_key;
    let wrapped = envelope::wrap(data_key, &DepartmentPublicKey(recipient.0)).map_err(|error| {
        DocError::Document {
            document: document.to_string(),
            message: format!("cannot wrap the data key to `{department}`: {error}"),
        }
    })?;
    Ok(WrappedKey(wrapped.to_bytes().to_vec()))
}

pub(super) fn ledger_fixity(fixity: envelope::Fixity) -> Fixity {
    Fixity {
        sha256: Hash32(fixity.sha256),
        size_bytes: fixity.size_bytes,
    }
}

/// Encrypts `file` under a new data key into a private temporary envelope
/// in `work_dir`, uploads the envelope to the node, and returns its
/// fixities and the data key (which never leaves this process in clear).
pub(super) async fn encrypt_and_upload(
    api: &NodeApi,
    common: &CommonArgs,
    key: &ed25519_dalek::SigningKey,
    plaintext_file: &Path,
    work_dir: &Path,
    document: &DocumentId,
) -> Result<(EnvelopeSummary, DataKey), DocError> {
    let metadata = std::fs::metadata(plaintext_file).map_err(|source| DocError::Io {
        action: "read",
        path: plaintext_file.to_owned(),
        source,
    })?;
    let (envelope_file, file) = TempFile::create(work_dir, "custody-envelope")?;
    let data_key = DataKey::generate().map_err(|error| DocError::Document {
        document: document.to_string(),
        message: error.to_string(),
    })?;
    // The share is the half of the content key that the nodes keep and
    // delete on disposal (docs/envelope.md, "Crypto-shredding"); it is not
    // written to any file here.
    let share = envelope::ShredShare::generate().map_err(|error| DocError::Document {
        document: document.to_string(),
        message: error.to_string(),
    })?;
    let bar = progress(metadata.len(), "encrypt", common.json);
    let plaintext_path = plaintext_file.to_owned();
    let document_name = document.to_string();
    let (summary, data_key, share) = tokio::task::spawn_blocking(move || {
        let input = std::fs::File::open(&plaintext_path).map_err(|source| DocError::Io {
            action: "open",
            path: plaintext_path.clone(),
            source,
        })?;
        let reader = ProgressReader {
            inner: BufReader::with_capacity(256 * 1024, input),
            bar: bar.clone(),
        };
        let mut writer = BufWriter::with_capacity(256 * 1024, &file);
        let summary = envelope::encrypt_shredded(
            reader,
            &mut writer,
            &data_key,
            &share,
            &document_name,
            envelope::EncryptOptions::default(),
        );
        bar.finish_and_clear();
        let summary = summary.map_err(|source| DocError::Envelope {
            document: plaintext_path.display().to_string(),
            source: Box::new(source),
        })?;
        writer.flush().map_err(|source| DocError::Io {
            action: "write",
            path: plaintext_path.clone(),
            source,
        })?;
        Ok::<_, DocError>((summary, data_key, share))
    })
    .await
    .map_err(|error| DocError::Output(error.to_string()))??;

    let bar = progress(summary.ciphertext.size_bytes, "upload", common.json);
    api.upload(
        &envelope_file.path,
        &summary.ciphertext.sha256,
        summary.ciphertext.size_bytes,
        key,
        Some(&share),
        bar,
    )
    .await?;
    drop(envelope_file);
    Ok((summary, data_key))
}

async fn register(api: &NodeApi, common: &CommonArgs, args: RegisterArgs) -> Result<(), DocError> {
    let created = created_time(common, args.created.as_deref(), util::now_ms())?;
    // Derived first: a missing or wrong subject key stops the command
    // before anything is encrypted or uploaded.
    let receipt = match &args.subject {
        Some(identity) => Some(util::receipt_code(
            common,
            identity,
            args.subject_key.as_deref(),
        )?),
        None => None,
    };
    let key = util::member_key(common)?;
    let member = me(api, &key).await?;
    let classification = util::parse_classification(&args.classification)?;
    let retention = util::parse_retention(&args.retention)?;
    let id = document_id(
        &args
            .id
            .clone()
            .unwrap_or_else(|| util::new_document_id(member.department.as_str())),
    )?;
    // A missing file is refused before anything is asked of the node.
    std::fs::metadata(&args.file).map_err(|source| DocError::Io {
        action: "read",
        path: args.file.clone(),
        source,
    })?;
    let own_key = api
        .department(&member.department)
        .await?
        .keys
        .encryption_key;

    let work_dir = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let (summary, data_key) =
        encrypt_and_upload(api, common, &key, &args.file, &work_dir, &id).await?;

    let wrapped = envelope::wrap(&data_key, &DepartmentPublicKey(own_key.0)).map_err(|error| {
        DocError::Document {
            document: id.to_string(),
            message: format!("cannot wrap the data key: {error}"),
        }
    })?;
    let body = TxBody::RegisterSealed {
        document: id.clone(),
        title: sealed::seal_required(&data_key, &id, fields::TITLE, &args.title)?,
        record_type: args.record_type,
        department: member.department.clone(),
        created,
        classification,
        retention,
        format: Format {
            mime: args.mime,
            pronom: args.pronom,
        },
        plaintext: ledger_fixity(summary.plaintext),
        ciphertext: ledger_fixity(summary.ciphertext),
        subject_tag: receipt.as_ref().map(ReceiptCode::subject_tag),
        wrapped_key: WrappedKey(wrapped.to_bytes().to_vec()),
    };
    let answer = api.submit_and_wait(&key, body, wait(common)).await?;
    if common.json {
        let mut value = committed_json(&id, &answer);
        value["plaintext_sha256"] = json!(hex::encode(summary.plaintext.sha256));
        value["plaintext_bytes"] = json!(summary.plaintext.size_bytes);
        value["ciphertext_sha256"] = json!(hex::encode(summary.ciphertext.sha256));
        value["ciphertext_bytes"] = json!(summary.ciphertext.size_bytes);
        if let Some(receipt) = &receipt {
            value["receipt_code"] = json!(receipt.to_string());
        }
        return print_json(&value);
    }
    println!("{id}");
    if let Some(receipt) = &receipt {
        eprintln!(
            "receipt code for the citizen (give it to them; it is not kept anywhere): {receipt}"
        );
    }
    eprintln!(
        "registered {} ({} bytes, SHA-256 {}) at height {}",
        args.file.display(),
        summary.plaintext.size_bytes,
        hex::encode(summary.plaintext.sha256),
        answer.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0)
    );
    Ok(())
}

async fn amend(api: &NodeApi, common: &CommonArgs, args: AmendArgs) -> Result<(), DocError> {
    let format = args.mime.map(|mime| Format {
        mime,
        pronom: args.pronom,
    });
    let request = lifecycle::AmendRequest {
        document: document_id(&args.document)?,
        file: args.file.clone(),
        reason: args.reason.into(),
        note: args.note,
        title: args.title,
        format,
        work_dir: args.work_dir,
    };
    let outcome = lifecycle::amend(api, common, request).await?;
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

/// The data key of a document the signer's department holds as custodian.
pub(super) async fn custodian_data_key(
    api: &NodeApi,
    common: &CommonArgs,
    doc: &Document,
    member: &Member,
) -> Result<DataKey, DocError> {
    if doc.custodian != member.department {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "your department `{}` is not its custodian (`{}` is)",
                member.department, doc.custodian
            ),
        });
    }
    let secret = checked_department_key(api, common, &member.department).await?;
    unwrap_key(&doc.id, &doc.custodian_key, &secret)
}

async fn offer(
    api: &NodeApi,
    common: &CommonArgs,
    document: &str,
    to: &str,
    until: Option<&str>,
) -> Result<(), DocError> {
    let key = util::member_key(common)?;
    let member = me(api, &key).await?;
    let doc = api.document(&document_id(document)?).await?;
    let to = department_id(to)?;
    let data_key = custodian_data_key(api, common, &doc, &member).await?;
    let wrapped_key = wrap_to(api, &doc.id, &data_key, &to).await?;
    let expires_at = match until {
        Some(text) => Some(Timestamp(util::parse_time(
            text,
            util::now_ms(),
            common,
            DayBound::End,
        )?)),
        None => None,
    };
    let body = TxBody::OfferTransfer {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        to: to.clone(),
        wrapped_key,
        expires_at,
    };
    submit(
        api,
        common,
        &doc.id,
        body,
        &format!("offered document {{document}} to `{to}`"),
    )
    .await
}

async fn grant(
    api: &NodeApi,
    common: &CommonArgs,
    document: &str,
    to: &str,
    until: &str,
) -> Result<(), DocError> {
    let key = util::member_key(common)?;
    let member = me(api, &key).await?;
    let doc = api.document(&document_id(document)?).await?;
    let to = department_id(to)?;
    let expires_at = Timestamp(util::parse_time(
        until,
        util::now_ms(),
        common,
        DayBound::End,
    )?);
    let data_key = custodian_data_key(api, common, &doc, &member).await?;
    let wrapped_key = wrap_to(api, &doc.id, &data_key, &to).await?;
    let body = TxBody::GrantAccess {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        to: to.clone(),
        wrapped_key,
        expires_at,
    };
    submit(
        api,
        common,
        &doc.id,
        body,
        &format!(
            "granted `{to}` read access to document {{document}} until {}",
            util::format_time(expires_at.0, common)
        ),
    )
    .await
}

/// The purpose an offer's recipient records before downloading the
/// document to check it (`custody doc accept`).
pub const INSPECTION_PURPOSE: &str = "inspection before accepting custody";

/// The signed request to read `doc`'s current ciphertext under the
/// committed access record `access_tx` (the read rule wants one first).
pub(super) async fn read_request(
    api: &NodeApi,
    key: &ed25519_dalek::SigningKey,
    doc: &Document,
    access_tx: TxId,
) -> Result<SignedReadRequest, DocError> {
    let chain_id = api.chain_id().await?.to_string();
    Ok(SignedReadRequest::sign(
        ReadRequest {
            format_version: READ_REQUEST_VERSION,
            chain_id,
            member: custody_ledger::encoding::public_key_of(key),
            document: doc.id.clone(),
            ciphertext_sha256: doc.ciphertext.sha256,
            access_tx: Some(access_tx),
            time_ms: util::now_ms(),
            nonce: util::random_u64(),
        },
        key,
    ))
}

/// Downloads the document's ciphertext with a signed read request and
/// decrypts it into `writer` as it arrives; checks both fixities.
async fn download_and_decrypt<W: Write + Send + 'static>(
    api: &NodeApi,
    common: &CommonArgs,
    key: &ed25519_dalek::SigningKey,
    doc: &Document,
    access_tx: TxId,
    data_key: DataKey,
    writer: W,
) -> Result<(EnvelopeSummary, W), DocError> {
    let request = read_request(api, key, doc, access_tx).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(DOWNLOAD_CHUNKS_QUEUED_MAX);
    let document_name = doc.id.to_string();
    let document_name_for_key = doc.id.to_string();
    let (share_sender, share_receiver) = tokio::sync::oneshot::channel();
    let decrypting = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        // The node sends the share (if any) before the first chunk; a
        // download that failed before it drops the sender, and the
        // download's own error is reported.
        let share = share_receiver.blocking_recv().ok().flatten();
        let result = envelope::decrypt_shredded(
            ChannelReader::new(receiver),
            &mut writer,
            &data_key,
            share.as_ref(),
            &document_name_for_key,
        );
        let result = result.and_then(|summary| {
            writer
                .flush()
                .map_err(envelope::EnvelopeError::Write)
                .map(|()| summary)
        });
        (result, writer)
    });
    let bar = progress(doc.ciphertext.size_bytes, "download", common.json);
    let downloaded = api
        .download(&request, sender, Some(share_sender), bar)
        .await;
    let (decrypted, writer) = decrypting
        .await
        .map_err(|error| DocError::Output(error.to_string()))?;
    downloaded?;
    let summary = decrypted.map_err(|source| DocError::Envelope {
        document: document_name.clone(),
        source: Box::new(source),
    })?;
    let mismatch = |what: &str, expected: &Fixity, found: &envelope::Fixity| {
        DocError::Document {
        document: document_name.clone(),
        message: format!(
            "{what} does not match the fixity on chain: expected SHA-256 {} and {} bytes, found {} and {} bytes",
            expected.sha256,
            expected.size_bytes,
            hex::encode(found.sha256),
            found.size_bytes
        ),
    }
    };
    if ledger_fixity(summary.ciphertext) != doc.ciphertext {
        return Err(mismatch(
            "the ciphertext served",
            &doc.ciphertext,
            &summary.ciphertext,
        ));
    }
    if ledger_fixity(summary.plaintext) != doc.plaintext {
        return Err(mismatch(
            "the decrypted document",
            &doc.plaintext,
            &summary.plaintext,
        ));
    }
    Ok((summary, writer))
}

async fn accept(api: &NodeApi, common: &CommonArgs, document: &str) -> Result<(), DocError> {
    let key = util::member_key(common)?;
    let member = me(api, &key).await?;
    let doc = api.document(&document_id(document)?).await?;
    let DocumentStatus::InTransfer(offer) = &doc.status else {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!("it has no pending offer (status `{}`)", doc.status.name()),
        });
    };
    if offer.to != member.department {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "it is offered to `{}`, not to your department `{}`",
                offer.to, member.department
            ),
        });
    }
    let secret = checked_department_key(api, common, &member.department).await?;
    let data_key = unwrap_key(&doc.id, &offer.wrapped_key, &secret)?;
    // The node fetches the blob from the sender's node (or another holder)
    // and checks its SHA-256; then this process checks it again, decrypts
    // it and checks the plaintext fixity before anything is signed.
    let fetched = api.fetch(&doc.id).await?;
    let inspection_purpose =
        sealed::seal_required(&data_key, &doc.id, fields::PURPOSE, INSPECTION_PURPOSE)?;
    // No ciphertext leaves a node without a committed access record: the
    // inspection is recorded first, as a record-access of the offer's
    // recipient while the offer is live.
    let (doc, inspected) = api
        .submit_on(&key, doc.clone(), wait(common), |doc| {
            TxBody::RecordAccessSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                purpose: inspection_purpose.clone(),
                ciphertext_sha256: doc.ciphertext.sha256,
            }
        })
        .await?;
    let checked = download_and_decrypt(
        api,
        common,
        &key,
        &doc,
        inspected.tx_id,
        data_key,
        std::io::sink(),
    )
    .await;
    let (summary, _) = checked.map_err(|error| DocError::Document {
        document: doc.id.to_string(),
        message: format!(
            "not accepted: {error}; reject it with `custody doc reject {} --reason ...`",
            doc.id
        ),
    })?;
    // The inspection record (and the node's attestation of the download)
    // moved the document's latest event: build on the document as it is.
    let (doc, answer) = api
        .submit_on_document(&key, &doc.id, wait(common), |doc| TxBody::AcceptTransfer {
            document: doc.id.clone(),
            previous_event: doc.latest_event,
            ciphertext_sha256: Hash32(summary.ciphertext.sha256),
        })
        .await?;
    if common.json {
        let mut value = committed_json(&doc.id, &answer);
        value["fetched_from"] = json!(fetched.fetched_from);
        value["plaintext_sha256"] = json!(hex::encode(summary.plaintext.sha256));
        return print_json(&value);
    }
    println!(
        "accepted document {} (fixity checked: SHA-256 {}); transaction {} committed at height {}",
        doc.id,
        hex::encode(summary.plaintext.sha256),
        answer.tx_id,
        answer.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0)
    );
    Ok(())
}

async fn open(
    api: &NodeApi,
    common: &CommonArgs,
    document: &str,
    output: &Path,
    purpose: &str,
) -> Result<(), DocError> {
    let key = util::member_key(common)?;
    let member = me(api, &key).await?;
    let doc = api.document(&document_id(document)?).await?;
    let wrapped = if doc.custodian == member.department {
        doc.custodian_key.clone()
    } else if let Some(grant) = doc
        .grants
        .iter()
        .find(|g| g.department == member.department)
    {
        grant.wrapped_key.clone()
    } else {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "your department `{}` is not its custodian (`{}` is) and holds no grant; ask the custodian for `custody doc grant`",
                member.department, doc.custodian
            ),
        });
    };
    // Unwrap before recording the read, so that a wrong key file costs
    // nothing on chain.
    let secret = checked_department_key(api, common, &member.department).await?;
    let data_key = unwrap_key(&doc.id, &wrapped, &secret)?;
    let purpose = sealed::seal_required(&data_key, &doc.id, fields::PURPOSE, purpose)?;
    let (doc, recorded) = api
        .submit_on(&key, doc, wait(common), |doc| TxBody::RecordAccessSealed {
            document: doc.id.clone(),
            previous_event: doc.latest_event,
            purpose: purpose.clone(),
            ciphertext_sha256: doc.ciphertext.sha256,
        })
        .await?;
    api.fetch(&doc.id).await?;
    let directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let (temporary, file) = TempFile::create(&directory, "custody-open")?;
    let writer = BufWriter::with_capacity(256 * 1024, file);
    let (summary, writer) =
        download_and_decrypt(api, common, &key, &doc, recorded.tx_id, data_key, writer).await?;
    let file = writer.into_inner().map_err(|error| DocError::Io {
        action: "write",
        path: output.to_owned(),
        source: error.into_error(),
    })?;
    temporary.persist(file, output)?;
    if common.json {
        let mut value = committed_json(&doc.id, &recorded);
        value["output"] = json!(output);
        value["plaintext_sha256"] = json!(hex::encode(summary.plaintext.sha256));
        value["plaintext_bytes"] = json!(summary.plaintext.size_bytes);
        return print_json(&value);
    }
    println!(
        "opened document {} into {} ({} bytes, fixity checked); read recorded by transaction {} at height {}",
        doc.id,
        output.display(),
        summary.plaintext.size_bytes,
        recorded.tx_id,
        recorded.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0)
    );
    Ok(())
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
            let reason = super::lifecycle::reason_name(*reason);
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
