//! The node's rooms: which of its modules import which, read from the
//! sources. The composition root (`node.rs`) is imported by nothing, and no
//! modules import each other in a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name to the modules of this crate it names (`crate::name`),
/// outside its tests.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
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
