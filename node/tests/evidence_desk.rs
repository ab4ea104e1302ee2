//! The evidence desk on a real store and mempool: an equivocation is
//! submitted once, the cache is readable JSON in hex, and a desk started
//! afresh (a restarted node) submits again what the chain does not hold.

use std::sync::Arc;

use custody_consensus::{Equivocation, Message, SignedMessage, Vote};
use custody_ledger::store::Store;
use custody_ledger::testkit::{department, seed_key, Federation};
use custody_ledger::types::{BlockHash, Height, Round};
use custody_node::admission::Admission;
use custody_node::evidence_desk::{CachedEvidence, EvidenceDesk, EVIDENCE_CACHE_FILE};
use custody_node::handles::{LocalClock, MempoolHandle};
use custody_node::mempool::Mempool;
use custody_node::metrics::Metrics;
use custody_node::store_reader::StoreReader;

const CHAIN: &str = "custody-test";

struct Node {
    desk: EvidenceDesk,
    mempool: MempoolHandle,
}

/// A node of civil affairs over the store in `dir`, with an empty mempool.
fn node(dir: &std::path::Path, store: &Store) -> Node {
    let reader = StoreReader::new(store.clone());
    let mempool = MempoolHandle::new(Mempool::new(reader.clone(), 1_000, 1 << 20));
    let admission = Admission::new(
        reader.clone(),
        mempool.clone(),
        Arc::new(Metrics::default()),
        LocalClock::new(0),
    );
    let desk = EvidenceDesk::new(
        dir,
        department("civil-affairs"),
        CHAIN,
        seed_key("civil-affairs/node").to_bytes(),
        reader,
        admission,
    );
    Node { desk, mempool }
}

/// Health's validator prevoting two blocks at height 1, round 0.
fn equivocation() -> Equivocation {
    let key = seed_key("health/validator");
    let prevote = |block: u8| {
        SignedMessage::sign(
            CHAIN,
            Message::Prevote(Vote {
                height: Height(1),
                round: Round(0),
                block_hash: Some(BlockHash([block; 32])),
            }),
            &key,
        )
    };
    Equivocation {
        first: prevote(1),
        second: prevote(2),
    }
}

#[test]
fn an_equivocation_is_submitted_once_and_again_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let federation = Federation::new(4, CHAIN);
    let store =
        Store::open_or_init(&dir.path().join("ledger"), &federation.genesis).expect("store");

    let first = node(dir.path(), &store);
    first.desk.take(&equivocation());
    assert_eq!(first.mempool.lock().len(), 1, "submitted");
    // Seen again (another round, or relayed): not submitted twice.
    first.desk.take(&equivocation());
    assert_eq!(first.mempool.lock().len(), 1, "submitted once");

    // The cache is JSON lines, keys and hashes in hex.
    let text = std::fs::read_to_string(dir.path().join(EVIDENCE_CACHE_FILE)).expect("cache");
    let line = text.lines().next().expect("a line");
    let cached: CachedEvidence = serde_json::from_str(line).expect("a cache line parses");
    assert_eq!(cached.kind, "prevote");
    assert_eq!(cached.height, Height(1));
    assert!(cached.submitted_tx.is_some());
    let validator = custody_ledger::encoding::public_key_of(&seed_key("health/validator"));
    assert!(line.contains(&validator.to_hex()), "{line}");
    assert!(line.contains(&hex::encode([1u8; 32])), "{line}");

    // A restart: the mempool is gone, the chain does not hold the record,
    // so the cache submits it again.
    drop(first);
    let restarted = node(dir.path(), &store);
    assert_eq!(restarted.desk.resubmit_cached(), 1);
    assert_eq!(restarted.mempool.lock().len(), 1);
}

#[test]
fn cache_lines_in_an_older_layout_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let federation = Federation::new(4, CHAIN);
    let store =
        Store::open_or_init(&dir.path().join("ledger"), &federation.genesis).expect("store");
    std::fs::write(
        dir.path().join(EVIDENCE_CACHE_FILE),
        "{\"first\":{\"validator\":[1,2,3]}}\nnot json\n",
    )
    .expect("old cache");
    let restarted = node(dir.path(), &store);
    assert!(restarted.desk.read_cache().is_empty());
    assert_eq!(restarted.desk.resubmit_cached(), 0);
}
