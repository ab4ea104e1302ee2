//! Export files and transaction proofs: the committed test vector keeps
//! verifying, one changed byte is found and named, round trips hold, and
//! hostile bytes never panic.

use std::path::{Path, PathBuf};

use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::export::{
    self, sample, ExportError, ExportReader, ExportVerifyError, RawEntry,
};
use custody_ledger::proof::{self, ProofError, TxProof};
use custody_ledger::store::Store;
use custody_ledger::tx::TxBody;
use custody_ledger::types::{Height, TxId};
use custody_ledger::verify::{self, Failure, VerifyOptions};
use proptest::prelude::*;

const VECTOR: &str = "tests/vectors/export-v1.bin";

fn vector_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(VECTOR)
}

fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.export");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn entries(bytes: &[u8]) -> Vec<RawEntry> {
    let mut reader = ExportReader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        out.push(e);
    }
    out
}

fn verify_bytes(bytes: &[u8]) -> Result<verify::VerifyReport, ExportVerifyError> {
    let (_dir, path) = write_temp(bytes);
    export::verify_export(&path, None, VerifyOptions::default(), |_| {}).map(|(r, _, _)| r)
}

/// Regenerate the committed vector with
/// `CUSTODY_WRITE_VECTORS=1 cargo test -p custody-ledger --release --test export`.
/// It is never rewritten otherwise: an export written by version 1 must
/// verify with every later version.
#[test]
fn export_vector_is_written_only_when_asked() {
    if std::env::var_os("CUSTODY_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(vector_path().parent().unwrap()).unwrap();
        std::fs::write(vector_path(), sample::export_bytes()).unwrap();
    }
}

#[test]
fn committed_export_vector_verifies() {
    let bytes = std::fs::read(vector_path()).expect("the export vector is committed");
    let report = verify_bytes(&bytes).expect("the version-1 vector verifies");
    assert_eq!(report.height, Height(14));
    assert_eq!(report.transactions, 20);
    assert_eq!(
        report.genesis_hash.to_hex(),
        "5bd2477e26a655a45894251e30a1ea1a4ad301e184d7b76aa21c08e7ad57ef20",
        "genesis hash of the vector; update only together with the vector"
    );
    assert_eq!(
        report.last_block_hash.to_hex(),
        "444885860dfd35e55685f2fb3a1444829c32c64c986eadecd0cd5979d1166326"
    );
    let mut reader = ExportReader::new(bytes.as_slice()).unwrap();
    while reader.next_entry().unwrap().is_some() {}
    assert_eq!(
        reader.trailer().unwrap().export_hash.to_hex(),
        "d205b3cf4630dc1fcfeb28160b26e6a5c5faace0a965b1c72550edf7e3d1769a"
    );
}

#[test]
fn sample_export_verifies_and_replays_to_the_chain_state() {
    let chain = sample::chain();
    let bytes = sample::export_bytes();
    let (_dir, path) = write_temp(&bytes);
    let (report, state, file) = export::verify_export(
        &path,
        Some(chain.federation.genesis.hash()),
        VerifyOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.state_digest, chain.state.digest());
    assert_eq!(file.block_count(), chain.blocks.len() as u64);
    assert_eq!(state.departments.len(), 5);
}

#[test]
fn export_names_the_expected_genesis_when_it_differs() {
    let bytes = sample::export_bytes();
    let (_dir, path) = write_temp(&bytes);
    let wrong = custody_ledger::encoding::sha256(b"another chain");
    let err = export::verify_export(&path, Some(wrong), VerifyOptions::default(), |_| {})
        .err()
        .unwrap();
    assert!(
        matches!(err, ExportVerifyError::GenesisNotExpected { .. }),
        "{err}"
    );
}

/// Offset of `needle` inside block entry `height`'s bytes, in the file.
fn offset_in_block(bytes: &[u8], height: u64, needle: &[u8]) -> usize {
    let entry = entries(bytes)
        .into_iter()
        .find(|e| e.height == Height(height))
        .unwrap();
    let at = entry
        .block
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in block");
    entry.block_offset as usize + at
}

