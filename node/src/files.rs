//! Durable file writes, for every file the node owns (config, consensus
//! state, testnet homes).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` durably: a temporary file is written and
/// fsynced, renamed over `path`, and the directory is fsynced, so a crash
/// leaves either the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(&parent)?.sync_all()
}

/// Fsyncs a directory, so that files created in it or removed from it
/// survive a crash.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
