//! Picks up a validator key the operator installs while the node runs:
//! every [`KEY_WATCH_INTERVAL_MS`] the node looks for
//! `keys/validator.next.key` and, when it holds a key the node does not
//! hold yet, hands it to the driver. The state machine then signs with it
//! from the first height whose validator set names it, so a rotation needs
//! no restart (`docs/operations.md`, "Rotate a department's validator key").

use std::path::PathBuf;
use std::time::Duration;

use custody_ledger::types::PublicKey;
use tokio::sync::mpsc;

use crate::driver::DriverInput;
use crate::home;
use crate::shutdown::Shutdown;

/// How often the keys directory is looked at.
pub const KEY_WATCH_INTERVAL_MS: u64 = 2_000;

/// Watches `keys_dir` until `stop` fires; `held` are the keys the node
/// started with.
pub async fn run(
    keys_dir: PathBuf,
    mut held: Vec<PublicKey>,
    driver: mpsc::Sender<DriverInput>,
    mut stop: Shutdown,
) {
    let path = keys_dir.join(home::VALIDATOR_NEXT_KEY_FILE);
    let mut ticker = tokio::time::interval(Duration::from_millis(KEY_WATCH_INTERVAL_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_bad = false;
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = ticker.tick() => {}
        }
        if !path.exists() {
            continue;
        }
        let secret = match home::read_key_file(&path) {
            Ok(secret) => secret,
            Err(error) => {
                if !reported_bad {
                    tracing::warn!(%error, "cannot read the next validator key; fix the file (the node keeps its current keys)");
                    reported_bad = true;
                }
                continue;
            }
        };
        reported_bad = false;
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let public = PublicKey(key.verifying_key().to_bytes());
        if held.contains(&public) {
            continue;
        }
        if driver.send(DriverInput::AddSigningKey(key)).await.is_err() {
            return;
        }
        held.push(public);
    }
}
