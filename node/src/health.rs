//! Liveness and readiness: what `/healthz` and `/readyz` answer, and the
//! per-validator activity shown in `/v1/status` and `/metrics`.
//!
//! - Liveness: the consensus task's loop has turned recently (it turns at
//!   least once per re-broadcast interval while a height is open).
//! - Readiness: this node hears validators holding more than two thirds of
//!   the voting power, and the chain is not stalled while there is work.
//!
//! The driver only records facts through [`ConsensusPulse`] (a mutex'd map
//! and an atomic); the rule itself is the pure [`readiness`] function, and
//! the signatures per validator are computed by
//! `health_watch::watch_activity` from the committed certificates, outside
//! the driver; `health_watch` also gathers the facts from the running node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use custody_consensus::{Disposition, ValidatorKey};
use custody_ledger::types::PublicKey;
use serde::Serialize;

use crate::config::ReadinessConfig;

/// How many of the latest certificates the per-validator signature count
/// looks at.
pub const SIGNED_RECENT_CERTIFICATES: u64 = 100;

/// Most validators whose last message time is remembered. Only validators
/// of the set in force are recorded (the state machine refuses others), so
/// this only bounds the map across many validator-set changes.
pub const HEARD_VALIDATORS_MAX: usize = 1_024;

/// What the node's tasks record for the health checks.
pub struct Health {
    /// This node's validator keys (current, and next ahead of a
    /// rotation): it always hears itself.
    own_keys: Mutex<Vec<PublicKey>>,
    /// Written by the driver.
    pub pulse: ConsensusPulse,
    /// Written by `health_watch::watch_activity` after each commit.
    pub(crate) activity: Mutex<Activity>,
}

impl Health {
    /// Whether `key` is one of this node's validator keys.
    pub fn is_own_key(&self, key: &PublicKey) -> bool {
        match self.own_keys.lock() {
            Ok(keys) => keys.contains(key),
            Err(poisoned) => poisoned.into_inner().contains(key),
        }
    }

    /// A validator key installed while the node runs.
    pub fn hold_key(&self, key: PublicKey) {
        let mut keys = match self.own_keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    pub fn new(own_keys: Vec<PublicKey>) -> Self {
        Health {
            own_keys: Mutex::new(own_keys),
            pulse: ConsensusPulse::default(),
            activity: Mutex::new(Activity {
                validators: Vec::new(),
                certificates: 0,
                advanced_at: Instant::now(),
            }),
        }
    }
}

/// When the driver last accepted a consensus message from each validator,
/// and when its loop last turned.
pub struct ConsensusPulse {
    origin: Instant,
    heard: Mutex<HashMap<ValidatorKey, Instant>>,
    /// Milliseconds since `origin` of the driver loop's last turn.
    turned_ms: AtomicU64,
    /// Whether the state machine was waiting for work at that turn: no
    /// validator sends consensus messages then.
    idle: AtomicBool,
}

impl Default for ConsensusPulse {
    fn default() -> Self {
        ConsensusPulse {
            origin: Instant::now(),
            heard: Mutex::new(HashMap::new()),
            turned_ms: AtomicU64::new(0),
            idle: AtomicBool::new(false),
        }
    }
}

impl ConsensusPulse {
    /// Records a consensus message the state machine has just handled. Only
    /// messages it checked and kept count: a buffered message (for a later
    /// height) has not had its signature checked yet, and anyone could have
    /// made up a refused one.
    pub fn on_message(&self, signer: ValidatorKey, disposition: Disposition) {
        if !matches!(disposition, Disposition::Accepted | Disposition::Duplicate) {
            return;
        }
        let now = Instant::now();
        let mut heard = lock(&self.heard);
        if heard.len() >= HEARD_VALIDATORS_MAX && !heard.contains_key(&signer) {
            if let Some(oldest) = heard.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                heard.remove(&oldest);
            }
        }
        heard.insert(signer, now);
    }

