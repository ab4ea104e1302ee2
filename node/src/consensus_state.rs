//! The file the driver keeps the consensus state machine's persisted state
//! in (`data/consensus-state.bin` by default).
//!
//! The state names the same block several times: as the locked value, as
//! the valid value and inside this validator's own signed proposal. Under
//! load a block is a few hundred kilobytes and the state is written, and
//! fsynced, two or three times per height, so the file keeps each block
//! once: a magic line, then postcard of [`OnDisk`], whose `values` hold each
//! distinct block and whose `state` holds the state with those blocks'
//! bytes left empty. A file without the magic line is the older form, plain
//! postcard of the state, and is still read.
//!
//! The file is also the node's record, kept apart from the ledger store,
//! of how far it got: see [`committed_high_water`].

use custody_consensus::{Message, PersistedState, Value};
use serde::{Deserialize, Serialize};

/// First bytes of the current form.
pub const MAGIC: &[u8] = b"custody-consensus-state/v2\n";

#[derive(Serialize, Deserialize)]
struct OnDisk {
    /// Each distinct block value the state names, once.
    values: Vec<Value>,
    /// The state, with the bytes of every value in `values` left empty.
    state: PersistedState,
}

/// Every value the state holds, mutably, in a fixed order.
fn values_of(state: &mut PersistedState) -> Vec<&mut Value> {
    let mut out: Vec<&mut Value> = Vec::new();
    if let Some((_, value)) = state.locked.as_mut() {
        out.push(value);
    }
    if let Some((_, value)) = state.valid.as_mut() {
        out.push(value);
    }
    for signed in state
        .own_messages
        .iter_mut()
        .chain(state.valid_proof.iter_mut())
    {
        if let Message::Proposal(proposal) = &mut signed.message {
            out.push(&mut proposal.value);
        }
    }
    out
}

/// The file's bytes for `state`.
pub fn encode(mut state: PersistedState) -> Result<Vec<u8>, postcard::Error> {
    let mut values: Vec<Value> = Vec::new();
    for value in values_of(&mut state) {
        let bytes = std::mem::take(&mut value.bytes);
        let known = values
            .iter()
            .any(|kept| kept.hash == value.hash && kept.bytes == bytes);
        if !known {
            // Two different values under one claimed hash are both kept;
            // the second is then restored from the state itself.
            if values.iter().any(|kept| kept.hash == value.hash) {
                value.bytes = bytes;
                continue;
            }
            values.push(Value {
                bytes,
                hash: value.hash,
            });
        }
    }
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_allocvec(&OnDisk { values, state })?);
    Ok(out)
}

/// Reads the file's bytes, in either form.
pub fn decode(bytes: &[u8]) -> Result<PersistedState, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return postcard::from_bytes(bytes).map_err(|error| error.to_string());
    };
    let OnDisk { values, mut state } =
        postcard::from_bytes(rest).map_err(|error| error.to_string())?;
    for value in values_of(&mut state) {
        if !value.bytes.is_empty() {
            continue;
        }
        let kept = values
            .iter()
            .find(|kept| kept.hash == value.hash)
            .ok_or_else(|| format!("block {} named but not kept", hex::encode(value.hash.0)))?;
        value.bytes = kept.bytes.clone();
    }
    Ok(state)
}

/// Why the consensus state file could not be read for the start check.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the consensus state {path} (the record of the heights this node committed): \
     {message}"
)]
pub struct HighWaterError {
    pub path: std::path::PathBuf,
    pub message: String,
}

/// The highest height this node is known to have committed, from the
/// consensus state file at `path` (`None` when there is no file: a node
/// that never ran consensus).
///
/// The state names the height consensus works on. The driver moves to
/// height `h + 1`, and persists the state saying so, only after block `h`
/// was written and flushed to the ledger store (a decided block is
/// committed before the next height starts; synced blocks before the
/// height after them starts). So a state at height `h + 1` proves the
/// store once held every block up to `h`, and any vote in it is for
/// `h + 1`: a store now behind `h` was rolled back or truncated. Both
/// forms of the file carry the height, so older files serve as well.
pub fn committed_high_water(path: &std::path::Path) -> Result<Option<u64>, HighWaterError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(HighWaterError {
                path: path.to_path_buf(),
                message: error.to_string(),
            })
        }
    };
    let state = decode(&bytes).map_err(|message| HighWaterError {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(Some(state.height.0.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_consensus::{BlockHash, Height, Proposal, Round, RoundStep, SignedMessage};

    fn value(byte: u8) -> Value {
        Value {
            bytes: vec![byte; 1000],
            hash: BlockHash([byte; 32]),
        }
    }

    fn proposal(value: Value) -> SignedMessage {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        SignedMessage::sign(
            "chain",
            Message::Proposal(Proposal {
                height: Height(3),
                round: Round(1),
                valid_round: None,
                value,
            }),
            &key,
        )
    }

    fn state() -> PersistedState {
        PersistedState {
            height: Height(3),
            round: Round(1),
            step: RoundStep::Precommit,
            locked: Some((Round(1), value(7))),
            valid: Some((Round(1), value(7))),
            own_messages: vec![proposal(value(7)), proposal(value(8))],
            valid_proof: Vec::new(),
        }
    }

    #[test]
    fn the_state_reads_back_as_written_and_keeps_each_block_once() {
        let written = encode(state()).expect("encodes");
        assert_eq!(decode(&written).expect("decodes"), state());
        let plain = postcard::to_allocvec(&state()).expect("encodes");
        // Two of block 7's three copies (1,000 bytes each) are left out;
        // the magic line and the table cost a few dozen bytes.
        assert!(
            written.len() + 2 * 1000 <= plain.len() + MAGIC.len() + 100,
            "block 7 appears three times in the state, once in the file ({} vs {})",
            written.len(),
            plain.len()
        );
    }

    #[test]
    fn the_high_water_mark_is_the_height_before_the_state_in_either_form() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("consensus.state");
        assert_eq!(committed_high_water(&path).expect("no file"), None);
        std::fs::write(&path, encode(state()).expect("encodes")).expect("writes");
        assert_eq!(committed_high_water(&path).expect("reads"), Some(2));
        std::fs::write(&path, postcard::to_allocvec(&state()).expect("encodes")).expect("writes");
        assert_eq!(committed_high_water(&path).expect("reads"), Some(2));
        std::fs::write(&path, b"not a state").expect("writes");
        assert!(committed_high_water(&path).is_err());
    }

    #[test]
    fn the_older_plain_form_is_still_read() {
        let plain = postcard::to_allocvec(&state()).expect("encodes");
        assert_eq!(decode(&plain).expect("decodes"), state());
    }

    #[test]
    fn a_file_naming_a_block_it_does_not_keep_is_refused() {
        let mut broken = state();
        broken.locked = Some((
            Round(1),
            Value {
                bytes: Vec::new(),
                hash: BlockHash([9; 32]),
            },
        ));
        let mut bytes = MAGIC.to_vec();
        bytes.extend(
            postcard::to_allocvec(&OnDisk {
                values: Vec::new(),
                state: broken,
            })
            .expect("encodes"),
        );
        assert!(decode(&bytes).is_err());
    }
}
