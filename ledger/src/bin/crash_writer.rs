//! Crash-test helper: commits blocks to the store at the given path in an
//! endless loop and prints each height on its own line once `commit` has
//! returned (so the block is durable). A test kills it with SIGKILL at
//! random moments and checks that every printed height survived.
//!
//! Usage: custody-ledger-crash-writer STORE_DIR [MAX_BLOCKS]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use custody_ledger::encoding;
use custody_ledger::state::{self, StateView};
use custody_ledger::store::Store;
use custody_ledger::testkit::{certify_with, department, seed_key, Federation};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::*;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: custody-ledger-crash-writer STORE_DIR [MAX_BLOCKS]");
        return ExitCode::from(2);
    };
    let max_blocks: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    match run(&path, max_blocks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, max_blocks: u64) -> Result<(), Box<dyn std::error::Error>> {
    let federation = Federation::new(4, "custody-crash");
    let genesis = &federation.genesis;
    let store = Store::open_or_init(path, genesis)?;
    let admin_key = seed_key("civil-affairs/admin");
    let admin = encoding::public_key_of(&admin_key);
    let stdout = std::io::stdout();
    for _ in 0..max_blocks {
        let chain = store.chain()?;
        let height = chain.height.next();
        // Each block enrols a new clerk, and the clerk enrolled by the
        // previous block registers a document.
        let mut txs = Vec::new();
        let new_clerk = seed_key(&format!("crash/clerk/{}", height.0));
        txs.push(SignedTransaction::sign(
            TxBody::EnrollMember {
                member: encoding::public_key_of(&new_clerk),
                department: department("civil-affairs"),
                name: format!("clerk {}", height.0),
                roles: vec![Role::Clerk],
                clearance: Classification::Secret,
            },
            &admin_key,
            Nonce(store.nonce(&admin)?.0 + 1),
            &genesis.chain_id,
        ));
        if height.0 > 1 {
            let clerk = seed_key(&format!("crash/clerk/{}", height.0 - 1));
            let id = DocumentId::new(format!("crash/{:08}", height.0))?;
            txs.push(SignedTransaction::sign(
                TxBody::Register {
                    document: id.clone(),
                    title: "x".repeat(200),
                    record_type: "crash-test".into(),
                    department: department("civil-affairs"),
                    created: chain.last_time,
                    classification: Classification::Internal,
                    retention: Retention::Years(1),
                    format: Format {
                        mime: "text/plain".into(),
                        pronom: None,
                    },
                    plaintext: Fixity {
                        sha256: encoding::sha256(id.as_str().as_bytes()),
                        size_bytes: 1,
                    },
                    ciphertext: Fixity {
                        sha256: encoding::sha256(id.as_str().as_bytes()),
                        size_bytes: 1,
                    },
                    subject_tag: None,
                    wrapped_key: WrappedKey(vec![1; 64]),
                },
                &clerk,
                Nonce(1),
                &genesis.chain_id,
            ));
        }
        let last_commit = if height.0 > 1 {
            store.certificate(chain.height)?
        } else {
            None
        };
        let proposer = encoding::public_key_of(&federation.validators[0]);
        let time = Timestamp(chain.last_time.0 + 1000);
        let block = state::build_block(&store, txs, time, proposer, last_commit)?;
        let changes = state::apply_block(&store, &block)?;
        let certificate = certify_with(&federation.validators, &genesis.chain_id, &block, Round(0));
        store.commit(&block, &certificate, &changes)?;
        let mut out = stdout.lock();
        writeln!(out, "{}", height.0)?;
        out.flush()?;
    }
    Ok(())
}