    /// Records one turn of the driver's loop, and whether the state
    /// machine is waiting for work at a new height.
    pub fn driver_turned(&self, waiting_for_work: bool) {
        let elapsed_ms = self.origin.elapsed().as_millis() as u64;
        self.turned_ms.store(elapsed_ms, Ordering::Relaxed);
        self.idle.store(waiting_for_work, Ordering::Relaxed);
    }

    /// Whether the state machine waits for work (an idle chain).
    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// Milliseconds since the driver loop last turned (since start if never).
    pub fn driver_silent_ms(&self) -> u64 {
        let now_ms = self.origin.elapsed().as_millis() as u64;
        now_ms.saturating_sub(self.turned_ms.load(Ordering::Relaxed))
    }

    /// Milliseconds since the last accepted message from `key`, if any.
    pub fn silent_ms(&self, key: &PublicKey) -> Option<u64> {
        lock(&self.heard)
            .get(key)
            .map(|at| at.elapsed().as_millis() as u64)
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain records, consistent after any panic.
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The latest per-validator signature counts, and when the chain last moved.
#[derive(Clone)]
pub(crate) struct Activity {
    pub(crate) validators: Vec<ValidatorSigned>,
    /// How many certificates the counts cover (fewer than
    /// [`SIGNED_RECENT_CERTIFICATES`] near the genesis).
    pub(crate) certificates: u64,
    pub(crate) advanced_at: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidatorSigned {
    pub(crate) key: PublicKey,
    pub(crate) label: String,
    pub(crate) power: u64,
    pub(crate) signed: u64,
}

/// One validator of the set in force, as `/v1/status` shows it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ValidatorActivity {
    /// The validator's department (its key in hex if no department has it).
    pub validator: String,
    pub key: String,
    pub power: u64,
    /// Certificates among the latest `recent_certificates` it signed.
    pub signed_recent: u64,
    pub recent_certificates: u64,
    /// Milliseconds since this node last accepted a consensus message from
    /// it; `null` if never since start. Zero for this node itself.
    pub last_heard_ms_ago: Option<u64>,
}

impl Health {
    /// Every validator of the set in force with its recent signatures and
    /// how long ago it was last heard.
    pub fn validators(&self) -> Vec<ValidatorActivity> {
        let activity = lock(&self.activity).clone();
        activity
            .validators
            .into_iter()
            .map(|validator| ValidatorActivity {
                last_heard_ms_ago: if self.is_own_key(&validator.key) {
                    Some(0)
                } else {
                    self.pulse.silent_ms(&validator.key)
                },
                validator: validator.label,
                key: validator.key.to_hex(),
                power: validator.power,
                signed_recent: validator.signed,
                recent_certificates: activity.certificates,
            })
            .collect()
    }

    /// Milliseconds since a block was last committed (or since start).
    pub fn since_advance_ms(&self) -> u64 {
        lock(&self.activity).advanced_at.elapsed().as_millis() as u64
    }
}

/// One validator as the readiness rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct HeardValidator {
    pub power: u64,
    /// Milliseconds since its last valid consensus message (`None`: never).
    pub silent_ms: Option<u64>,
    /// This node itself: always heard while its consensus task runs.
    pub is_self: bool,
    /// Its department's node holds a live connection to this one (pings
    /// answered within the network's silence bound).
    pub connected: bool,
}

/// What the readiness rule looks at.
#[derive(Clone, Debug)]
pub struct ReadinessFacts {
    /// The validator set in force for the next height.
    pub validators: Vec<HeardValidator>,
    /// Milliseconds since the last commit.
    pub since_advance_ms: u64,
    /// Transactions waiting in the mempool.
    pub waiting_transactions: u64,
    /// Milliseconds since the driver's loop last turned.
    pub driver_silent_ms: u64,
    /// The state machine waits for work at a new height: an idle chain,
    /// on which no validator sends consensus messages.
    pub idle: bool,
}

/// The verdict: ready, or the reasons why not (each a sentence for an
/// operator).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<String>,
}

