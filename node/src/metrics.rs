//! The node's metrics, rendered as Prometheus text at `/metrics`.
//!
//! Plain atomics rather than a metrics library: there are a handful of
//! gauges and one histogram, and the text format is a few lines.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::network::PeerId;

/// Upper bounds (seconds) of the commit-latency histogram buckets.
const COMMIT_LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
pub struct Metrics {
    pub height: AtomicU64,
    pub round: AtomicU64,
    pub peers: AtomicU64,
    pub mempool_txs: AtomicU64,
    pub mempool_bytes: AtomicU64,
    pub committed_txs_total: AtomicU64,
    pub refused_txs_total: AtomicU64,
    pub synced_blocks_total: AtomicU64,
    pub fetched_proposals_total: AtomicU64,
    /// HTTP connections being served now.
    pub api_connections_open: AtomicU64,
    /// HTTP connections closed at once because `api.connections_max` were open.
    pub api_connections_refused_total: AtomicU64,
    /// Blobs found not to match their hash (on a read, a serve, a fetch
    /// check or the scrub) and moved to quarantine.
    pub blobs_corrupt_total: AtomicU64,
    /// Blobs fetched again from peers after one was quarantined.
    pub blobs_refetched_total: AtomicU64,
    /// Blobs re-hashed by the periodic scrub, and their bytes.
    pub blobs_scrubbed_total: AtomicU64,
    pub blobs_scrubbed_bytes_total: AtomicU64,
    /// Changes of the transport's allowed set made after a commit changed
    /// the departments (added, removed, or a node key rotated).
    pub transport_members_changes: AtomicU64,
    /// Uploaded blobs that no committed transaction named within
    /// `blobs.orphan_after_ms`, removed by the scrub.
    pub blobs_orphans_collected_total: AtomicU64,
    /// Blobs deleted because the document they are a version of was
    /// disposed of (`blob_disposal`).
    pub blobs_disposed_total: AtomicU64,
    /// Shred shares deleted because the document whose envelope they open
    /// was disposed of (`blob_disposal`): from then on no copy of that
    /// envelope can be decrypted.
    pub shred_shares_disposed_total: AtomicU64,
    /// Citizen lookups answered (`POST /v1/citizen/records`), found or not.
    pub citizen_lookups_total: AtomicU64,
    /// Citizen lookups refused with 429 because their client's budget
    /// (`api.citizen_lookups_*`) was spent.
    pub citizen_lookups_rate_limited_total: AtomicU64,
    /// API requests refused for want of a valid caller, by refusal code.
    api_refused: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Oversight alerts raised (`alert_desk`), by rule code.
    alerts_by_rule: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Alert webhook deliveries that failed after every retry.
    pub alert_webhook_failures_total: AtomicU64,
    /// Alert webhook deliveries the receiver acknowledged.
    pub alert_webhook_deliveries_total: AtomicU64,
    /// Equivocation records in the blocks committed since this node
    /// started (each block's `submit-evidence` records, whoever sent them).
    pub evidence_committed_total: AtomicU64,
    /// Per validator (its label), its signatures in the latest certificates
    /// (`health::SIGNED_RECENT_CERTIFICATES`); replaced after each commit.
    validators_signed_recent: Mutex<Vec<(String, u64)>>,
    commit_latency_buckets: [AtomicU64; COMMIT_LATENCY_BUCKETS_SECONDS.len()],
    commit_latency_count: AtomicU64,
    commit_latency_sum_micros: AtomicU64,
    /// Per member node: its department and when a consensus message last
    /// arrived from it (as the gossip propagation source). "Connected" says
    /// little about a peer behind a half-open link; this says whether its
    /// messages still reach us. Bounded by the allowed set: only allowed
    /// peers hold connections, so only they are propagation sources.
    peers_heard: Mutex<HashMap<PeerId, PeerHeard>>,
}

#[derive(Default)]
struct PeerHeard {
    department: Option<String>,
    last_consensus_message: Option<Instant>,
}