fn chain_error(bytes: &[u8]) -> verify::VerifyError {
    match verify_bytes(bytes) {
        Err(ExportVerifyError::Chain(e)) => e,
        other => panic!("expected a chain verification error, got {other:?}"),
    }
}

#[test]
fn one_changed_byte_in_a_block_header_is_named_by_height() {
    let mut bytes = sample::export_bytes();
    let chain = sample::chain();
    let (block, _) = &chain.blocks[4];
    let time = custody_ledger::encoding::encode(&block.header.time);
    let at = offset_in_block(&bytes, 5, &time);
    bytes[at] ^= 0x01;
    let e = chain_error(&bytes);
    assert_eq!(e.height, Height(5), "{e}");
}

#[test]
fn one_changed_byte_in_a_transaction_is_named_by_height_and_transaction() {
    let mut bytes = sample::export_bytes();
    let chain = sample::chain();
    // Height 9 holds a read whose purpose we alter.
    let (block, _) = &chain.blocks[8];
    let tx = &block.transactions[0];
    assert!(matches!(tx.payload.body, TxBody::RecordAccess { .. }));
    let at = offset_in_block(&bytes, 9, b"benefit claim 17 follow-up");
    bytes[at] ^= 0x20;
    let e = chain_error(&bytes);
    assert_eq!(e.height, Height(9), "{e}");
    assert_eq!(e.transaction.map(|(i, _)| i), Some(0), "{e}");
    assert_eq!(*e.failure, Failure::BadTransactionSignature, "{e}");
}

#[test]
fn one_changed_byte_in_a_certificate_is_named_by_height() {
    let mut bytes = sample::export_bytes();
    let entry = entries(&bytes).into_iter().nth(6).unwrap();
    // Last byte of the certificate: inside the last signature.
    let at = entry.certificate_offset as usize + entry.certificate.len() - 1;
    bytes[at] ^= 0x01;
    let e = chain_error(&bytes);
    assert_eq!(e.height, Height(7), "{e}");
    assert!(
        matches!(*e.failure, Failure::BadCertificateSignature { .. }),
        "{e}"
    );
}

#[test]
fn one_changed_byte_in_the_genesis_breaks_the_first_link() {
    let mut bytes = sample::export_bytes();
    // The first department's display name sits in the genesis bytes.
    let at = bytes
        .windows(b"civil affairs".len())
        .position(|w| w == b"civil affairs")
        .unwrap();
    bytes[at] ^= 0x20;
    let e = chain_error(&bytes);
    assert_eq!(e.height, Height(1), "{e}");
    assert!(
        matches!(
            *e.failure,
            Failure::Refused(custody_ledger::Refusal::Header(
                custody_ledger::state::HeaderRefusal::WrongPreviousHash { .. }
            ))
        ),
        "{e}"
    );
}

#[test]
fn one_changed_byte_in_the_trailer_is_refused() {
    let mut bytes = sample::export_bytes();
    let n = bytes.len();
    bytes[n - 40] ^= 0x01; // inside the last block hash
    let err = verify_bytes(&bytes).err().unwrap();
    assert!(
        matches!(err, ExportVerifyError::File(ExportError::ExportHash { .. })),
        "{err}"
    );
    let mut bytes = sample::export_bytes();
    bytes[n - 1] ^= 0x01; // the export hash itself
    assert!(verify_bytes(&bytes).is_err());
}

#[test]
fn every_single_byte_change_is_refused() {
    let bytes = sample::export_bytes();
    // Every 7th byte keeps the test fast while touching every region.
    for at in (0..bytes.len()).step_by(7) {
        let mut changed = bytes.clone();
        changed[at] ^= 0x04;
        assert!(
            verify_bytes(&changed).is_err(),
            "byte {at} changed and the export still verifies"
        );
    }
}