/// Whether the consensus task is alive: `Err` with the reason when stuck.
pub fn liveness(driver_silent_ms: u64, config: &ReadinessConfig) -> Result<(), String> {
    if driver_silent_ms > config.driver_silence_ms_max {
        return Err(format!(
            "the consensus task has not run for {driver_silent_ms} ms (readiness.driver_silence_ms_max is {} ms)",
            config.driver_silence_ms_max
        ));
    }
    Ok(())
}

/// The readiness rule: a quorum is heard (validators, this one included,
/// heard within `quorum_silence_ms_max` hold more than 2/3 of the power),
/// the chain advanced within `stall_ms_max` if there is work, and the
/// consensus task is alive. While the chain is idle (waiting for work, so
/// nobody sends consensus messages) a validator whose node holds a live
/// connection to this one counts as heard: the first transaction would
/// reach it.
pub fn readiness(facts: &ReadinessFacts, config: &ReadinessConfig) -> Readiness {
    let mut reasons = Vec::new();
    if let Err(reason) = liveness(facts.driver_silent_ms, config) {
        reasons.push(reason);
    }
    let total: u128 = facts.validators.iter().map(|v| u128::from(v.power)).sum();
    let heard: u128 = facts
        .validators
        .iter()
        .filter(|v| {
            v.is_self
                || (facts.idle && v.connected)
                || v.silent_ms
                    .is_some_and(|silent| silent <= config.quorum_silence_ms_max)
        })
        .map(|v| u128::from(v.power))
        .sum();
    // The same rule as the state machine's quorum: strictly more than 2/3.
    if total == 0 || heard * 3 <= total * 2 {
        reasons.push(format!(
            "hears validators with {heard}/{total} voting power, needs more than 2/3"
        ));
    }
    if facts.waiting_transactions > 0 && facts.since_advance_ms > config.stall_ms_max {
        reasons.push(format!(
            "no block committed for {} ms while {} transactions wait (readiness.stall_ms_max is {} ms)",
            facts.since_advance_ms, facts.waiting_transactions, config.stall_ms_max
        ));
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReadinessConfig {
        ReadinessConfig {
            quorum_silence_ms_max: 5_000,
            stall_ms_max: 30_000,
            driver_silence_ms_max: 20_000,
        }
    }

    fn other(silent_ms: Option<u64>) -> HeardValidator {
        HeardValidator {
            power: 1,
            silent_ms,
            is_self: false,
            connected: false,
        }
    }

    fn me() -> HeardValidator {
        HeardValidator {
            power: 1,
            silent_ms: None,
            is_self: true,
            connected: true,
        }
    }

    fn facts(validators: Vec<HeardValidator>) -> ReadinessFacts {
        ReadinessFacts {
            validators,
            since_advance_ms: 100,
            waiting_transactions: 0,
            driver_silent_ms: 10,
            idle: false,
        }
    }

    fn connected(silent_ms: Option<u64>) -> HeardValidator {
        HeardValidator {
            connected: true,
            ..other(silent_ms)
        }
    }

    #[test]
    fn an_idle_chain_counts_connected_validators_as_heard() {
        let mut idle = facts(vec![me(), connected(None), connected(None), other(None)]);
        idle.idle = true;
        let verdict = readiness(&idle, &config());
        assert!(verdict.ready, "{verdict:?}");
    }

    #[test]
    fn an_idle_chain_with_too_few_connected_validators_is_not_ready() {
        let mut idle = facts(vec![me(), connected(None), other(None), other(None)]);
        idle.idle = true;
        let verdict = readiness(&idle, &config());
        assert!(!verdict.ready);
        assert!(verdict.reasons[0].contains("2/4"), "{verdict:?}");
    }

    #[test]
    fn a_busy_chain_needs_consensus_messages_not_just_connections() {
        let busy = facts(vec![
            me(),
            connected(None),
            connected(None),
            connected(None),
        ]);
        let verdict = readiness(&busy, &config());
        assert!(
            !verdict.ready,
            "connections alone do not show a working quorum"
        );
    }

    #[test]
    fn ready_when_more_than_two_thirds_of_the_power_is_heard() {
        let verdict = readiness(
            &facts(vec![
                me(),
                other(Some(100)),
                other(Some(4_000)),
                other(None),
            ]),
            &config(),
        );
        assert!(verdict.ready, "{verdict:?}");
        assert!(verdict.reasons.is_empty());
    }

    #[test]
    fn not_ready_when_only_half_the_power_is_heard() {
        let verdict = readiness(
            &facts(vec![
                me(),
                other(Some(100)),
                other(Some(6_000)),
                other(None),
            ]),
            &config(),
        );
        assert!(!verdict.ready);
        assert_eq!(
            verdict.reasons,
            vec!["hears validators with 2/4 voting power, needs more than 2/3".to_string()]
        );
    }

    #[test]
    fn a_lone_validator_among_four_is_not_ready() {
        let verdict = readiness(
            &facts(vec![me(), other(None), other(None), other(None)]),
            &config(),
        );
        assert!(!verdict.ready);
        assert!(verdict.reasons[0].contains("1/4"), "{verdict:?}");
    }

    #[test]
    fn exactly_two_thirds_is_not_a_quorum() {
        let verdict = readiness(&facts(vec![me(), other(Some(0)), other(None)]), &config());
        assert!(!verdict.ready, "2/3 is not more than 2/3");
    }

    #[test]
    fn voting_power_not_validator_count_decides() {
        let heavy = HeardValidator {
            power: 10,
            silent_ms: Some(0),
            is_self: false,
            connected: false,
        };
        let verdict = readiness(
            &facts(vec![me(), heavy, other(None), other(None)]),
            &config(),
        );
        assert!(verdict.ready, "11 of 13 heard: {verdict:?}");
    }

    #[test]
    fn a_single_validator_chain_is_ready_on_its_own() {
        assert!(readiness(&facts(vec![me()]), &config()).ready);
    }

    #[test]
    fn a_stall_with_waiting_transactions_is_not_ready() {
        let mut stalled = facts(vec![me(), other(Some(0)), other(Some(0)), other(Some(0))]);
        stalled.since_advance_ms = 31_000;
        stalled.waiting_transactions = 12;
        let verdict = readiness(&stalled, &config());
        assert!(!verdict.ready);
        assert_eq!(verdict.reasons.len(), 1);
        assert!(
            verdict.reasons[0].contains("12 transactions wait"),
            "{verdict:?}"
        );
    }

    #[test]
    fn no_block_without_waiting_transactions_is_no_stall() {
        let mut idle = facts(vec![me(), other(Some(0)), other(Some(0)), other(Some(0))]);
        idle.since_advance_ms = 600_000;
        assert!(readiness(&idle, &config()).ready);
    }

    #[test]
    fn a_stuck_consensus_task_is_neither_live_nor_ready() {
        let mut stuck = facts(vec![me()]);
        stuck.driver_silent_ms = 25_000;
        assert!(liveness(stuck.driver_silent_ms, &config()).is_err());
        let verdict = readiness(&stuck, &config());
        assert!(!verdict.ready);
        assert!(verdict.reasons[0].contains("consensus task"), "{verdict:?}");
    }

    #[test]
    fn only_checked_messages_count_as_heard() {
        let pulse = ConsensusPulse::default();
        let key = PublicKey([7; 32]);
        pulse.on_message(key, Disposition::Buffered);
        assert_eq!(pulse.silent_ms(&key), None);
        pulse.on_message(key, Disposition::Accepted);
        assert!(pulse.silent_ms(&key).is_some());
    }
}
