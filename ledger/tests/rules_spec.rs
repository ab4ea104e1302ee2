//! The written rules (`docs/rules.md`, `docs/format.md` §9) and the code
//! say the same thing: every refusal the code can give is specified, the
//! spec names no refusal the code lacks, and the state digest can be
//! computed from the spec's description alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use custody_ledger::encoding;
use custody_ledger::export::{self, sample};
use custody_ledger::state::MemoryState;
use custody_ledger::verify::VerifyOptions;
use sha2::{Digest, Sha256};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_file(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The codes the code gives: every string literal a `code()` match arm of
/// `refusal.rs` returns. The match is exhaustive, so every variant has one.
fn codes_in_code() -> BTreeSet<String> {
    let source = read("ledger/src/state/refusal.rs");
    let mut codes = BTreeSet::new();
    for line in source.lines() {
        let Some((_, after)) = line.split_once("=> \"") else {
            continue;
        };
        if let Some((code, _)) = after.split_once('"') {
            codes.insert(code.to_string());
        }
    }
    codes
}

/// The backquoted words of `text` outside parentheses.
fn backquoted(text: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut outside = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, word)| word.to_string())
        .collect()
}

/// The codes the spec gives: the backquoted words of the last column of
/// every table whose last column is headed "refusal".
fn codes_in_spec() -> BTreeSet<String> {
    let spec = read("docs/rules.md");
    let mut codes = BTreeSet::new();
    let mut refusal_table = false;
    let mut previous_was_row = false;
    for line in spec.lines() {
        let row = line.trim_start().starts_with('|');
        if !row {
            previous_was_row = false;
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let last = cells.last().map(|c| c.trim()).unwrap_or("");
        if !previous_was_row {
            // A table's first row is its header.
            refusal_table = last == "refusal";
        } else if refusal_table && !last.starts_with("---") {
            codes.extend(backquoted(last));
        }
        previous_was_row = true;
    }
    codes
}

#[test]
fn every_refusal_code_of_the_rules_is_written_in_the_spec() {
    let code = codes_in_code();
    let spec = read("docs/rules.md");
    assert!(
        code.len() > 50,
        "found only {} codes in refusal.rs",
        code.len()
    );
    let missing: Vec<&String> = code
        .iter()
        .filter(|c| !spec.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "refusals in ledger/src/state/refusal.rs that docs/rules.md does not specify: {missing:?}"
    );
}

#[test]
fn the_spec_names_no_refusal_the_rules_lack() {
    let code = codes_in_code();
    let spec = codes_in_spec();
    assert!(
        spec.len() > 40,
        "found only {} codes in docs/rules.md",
        spec.len()
    );
    let unknown: Vec<&String> = spec.difference(&code).collect();
    assert!(
        unknown.is_empty(),
        "docs/rules.md names refusals the code does not have: {unknown:?}"
    );
}

/// The entry kinds of the state digest, in the order `docs/format.md` §9
/// gives them.
const DIGEST_KINDS: [&str; 10] = [
    "chain",
    "parameters",
    "department",
    "member",
    "nonce",
    "document",
    "proposal",
    "event",
    "tx",
    "validator-set",
];

/// The state digest as `docs/format.md` §9 describes it, computed here
/// from the state's records without the ledger's digest code.
fn digest_from_spec(state: &MemoryState) -> [u8; 32] {
    let mut hash = Sha256::new();
    let tag = b"custody/state/v1";
    hash.update([tag.len() as u8]);
    hash.update(tag);
    let mut entry = |kind: &str, value: Vec<u8>| {
        hash.update((kind.len() as u64).to_be_bytes());
        hash.update(kind.as_bytes());
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(&value);
    };
    let [chain, parameters, department, member, nonce, document, proposal, event, tx, set] =
        DIGEST_KINDS;
    if let Some(info) = &state.chain {
        entry(chain, encoding::encode(info));
    }
    entry(parameters, encoding::encode(&state.parameters));
    for v in state.departments.values() {
        entry(department, encoding::encode(v));
    }
    for v in state.members.values() {
        entry(member, encoding::encode(v));
    }
    for (k, v) in &state.nonces {
        let mut pair = encoding::encode(k);
        pair.extend(encoding::encode(v));
        entry(nonce, pair);
    }
    for v in state.documents.values() {
        entry(document, encoding::encode(v));
    }
    for v in state.proposals.values() {
        entry(proposal, encoding::encode(v));
    }
    for events in state.events.values() {
        for e in events {
            entry(event, encoding::encode(e));
        }
    }
    for (k, v) in &state.tx_locations {
        let mut pair = encoding::encode(k);
        pair.extend(encoding::encode(v));
        entry(tx, pair);
    }
    for (k, v) in &state.validator_sets {
        let mut pair = encoding::encode(k);
        pair.extend(encoding::encode(v));
        entry(set, pair);
    }
    hash.finalize().into()
}

#[test]
fn the_state_digest_is_computable_from_the_spec() {
    let chain = sample::chain();
    assert!(
        !chain.state.documents.is_empty() && !chain.state.proposals.is_empty(),
        "the sample chain should exercise every kind of entry"
    );
    assert_eq!(digest_from_spec(&chain.state), chain.state.digest().0);
    let section = read("docs/format.md");
    let section = section
        .split("## 9. State digest")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/format.md has a section 9");
    for kind in DIGEST_KINDS {
        assert!(
            section.contains(&format!("`{kind}`")),
            "docs/format.md §9 does not name the entry kind `{kind}`"
        );
    }
}

#[test]
fn the_documented_state_digest_of_the_export_vector_is_the_replayed_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/export-v1.bin");
    let (report, _, _) =
        export::verify_export(&path, None, VerifyOptions::default(), |_| {}).unwrap();
    let digest = report.state_digest.to_hex();
    for doc in ["docs/audit.md", "docs/format.md"] {
        assert!(
            read(doc).contains(&digest),
            "{doc} does not give the export vector's state digest {digest}"
        );
    }
}