#[test]
fn truncated_and_extended_exports_are_refused() {
    let bytes = sample::export_bytes();
    for cut in [0, 10, 17, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(verify_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        verify_bytes(&longer).err().unwrap(),
        ExportVerifyError::File(ExportError::TrailingBytes(1))
    ));
}

fn store_from_chain(dir: &Path, chain: &custody_ledger::testkit::Chain) -> Store {
    let store = Store::open_or_init(dir, &chain.federation.genesis).unwrap();
    for (block, certificate) in &chain.blocks {
        let changes = custody_ledger::apply_block(&store, block).unwrap();
        store.commit(block, certificate, &changes).unwrap();
    }
    store
}

#[test]
fn store_export_import_round_trip_gives_the_same_state() {
    let chain = sample::chain();
    let dir = tempfile::tempdir().unwrap();
    let store = store_from_chain(&dir.path().join("node"), &chain);
    let path = dir.path().join("chain.export");
    let trailer = export::write_export_file(&store, &path).unwrap();
    assert_eq!(trailer.blocks, chain.blocks.len() as u64);
    // The store export is byte for byte the in-memory one.
    assert_eq!(std::fs::read(&path).unwrap(), sample::export_bytes());
    let imported = dir.path().join("imported");
    let report = export::import_export(&path, &imported, VerifyOptions::default(), |_| {}).unwrap();
    drop(store);
    let store = Store::open(&imported).unwrap();
    let again = verify::verify_store(&store, None, VerifyOptions::default(), |_| {}).unwrap();
    assert_eq!(again, report);
    assert_eq!(store.state_digest().unwrap(), chain.state.digest());
}

#[test]
fn import_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, path) = write_temp(&sample::export_bytes());
    std::fs::write(dir.path().join("something"), b"x").unwrap();
    let err = export::import_export(&path, dir.path(), VerifyOptions::default(), |_| {})
        .err()
        .unwrap();
    assert!(matches!(err, export::ImportError::NotEmpty(_)), "{err}");
}

fn sample_source() -> (
    tempfile::TempDir,
    export::ExportFile,
    custody_ledger::MemoryState,
) {
    let (dir, path) = write_temp(&sample::export_bytes());
    let (_, state, file) =
        export::verify_export(&path, None, VerifyOptions::default(), |_| {}).unwrap();
    (dir, file, state)
}

/// The last transaction (a fixity check after the fifth department joined).
fn last_tx(chain: &custody_ledger::testkit::Chain) -> TxId {
    chain.blocks.last().unwrap().0.transactions[0].id()
}

#[test]
fn proof_after_a_validator_set_change_checks_against_the_genesis() {
    let chain = sample::chain();
    let (_dir, file, state) = sample_source();
    let built =
        proof::build_tx_proof(&chain.federation.genesis, &state, &file, &last_tx(&chain)).unwrap();
    assert_eq!(built.governance.len(), 1);
    let bytes = built.to_file_bytes();
    let read = TxProof::from_file_bytes(&bytes).unwrap();
    let summary = read.check(&chain.federation.genesis).unwrap();
    assert_eq!(summary.tx_id, last_tx(&chain));
    assert_eq!(summary.validators, 5);
}

#[test]
fn proof_checked_against_another_genesis_fails() {
    let chain = sample::chain();
    let (_dir, file, state) = sample_source();
    let built =
        proof::build_tx_proof(&chain.federation.genesis, &state, &file, &last_tx(&chain)).unwrap();
    let other = custody_ledger::testkit::Federation::new(4, "another-chain").genesis;
    assert!(matches!(
        built.check(&other),
        Err(ProofError::WrongGenesis { .. })
    ));
}

#[test]
fn proof_without_its_governance_link_fails() {
    let chain = sample::chain();
    let (_dir, file, state) = sample_source();
    let mut built =
        proof::build_tx_proof(&chain.federation.genesis, &state, &file, &last_tx(&chain)).unwrap();
    built.governance.clear();
    let err = built.check(&chain.federation.genesis).unwrap_err();
    assert!(
        matches!(err, ProofError::ValidatorSetDiffers { .. }),
        "{err}"
    );
}