/// One member node as `/v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConsensusAge {
    pub peer_id: String,
    pub department: Option<String>,
    /// Milliseconds since its last consensus message; `None` if none came
    /// since this node started.
    pub last_consensus_message_age_ms: Option<u64>,
}

impl Metrics {
    /// The mempool's size, after every change to it.
    pub fn set_mempool_size(&self, txs: usize, bytes: usize) {
        self.mempool_txs.store(txs as u64, Ordering::Relaxed);
        self.mempool_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// Records the time from a transaction's arrival at this node to the
    /// commit of the block holding it.
    pub fn observe_commit_latency(&self, seconds: f64) {
        for (bucket, bound) in self
            .commit_latency_buckets
            .iter()
            .zip(COMMIT_LATENCY_BUCKETS_SECONDS)
        {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.commit_latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = (seconds * 1e6).max(0.0) as u64;
        self.commit_latency_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts an API request refused because its caller was not admitted.
    pub fn note_api_refused(&self, code: &'static str) {
        let mut counts = match self.api_refused.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *counts.entry(code).or_default() += 1;
    }

    /// Replaces the per-validator signature counts.
    /// Adds `count` alerts of rule `rule` (a count of 0 makes the rule's
    /// line appear at 0).
    pub fn note_alerts(&self, rule: &str, count: u64) {
        let mut counts = match self.alerts_by_rule.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *counts.entry(rule.to_string()).or_default() += count;
    }

    pub fn set_validators_signed_recent(&self, counts: Vec<(String, u64)>) {
        match self.validators_signed_recent.lock() {
            Ok(mut guard) => *guard = counts,
            Err(poisoned) => *poisoned.into_inner() = counts,
        }
    }

    fn peers_heard(&self) -> MutexGuard<'_, HashMap<PeerId, PeerHeard>> {
        // The map holds plain values: a panic elsewhere cannot leave it
        // half-written.
        match self.peers_heard.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Names the department of each member node, so that the status and the
    /// metric can say whose messages stopped.
    pub fn set_peer_departments(&self, departments: impl IntoIterator<Item = (PeerId, String)>) {
        let mut heard = self.peers_heard();
        for (peer, department) in departments {
            heard.entry(peer).or_default().department = Some(department);
        }
    }

    /// A consensus message arrived from `peer` (its propagation source).
    pub fn consensus_message_from(&self, peer: PeerId, now: Instant) {
        self.peers_heard()
            .entry(peer)
            .or_default()
            .last_consensus_message = Some(now);
    }

    /// Every known member node with the age of its last consensus message,
    /// by peer id.
    pub fn peer_consensus_ages(&self, now: Instant) -> Vec<PeerConsensusAge> {
        let mut ages: Vec<PeerConsensusAge> = self
            .peers_heard()
            .iter()
            .map(|(peer, heard)| PeerConsensusAge {
                peer_id: peer.to_string(),
                department: heard.department.clone(),
                last_consensus_message_age_ms: heard
                    .last_consensus_message
                    .map(|at| now.saturating_duration_since(at).as_millis() as u64),
            })
            .collect();
        ages.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        ages
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "custody_height",
            "Height of the last committed block.",
            "gauge",
            load(&self.height),
        );
        gauge(
            &mut out,
            "custody_consensus_round",
            "Consensus round at the current height.",
            "gauge",
            load(&self.round),
        );
        gauge(
            &mut out,
            "custody_peers",
            "Connected member nodes.",
            "gauge",
            load(&self.peers),
        );
        gauge(
            &mut out,
            "custody_mempool_transactions",
            "Transactions waiting for a block.",
            "gauge",
            load(&self.mempool_txs),
        );
        gauge(
            &mut out,
            "custody_mempool_bytes",
            "Encoded bytes of the transactions waiting for a block.",
            "gauge",
            load(&self.mempool_bytes),
        );
        gauge(
            &mut out,
            "custody_committed_transactions_total",
            "Transactions committed since this node started.",
            "counter",
            load(&self.committed_txs_total),
        );
        gauge(
            &mut out,
            "custody_refused_transactions_total",
            "Transactions refused at this node's door.",
            "counter",
            load(&self.refused_txs_total),
        );
        gauge(
            &mut out,
            "custody_synced_blocks_total",
            "Blocks fetched from peers by block sync.",
            "counter",
            load(&self.synced_blocks_total),
        );
        gauge(
            &mut out,
            "custody_fetched_proposals_total",
            "Proposals fetched from peers because they did not arrive by gossip.",
            "counter",
            load(&self.fetched_proposals_total),
        );
        gauge(
            &mut out,
            "custody_api_connections_open",
            "HTTP API connections being served.",
            "gauge",
            load(&self.api_connections_open),
        );
        gauge(
            &mut out,
            "custody_api_connections_refused_total",
            "HTTP API connections closed at once because api.connections_max were open.",
            "counter",
            load(&self.api_connections_refused_total),
        );
        gauge(
            &mut out,
            "custody_citizen_lookups_total",
            "Citizen lookups answered, whether the receipt code found records or not.",
            "counter",
            load(&self.citizen_lookups_total),
        );
        gauge(
            &mut out,
            "custody_citizen_lookups_rate_limited_total",
            "Citizen lookups refused with 429 because the client's lookup budget was spent.",
            "counter",
            load(&self.citizen_lookups_rate_limited_total),
        );
        gauge(
            &mut out,
            "custody_blobs_corrupt_total",
            "Blobs whose bytes no longer matched their SHA-256, moved to quarantine.",
            "counter",
            load(&self.blobs_corrupt_total),
        );
        gauge(
            &mut out,
            "custody_blobs_refetched_total",
            "Quarantined blobs fetched again from other nodes.",
            "counter",
            load(&self.blobs_refetched_total),
        );
        gauge(
            &mut out,
            "custody_blobs_scrubbed_total",
            "Blobs re-hashed by the periodic scrub.",
            "counter",
            load(&self.blobs_scrubbed_total),
        );
        gauge(
            &mut out,
            "custody_blobs_scrubbed_bytes_total",
            "Bytes re-hashed by the periodic scrub.",
            "counter",
            load(&self.blobs_scrubbed_bytes_total),
        );
        gauge(
            &mut out,
            "custody_transport_members_changes_total",
            "Changes of the allowed peers that followed a committed change of the departments.",
            "counter",
            load(&self.transport_members_changes),
        );
        gauge(
            &mut out,
            "custody_evidence_committed_total",
            "Equivocation evidence records committed since this node started (GET /v1/evidence lists them all).",
            "counter",
            load(&self.evidence_committed_total),
        );
        gauge(
            &mut out,
            "custody_blobs_orphans_collected_total",
            "Uploaded blobs removed because no committed transaction named them in time.",
            "counter",
            load(&self.blobs_orphans_collected_total),
        );
        gauge(
            &mut out,
            "custody_blobs_disposed_total",
            "Blobs deleted because a committed disposal ended their document (every version's ciphertext).",
            "counter",
            load(&self.blobs_disposed_total),
        );
        gauge(
            &mut out,
            "custody_shred_shares_disposed_total",
            "Shred shares deleted because a committed disposal ended their document: no copy of its ciphertext can be decrypted after.",
            "counter",
            load(&self.shred_shares_disposed_total),
        );
        {
            let counts = match self.api_refused.lock() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let name = "custody_api_refused_total";
            let _ = writeln!(
                out,
                "# HELP {name} API requests refused for want of a valid signed caller, by code."
            );
            let _ = writeln!(out, "# TYPE {name} counter");
            for (code, count) in counts {
                let _ = writeln!(out, "{name}{{code=\"{code}\"}} {count}");
            }
        }
        {
            let counts = match self.alerts_by_rule.lock() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let name = "custody_alerts_total";
            let _ = writeln!(
                out,
                "# HELP {name} Oversight alerts raised by rule, since this node started (those derived at start from the stored chain included)."
            );
            let _ = writeln!(out, "# TYPE {name} counter");
            for (rule, count) in counts {
                let rule = escape_label(&rule);
                let _ = writeln!(out, "{name}{{rule=\"{rule}\"}} {count}");
            }
        }
        gauge(
            &mut out,
            "custody_alert_webhook_failures_total",
            "Alerts the webhook (oversight.webhook_url) did not accept after every retry.",
            "counter",
            load(&self.alert_webhook_failures_total),
        );
        gauge(
            &mut out,
            "custody_alert_webhook_deliveries_total",
            "Alerts the webhook (oversight.webhook_url) accepted.",
            "counter",
            load(&self.alert_webhook_deliveries_total),
        );
        {
            let counts = match self.validators_signed_recent.lock() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let name = "custody_validator_signed_recent";
            let _ = writeln!(
                out,
                "# HELP {name} Certificates among the latest {} that the validator signed.",
                crate::health::SIGNED_RECENT_CERTIFICATES
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (label, count) in counts {
                let label = escape_label(&label);
                let _ = writeln!(out, "{name}{{validator=\"{label}\"}} {count}");
            }
        }
        let name = "custody_peer_last_consensus_message_age_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Seconds since the last consensus message from each member node (absent until one arrives)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for peer in self.peer_consensus_ages(Instant::now()) {
            if let Some(age_ms) = peer.last_consensus_message_age_ms {
                let _ = writeln!(
                    out,
                    "{name}{{peer=\"{}\",department=\"{}\"}} {}",
                    peer.peer_id,
                    peer.department.as_deref().unwrap_or(""),
                    age_ms as f64 / 1000.0
                );
            }
        }
        let name = "custody_commit_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a transaction's arrival at this node to its commit."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, bound) in self
            .commit_latency_buckets
            .iter()
            .zip(COMMIT_LATENCY_BUCKETS_SECONDS)
        {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.commit_latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = load(&self.commit_latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

/// Per validator (label, milliseconds since last heard), as Prometheus
/// text; a validator never heard since start has no sample.
pub fn render_last_heard(validators: &[(String, Option<u64>)]) -> String {
    let mut out = String::new();
    let name = "custody_validator_last_heard_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Seconds since this node last accepted a consensus message from the validator."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (label, silent_ms) in validators {
        if let Some(silent_ms) = silent_ms {
            let label = escape_label(label);
            let seconds = *silent_ms as f64 / 1e3;
            let _ = writeln!(out, "{name}{{validator=\"{label}\"}} {seconds}");
        }
    }
    out
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe_commit_latency(0.02);
        metrics.observe_commit_latency(3.0);
        let text = metrics.render();
        assert!(text.contains("custody_commit_latency_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("custody_commit_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("custody_commit_latency_seconds_count 2"));
    }

    #[test]
    fn validator_signatures_are_labelled_by_validator() {
        let metrics = Metrics::default();
        metrics.set_validators_signed_recent(vec![("archives".to_string(), 97)]);
        let text = metrics.render();
        assert!(text.contains("custody_validator_signed_recent{validator=\"archives\"} 97"));
    }

    #[test]
    fn peer_consensus_age_counts_from_its_last_message() {
        let metrics = Metrics::default();
        let heard = PeerId::random();
        let silent = PeerId::random();
        metrics.set_peer_departments([
            (heard, "health".to_string()),
            (silent, "civil-affairs".to_string()),
        ]);
        let at = Instant::now();
        metrics.consensus_message_from(heard, at);
        let ages = metrics.peer_consensus_ages(at + std::time::Duration::from_millis(1_500));
        let age = |peer: PeerId| {
            ages.iter()
                .find(|age| age.peer_id == peer.to_string())
                .map(|age| age.last_consensus_message_age_ms)
        };
        assert_eq!(age(heard), Some(Some(1_500)));
        assert_eq!(age(silent), Some(None));
        let text = metrics.render();
        assert!(text.contains(&format!(
            "custody_peer_last_consensus_message_age_seconds{{peer=\"{heard}\",department=\"health\"}}"
        )));
        assert!(
            !text.contains(&silent.to_string()),
            "no age before a message"
        );
    }
}
