//! A document's ciphertext moving between this process and the node:
//! encrypted and uploaded, or downloaded under a signed read request and
//! decrypted (or hashed) as it arrives.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use crate::doc::node_api::{ChannelReader, NodeApi, DOWNLOAD_CHUNKS_QUEUED_MAX};
use crate::doc::util::{self, ProgressReader, TempFile};
use crate::envelope::{self, DataKey, EnvelopeSummary};
use custody_ledger::records::Document;
use custody_ledger::types::{DocumentId, Fixity, Hash32, TxId};
use custody_node::api_documents::{ReadRequest, SignedReadRequest, READ_REQUEST_VERSION};

use super::{Context, DocError};

pub fn ledger_fixity(fixity: envelope::Fixity) -> Fixity {
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
    context: &Context,
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
    let bar = context.progress(metadata.len(), "encrypt");
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

    let bar = context.progress(summary.ciphertext.size_bytes, "upload");
    api.upload(
        &envelope_file.path,
        &summary.ciphertext.sha256,
        summary.ciphertext.size_bytes,
        &context.member_key,
        Some(&share),
        bar,
    )
    .await?;
    drop(envelope_file);
    Ok((summary, data_key))
}

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
pub(super) async fn download_and_decrypt<W: Write + Send + 'static>(
    api: &NodeApi,
    context: &Context,
    doc: &Document,
    access_tx: TxId,
    data_key: DataKey,
    writer: W,
) -> Result<(EnvelopeSummary, W), DocError> {
    let request = read_request(api, &context.member_key, doc, access_tx).await?;
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
    let bar = context.progress(doc.ciphertext.size_bytes, "download");
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
