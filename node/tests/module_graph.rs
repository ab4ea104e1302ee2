//! The node's rooms: which of its modules import which, read from the
//! sources. The composition root (`node.rs`) is imported by nothing, and no
//! modules import each other in a loop; it alone builds the handles the
//! tasks share, and only the application holds the writable ledger store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name to its source, outside its tests.
fn sources() -> BTreeMap<String, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&source).expect("node/src is readable") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("file name")
            .to_string();
        let text = if path.is_dir() {
            let mut text = String::new();
            for file in std::fs::read_dir(&path).expect("module folder is readable") {
                let file = file.expect("directory entry").path();
                if file.extension().is_some_and(|ext| ext == "rs") {
                    text.push_str(&std::fs::read_to_string(&file).expect("source"));
                }
            }
            text
        } else if path.extension().is_some_and(|ext| ext == "rs") && name != "lib" {
            std::fs::read_to_string(&path).expect("source")
        } else {
            continue;
        };
        // What tests import does not shape the rooms.
        let text = match text.find("#[cfg(test)]") {
            Some(at) => text[..at].to_string(),
            None => text,
        };
        texts.insert(name, text);
    }
    texts
}

/// Module name to the modules of this crate it names (`crate::name`),
/// outside its tests.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let texts = sources();
    let names: BTreeSet<String> = texts.keys().cloned().collect();
    texts
        .iter()
        .map(|(name, text)| {
            let mut used = BTreeSet::new();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if word.is_empty() {
                    // `use crate::{a::X, b}`: every name in the braces.
                    if let Some(group) = rest.strip_prefix('{') {
                        let group = &group[..group.find('}').unwrap_or(group.len())];
                        for part in group.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        {
                            if names.contains(part) && part != name {
                                used.insert(part.to_string());
                            }
                        }
                    }
                } else if names.contains(&word) && word != *name {
                    used.insert(word);
                }
            }
            (name.clone(), used)
        })
        .collect()
}

#[test]
fn the_composition_root_is_imported_by_nothing() {
    let importers: Vec<String> = imports()
        .into_iter()
        .filter(|(_, used)| used.contains("node"))
        .map(|(name, _)| name)
        .collect();
    assert!(importers.is_empty(), "node.rs is imported by {importers:?}");
}

#[test]
fn no_modules_of_the_node_import_each_other_in_a_loop() {
    let graph = imports();
    // Depth-first search from every module; a module met again on the
    // current path closes a loop.
    fn visit(
        name: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|step| step == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        path.push(name.to_string());
        for next in graph.get(name).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for name in graph.keys() {
        let cycle = visit(name, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import loop: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
}

/// How each handle the tasks share is built (`node/src/handles.rs`,
/// `store_reader.rs` and the tasks' own handle types): a call or a struct
/// literal.
const HANDLE_CONSTRUCTIONS: &[&str] = &[
    "StoreReader::new(",
    "ChainView::new(",
    "MempoolHandle::new(",
    "Peers::new(",
    "SyncWanted::default(",
    "LocalClock::new(",
    "Admission::new(",
    "LedgerApp::new(",
    "Health::new(",
    "Blobs::open(",
    "Metrics::default(",
    "DriverLinks {",
    "NetGlue {",
    "BlobRoom {",
    "ApiState {",
    "ApiSettings {",
    "ReadDesk::open(",
    "EvidenceDesk::new(",
];

/// Whether `text` builds a handle with `construction` (a struct's own
/// definition does not count).
fn builds(text: &str, construction: &str) -> bool {
    text.match_indices(construction)
        .any(|(at, _)| !text[..at].ends_with("struct "))
}

#[test]
fn handles_are_built_only_by_the_composition_root() {
    let sources = sources();
    let root = &sources["node"];
    for construction in HANDLE_CONSTRUCTIONS {
        assert!(
            builds(root, construction),
            "node.rs does not build `{construction}`"
        );
        let builders: Vec<&String> = sources
            .iter()
            .filter(|(name, text)| *name != "node" && builds(text, construction))
            .map(|(name, _)| name)
            .collect();
        assert!(
            builders.is_empty(),
            "`{construction}` is built outside node.rs, in {builders:?}"
        );
    }
}

/// Whether `text` names the ledger's writable store type
/// (`custody_ledger::store::Store`, alone or in a `{...}` group).
fn names_the_ledger_store(text: &str) -> bool {
    let path = "custody_ledger::store::";
    text.match_indices(path).any(|(at, _)| {
        let rest = &text[at + path.len()..];
        let names = match rest.strip_prefix('{') {
            Some(group) => &group[..group.find('}').unwrap_or(group.len())],
            None => rest,
        };
        let first_only = !rest.starts_with('{');
        let mut words = names.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        if first_only {
            words.next() == Some("Store")
        } else {
            words.any(|word| word == "Store")
        }
    })
}

#[test]
fn only_the_application_holds_the_writable_ledger_store() {
    // `node.rs` opens the store, `store_reader.rs` wraps it read-only, and
    // the application (owned by the driver) writes it.
    let allowed = ["app", "node", "store_reader"];
    let sources = sources();
    assert!(
        names_the_ledger_store(&sources["app"]),
        "the application no longer names the ledger store: this check reads nothing"
    );
    let naming: Vec<String> = sources
        .into_iter()
        .filter(|(name, text)| names_the_ledger_store(text) && !allowed.contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(
        naming.is_empty(),
        "modules other than {allowed:?} name the writable ledger store: {naming:?}"
    );
}

#[test]
fn only_admission_and_the_application_can_change_the_mempool() {
    // The API and readiness read the mempool through `MempoolView`; the
    // handle that can change it goes only to admission and the
    // application (and is made in `node.rs`, declared in `handles.rs`).
    let allowed = ["admission", "app", "node", "handles"];
    let sources = sources();
    assert!(
        sources["admission"].contains("MempoolHandle"),
        "admission no longer names MempoolHandle: this check reads nothing"
    );
    let naming: Vec<String> = sources
        .into_iter()
        .filter(|(name, text)| text.contains("MempoolHandle") && !allowed.contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(
        naming.is_empty(),
        "modules other than {allowed:?} hold the mempool's writable handle: {naming:?}"
    );
}
