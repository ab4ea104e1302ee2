//! `custody audit anomalies` on a real export: a chain of signed,
//! certified blocks in which a clerk reads thirty documents at night.

use std::path::Path;

use clap::{Parser, Subcommand};
use custody_cli::AuditArgs;
use custody_ledger::encoding::{self, public_key_of};
use custody_ledger::export::{write_export_from, ExportReader};
use custody_ledger::proof::TxProof;
use custody_ledger::testkit::{department, seed_key, Chain, Federation, Signer};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{
    Classification, DocumentId, Fixity, Format, Retention, Role, Timestamp, TxId, WrappedKey,
};
use custody_ledger::Block;

#[derive(Parser)]
#[command(name = "custody")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Audit(AuditArgs),
}

fn run(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("custody").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("usage: {e}"));
    let Command::Audit(a) = cli.command;
    let mut out = Vec::new();
    if let Err(e) = custody_cli::run_audit_to(a, &mut out) {
        panic!("`custody {}` failed: {e}", args.join(" "));
    }
    String::from_utf8(out).unwrap()
}

const CHAIN_ID: &str = "custody-anomalies";
const DOCUMENTS: usize = 30;

fn doc(i: usize) -> DocumentId {
    DocumentId::new(format!("ca/2026/{i:04}")).unwrap()
}

fn fixity(bytes: &[u8]) -> Fixity {
    Fixity {
        sha256: encoding::sha256(bytes),
        size_bytes: bytes.len() as u64,
    }
}

/// The chain and the clerk who read at night.
fn night_reader_chain() -> (Chain, Signer) {
    let mut chain = Chain::from_federation(Federation::new(4, CHAIN_ID));
    let key = seed_key("civil-affairs/night-clerk");
    let enrol = chain.admin("civil-affairs").sign(TxBody::EnrollMember {
        member: public_key_of(&key),
        department: department("civil-affairs"),
        name: "night clerk".into(),
        roles: vec![Role::Clerk],
        clearance: Classification::Secret,
    });
    chain.commit(vec![enrol]).unwrap();
    let mut clerk = Signer::new(key, CHAIN_ID);
    let registrations = (0..DOCUMENTS)
        .map(|i| {
            clerk.sign(TxBody::Register {
                document: doc(i),
                title: format!("Household register {i}"),
                record_type: "household-register".into(),
                department: department("civil-affairs"),
                created: Timestamp(custody_ledger::testkit::GENESIS_TIME_MS),
                classification: Classification::Confidential,
                retention: Retention::Permanent,
                format: Format {
                    mime: "application/pdf".into(),
                    pronom: None,
                },
                plaintext: fixity(format!("plain {i}").as_bytes()),
                ciphertext: fixity(format!("cipher {i}").as_bytes()),
                subject_tag: None,
                wrapped_key: WrappedKey(vec![7; 64]),
            })
        })
        .collect();
    chain.commit(registrations).unwrap();
    // The genesis is 2026-01-01 00:00 UTC, 08:00 in UTC+8; the reads come
    // at 02:30 the next night in UTC+8 (18:30 UTC), ten a minute.
    let night = custody_ledger::testkit::GENESIS_TIME_MS + (18 * 60 + 30) * 60_000;
    chain.block_interval_ms += night - chain.next_time().0;
    for batch in 0..3 {
        let reads = (batch * 10..(batch + 1) * 10)
            .map(|i| {
                let previous_event = chain.state.documents[&doc(i)].latest_event;
                clerk.sign(TxBody::RecordAccess {
                    document: doc(i),
                    previous_event,
                    purpose: "looking".into(),
                    ciphertext_sha256: encoding::sha256(format!("cipher {i}").as_bytes()),
                })
            })
            .collect();
        chain.commit(reads).unwrap();
        chain.block_interval_ms = 60_000;
    }
    (chain, clerk)
}

fn write_export(chain: &Chain, path: &Path) {
    let blocks = chain
        .blocks
        .iter()
        .map(|(b, c)| Ok((b.to_bytes(), c.to_bytes())));
    let file = std::fs::File::create(path).unwrap();
    write_export_from(&chain.federation.genesis, blocks, file).unwrap();
}