#[test]
fn every_changed_byte_of_a_proof_file_fails() {
    let chain = sample::chain();
    let (_dir, file, state) = sample_source();
    let built =
        proof::build_tx_proof(&chain.federation.genesis, &state, &file, &last_tx(&chain)).unwrap();
    let bytes = built.to_file_bytes();
    for at in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        let result =
            TxProof::from_file_bytes(&changed).and_then(|p| p.check(&chain.federation.genesis));
        assert!(
            result.is_err(),
            "byte {at} changed and the proof file still checks"
        );
    }
}

/// A forger can recompute the file checksum, so the proof's own checks must
/// catch every change to its body. The Merkle path's leaf index and tree
/// size are not bound by the header (RFC 6962 paths are not): a change to
/// them may still verify, but must then still prove the same transaction
/// in the same block.
#[test]
fn every_changed_byte_of_a_proof_body_fails_or_proves_the_same_thing() {
    let chain = sample::chain();
    let genesis = &chain.federation.genesis;
    let (_dir, file, state) = sample_source();
    // A transaction in a block of three, so that the path is not empty.
    let (block, _) = &chain.blocks[1];
    assert_eq!(block.transactions.len(), 3);
    for tx in [block.transactions[1].id(), last_tx(&chain)] {
        let built = proof::build_tx_proof(genesis, &state, &file, &tx).unwrap();
        let honest = built.check(genesis).unwrap();
        let body = built.to_bytes();
        for at in 0..body.len() {
            let mut changed = body.clone();
            changed[at] ^= 0x01;
            let Ok(p) = TxProof::from_bytes(&changed) else {
                continue;
            };
            if let Ok(s) = p.check(genesis) {
                assert_eq!(
                    (s.tx_id, s.block_hash, s.height),
                    (honest.tx_id, honest.block_hash, honest.height),
                    "byte {at} changed and the proof proves something else"
                );
                assert!(
                    p.target.inclusion.tree_size != built.target.inclusion.tree_size
                        || p.target.inclusion.index != built.target.inclusion.index
                        || p.governance != built.governance,
                    "byte {at} changed an authenticated field and the proof still checks"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_the_export_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(mut reader) = ExportReader::new(bytes.as_slice()) {
            for _ in 0..100 {
                match reader.next_entry() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let valid = sample::export_bytes();
        let reader = ExportReader::new(valid.as_slice()).unwrap();
        let header_len = reader.offset() as usize;
        let mut bytes = valid[..header_len].to_vec();
        bytes.extend_from_slice(&tail);
        let mut reader = ExportReader::new(bytes.as_slice()).unwrap();
        for _ in 0..100 {
            match reader.next_entry() {
                Ok(Some(e)) => {
                    let _ = Block::from_bytes(&e.block);
                    let _ = CommitCertificate::from_bytes(&e.certificate);
                }
                _ => break,
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_proof_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let genesis = custody_ledger::testkit::Federation::new(4, "custody-test").genesis;
        if let Ok(p) = TxProof::from_bytes(&bytes) {
            let _ = p.check(&genesis);
        }
        let _ = TxProof::from_file_bytes(&bytes);
    }

    #[test]
    fn mutated_proofs_never_panic(at in 0usize..100_000, xor in 1u8..=255) {
        SAMPLE_PROOF.with(|(genesis, bytes)| {
            let mut changed = bytes.clone();
            let at = at % changed.len();
            changed[at] ^= xor;
            if let Ok(p) = TxProof::from_bytes(&changed) {
                let _ = p.check(genesis);
            }
        });
    }
}

thread_local! {
    static SAMPLE_PROOF: (custody_ledger::Genesis, Vec<u8>) = {
        let chain = sample::chain();
        let (_dir, file, state) = sample_source();
        let bytes = proof::build_tx_proof(&chain.federation.genesis, &state, &file, &last_tx(&chain))
            .unwrap()
            .to_bytes();
        (chain.federation.genesis.clone(), bytes)
    };
}

fn sample_genesis() -> custody_ledger::Genesis {
    sample::chain().federation.genesis
}

#[test]
fn an_export_in_memory_verifies_with_the_counts_it_checked() {
    let bytes = sample::export_bytes();
    let chain = sample::chain();
    let report =
        verify::verify_export(&sample_genesis(), &bytes, VerifyOptions::default()).unwrap();
    let (last, _) = chain.blocks.last().unwrap();
    let transactions: u64 = chain
        .blocks
        .iter()
        .map(|(b, _)| b.transactions.len() as u64)
        .sum();
    assert_eq!(report.blocks, chain.blocks.len() as u64);
    assert_eq!(report.certificates, report.blocks);
    assert_eq!(report.height, last.header.height);
    assert_eq!(report.last_block_hash, last.hash());
    assert_eq!(report.last_block_time, last.header.time);
    assert_eq!(report.transactions, transactions);
    assert!(report.signatures > report.transactions, "{report:?}");
    assert_eq!(report.genesis_hash, sample_genesis().hash());
    let file_report = verify_bytes(&bytes).unwrap();
    assert_eq!(report.state_digest, file_report.state_digest);
}

#[test]
fn an_export_in_memory_with_a_tampered_block_fails_at_its_height() {
    let mut bytes = sample::export_bytes();
    let chain = sample::chain();
    let (block, _) = &chain.blocks[4];
    let time = custody_ledger::encoding::encode(&block.header.time);
    let at = offset_in_block(&bytes, 5, &time);
    bytes[at] ^= 0x01;
    let failure =
        verify::verify_export(&sample_genesis(), &bytes, VerifyOptions::default()).unwrap_err();
    assert_eq!(failure.height, Some(Height(5)), "{failure}");
    assert_eq!(failure.check, verify::ExportCheck::Chain, "{failure}");
    assert!(failure.reason.starts_with("height 5"), "{failure}");
}

#[test]
fn an_export_in_memory_from_another_genesis_fails_naming_both() {
    let bytes = sample::export_bytes();
    let mut other = sample_genesis();
    other.chain_id = "another-chain".to_string();
    let failure = verify::verify_export(&other, &bytes, VerifyOptions::default()).unwrap_err();
    assert_eq!(failure.check, verify::ExportCheck::Genesis, "{failure}");
    assert!(
        failure.reason.contains(&other.hash().to_string())
            && failure
                .reason
                .contains(&sample_genesis().hash().to_string()),
        "{failure}"
    );
}

#[test]
fn an_export_in_memory_cut_short_fails_at_the_block_it_cuts() {
    let bytes = sample::export_bytes();
    let entry = entries(&bytes).into_iter().nth(5).unwrap();
    let cut = &bytes[..entry.block_offset as usize + 3];
    let failure =
        verify::verify_export(&sample_genesis(), cut, VerifyOptions::default()).unwrap_err();
    assert_eq!(failure.check, verify::ExportCheck::Framing, "{failure}");
    assert_eq!(failure.height, Some(Height(6)), "{failure}");
    assert!(failure.reason.contains("ends early"), "{failure}");
}

#[test]
fn bytes_that_are_not_an_export_fail_as_not_an_export() {
    for bytes in [
        &b""[..],
        &b"PK\x03\x04 a zip file, not a chain"[..],
        &sample::export_bytes()[..20],
    ] {
        let failure =
            verify::verify_export(&sample_genesis(), bytes, VerifyOptions::default()).unwrap_err();
        assert_eq!(failure.check, verify::ExportCheck::NotAnExport, "{failure}");
        assert_eq!(failure.height, None, "{failure}");
    }
}

#[test]
fn an_export_in_memory_with_a_changed_trailer_fails_on_the_trailer() {
    let mut bytes = sample::export_bytes();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    let failure =
        verify::verify_export(&sample_genesis(), &bytes, VerifyOptions::default()).unwrap_err();
    assert_eq!(failure.check, verify::ExportCheck::Trailer, "{failure}");
}
