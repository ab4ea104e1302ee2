//! What every committed vector file's test does alike: find and read the
//! file, decode its hex fields, take the v1 vector chain as the start of a
//! later version's chain, check that the code still reproduces the file
//! exactly (or write it anew when asked), and run the independent Python
//! check written from `docs/format.md` alone.
#![allow(dead_code)]

use custody_ledger::block::Block;
use custody_ledger::genesis::Genesis;
use serde_json::Value;

/// The committed vector file `name` (under `tests/vectors/`).
pub fn path(name: &str) -> String {
    format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The parsed vector file at `path`.
pub fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the vector file {path} is committed: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} parses: {e}"))
}

/// The bytes of a hex string field.
pub fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string field")).expect("valid hex")
}

/// The genesis and block 1 of the committed v1 vectors.
pub fn v1() -> (Genesis, Block) {
    let v = load(&path("v1.json"));
    let genesis = Genesis::from_bytes(&hex_of(&v["genesis"]["canonical_hex"])).expect("genesis");
    let block = Block::from_bytes(&hex_of(&v["block"]["canonical_hex"])).expect("block 1");
    (genesis, block)
}

/// The committed file at `path` is exactly what the code builds now. With
/// the environment variable `write_var` set, the file is written anew
/// first (for a version not yet released).
pub fn assert_reproduced(path: &str, built: &Value, write_var: &str) {
    if std::env::var_os(write_var).is_some() {
        let text = serde_json::to_string_pretty(built).expect("json") + "\n";
        std::fs::write(path, text).expect("write the vectors");
    }
    let committed = load(path);
    assert_eq!(
        &committed, built,
        "the code no longer produces the committed vectors in {path} \
         (if this version is unreleased: {write_var}=1 cargo test --release -p custody-ledger)"
    );
}

/// The file at `path` passes `tests/vectors/independent_check.py`, a check
/// written in Python from the docs alone, when Python is installed.
pub fn assert_independent_check(path: &str) {
    let script = format!(
        "{}/tests/vectors/independent_check.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = match std::process::Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            println!("python3 not available ({e}); independent check skipped");
            return;
        }
    };
    assert!(
        output.status.success(),
        "independent check of {path} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