/// Every transaction id in an export, read back from the file.
fn export_tx_ids(path: &Path) -> Vec<TxId> {
    let mut reader = ExportReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut ids = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        let block = Block::from_bytes(&entry.block).unwrap();
        ids.extend(block.tx_ids());
    }
    ids
}

#[test]
fn a_bulk_read_at_night_is_reported_with_member_department_documents_and_evidence() {
    let (chain, clerk) = night_reader_chain();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("chain.export");
    write_export(&chain, &export);
    let proofs = dir.path().join("proofs");

    let json = run(&[
        "audit",
        "anomalies",
        "--export",
        export.to_str().unwrap(),
        "--proofs",
        proofs.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let alerts = report["alerts"].as_array().unwrap();
    let night: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "off-hours-reads")
        .collect();
    assert_eq!(night.len(), 1, "{json}");
    let alert = night[0];
    assert_eq!(alert["member"], clerk.public().to_hex());
    assert_eq!(alert["department"], "civil-affairs");
    let documents: Vec<&str> = alert["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..DOCUMENTS).map(|i| doc(i).to_string()).collect();
    assert_eq!(documents, expected);
    assert!(alert["explanation"].as_str().unwrap().contains(
        "read 30 documents outside the department's working hours (08:00–18:00) on 2026-01-02"
    ));

    let in_export = export_tx_ids(&export);
    let evidence = alert["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), DOCUMENTS);
    for e in evidence {
        let tx = TxId(custody_ledger::types::parse_hex(e["tx"].as_str().unwrap()).unwrap());
        assert!(
            in_export.contains(&tx),
            "evidence {tx} is not in the export"
        );
        assert_eq!(e["kind"], "record-access");
        // Its proof was written and checks against the genesis alone.
        let bytes = std::fs::read(proofs.join(format!("alert-1-{}.proof", tx.to_hex()))).unwrap();
        let proof = TxProof::from_file_bytes(&bytes).unwrap();
        let summary = proof.check(&chain.federation.genesis).unwrap();
        assert_eq!(summary.tx_id, tx);
    }

    let text = run(&["audit", "anomalies", "--export", export.to_str().unwrap()]);
    assert!(text.contains("off-hours-reads"), "{text}");
    assert!(text.contains(&clerk.public().to_hex()), "{text}");
    // Nothing is reported from a height after the reads.
    let later = (chain.blocks.len() + 1).to_string();
    let text = run(&[
        "audit",
        "anomalies",
        "--export",
        export.to_str().unwrap(),
        "--from-height",
        &later,
    ]);
    assert!(text.contains(": 0 alert(s)"), "{text}");
}

#[test]
fn a_thresholds_file_changes_what_is_reported() {
    let (chain, _) = night_reader_chain();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("chain.export");
    write_export(&chain, &export);
    // Civil affairs works nights in this configuration.
    let thresholds = dir.path().join("thresholds.toml");
    std::fs::write(
        &thresholds,
        "[departments.civil-affairs]\nstart_hour = 0\nend_hour = 24\nutc_offset_minutes = 480\n",
    )
    .unwrap();
    let json = run(&[
        "audit",
        "anomalies",
        "--export",
        export.to_str().unwrap(),
        "--thresholds",
        thresholds.to_str().unwrap(),
        "--json",
    ]);
    assert!(!json.contains("off-hours-reads"), "{json}");
    std::fs::write(&thresholds, "[bulk_reads]\nreads_minimum = 3\n").unwrap();
    let cli = Cli::try_parse_from([
        "custody",
        "audit",
        "anomalies",
        "--export",
        export.to_str().unwrap(),
        "--thresholds",
        thresholds.to_str().unwrap(),
    ])
    .unwrap();
    let Command::Audit(a) = cli.command;
    let error = custody_cli::run_audit_to(a, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("reads_minimum"), "{error}");
}
