//! The alert desk: runs the oversight detector on the committed chain as
//! it grows, keeps the alerts for `GET /v1/alerts`, counts them by rule,
//! and hands those concerning this node's department to the webhook.
//!
//! The detection is the oversight crate's (`custody_oversight::live`); the
//! desk only feeds it committed blocks and passes its results on. At start
//! it replays the stored chain: the detector is deterministic, so the
//! alerts after a restart are those before it, and nothing is delivered
//! again: the replay judges every block as it was judged live, so every
//! alert keeps its sequence number across a restart. The desk follows the
//! committed-height signal and reads the new blocks from the store, so it
//! never holds up a commit; when it falls behind, it feeds every block it
//! missed. The book keeps the alerts shared (`Arc`) by sequence number;
//! a step moves only what it raised, updated or withdrew.
//!
//! A desk that cannot read the store or feed the detector stops and says
//! so at `GET /v1/alerts` (503 `alerts_stopped`): stale alerts are never
//! served as current.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use custody_ledger::block::Block;
use custody_ledger::caller::Caller;
use custody_ledger::genesis::Genesis;
use custody_ledger::types::{DepartmentId, Height};
use custody_oversight::{LiveAlert, LiveDetector, Rule, Step, Thresholds};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::OversightConfig;
use crate::handles::ChainView;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Largest thresholds file read, in bytes.
pub const THRESHOLDS_BYTES_MAX: u64 = 1024 * 1024;

/// Blocks read from the store per judging step while catching up: bounds
/// the memory of one step, whatever the backlog.
const CATCH_UP_BLOCKS_MAX: u64 = 256;

/// Why the desk could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AlertDeskError {
    #[error("cannot read the oversight thresholds file {path}: {reason}")]
    ThresholdsRead { path: String, reason: String },
    #[error("the oversight thresholds file {path} is refused: {reason}")]
    Thresholds { path: String, reason: String },
    #[error("the ledger store could not be read at height {height}: {reason}")]
    Store { height: u64, reason: String },
    #[error("the store has no block at height {0}, below its head")]
    MissingBlock(u64),
    #[error("the ledger store's head could not be read: {0}")]
    Head(String),
    #[error("the oversight detector refused block {height}: {reason}")]
    Feed { height: u64, reason: String },
    #[error("the oversight detector stopped while judging up to height {height}: {reason}")]
    Panicked { height: u64, reason: String },
}

/// Reads and checks the thresholds file named in the configuration.
pub fn load_thresholds(path: Option<&std::path::Path>) -> Result<Thresholds, AlertDeskError> {
    let Some(path) = path else {
        return Ok(Thresholds::default());
    };
    let shown = path.display().to_string();
    let read_error = |reason: String| AlertDeskError::ThresholdsRead {
        path: shown.clone(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(e.to_string()))?
        .len();
    if size > THRESHOLDS_BYTES_MAX {
        return Err(read_error(format!(
            "it is {size} bytes; at most {THRESHOLDS_BYTES_MAX} are read"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    Thresholds::parse(&text, json).map_err(|e| AlertDeskError::Thresholds {
        path: shown.clone(),
        reason: e.to_string(),
    })
}

/// What `GET /v1/alerts` reads: the current alerts, shared between the
/// desk (the only writer) and the API.
#[derive(Clone, Default)]
pub struct AlertBook {
    inner: Arc<RwLock<BookState>>,
}

#[derive(Default)]
struct BookState {
    /// The current revision of every alert, by sequence number.
    alerts: BTreeMap<u64, Arc<LiveAlert>>,
    /// The height the alerts were derived at.
    height: Height,
    last_seq: u64,
    /// Why the desk stopped, once it did.
    stopped: Option<String>,
    /// Whether the replay of the stored chain finished.
    ready: bool,
}

/// Which alerts a reader asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertQuery {
    /// Alerts (revisions) with a sequence number above this.
    pub since_seq: u64,
    /// Alerts whose current revision was derived above this height.
    pub since_height: Option<u64>,
    pub limit: usize,
}

/// One page of alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsPage {
    /// The committed height the alerts were derived at.
    pub height: u64,
    /// The highest sequence number given so far: ask `since` it next.
    pub last_seq: u64,
    /// In sequence order.
    pub alerts: Vec<LiveAlert>,
    /// Whether more alerts match beyond this page (ask again with `since`
    /// the last one's `seq`).
    pub more: bool,
}

/// Why the book cannot answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookUnavailable {
    /// The stored chain is still being replayed.
    Starting,
    /// The desk stopped for this reason.
    Stopped(String),
}

impl AlertBook {
    fn read(&self) -> RwLockReadGuard<'_, BookState> {
        // Replaced whole under the lock: a panic cannot leave it torn.
        match self.inner.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut BookState)) {
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut guard);
    }

    /// Replaces the alerts with the detector's current ones (once, at
    /// start); the book answers from then on.
    pub fn publish(&self, live: &LiveDetector) {
        let alerts: BTreeMap<u64, Arc<LiveAlert>> =
            live.iter().map(|a| (a.seq, Arc::new(a.clone()))).collect();
        let height = live.height();
        let last_seq = live.last_seq();
        self.update(|b| {
            b.alerts = alerts;
            b.height = height;
            b.last_seq = last_seq;
            b.ready = true;
        });
    }

    /// Applies one step of the detector: only its changes move.
    pub fn apply(&self, step: &Step, live: &LiveDetector) {
        let added: Vec<Arc<LiveAlert>> = step
            .raised
            .iter()
            .chain(&step.updated)
            .map(|a| Arc::new(a.clone()))
            .collect();
        let height = live.height();
        let last_seq = live.last_seq();
        self.update(|b| {
            // New revisions first: a revision raised and replaced within
            // one step is then removed too.
            for alert in added {
                b.alerts.insert(alert.seq, alert);
            }
            for seq in step.replaced.iter().chain(&step.withdrawn) {
                b.alerts.remove(seq);
            }
            b.height = height;
            b.last_seq = last_seq;
            b.ready = true;
        });
    }

    /// The alerts `caller` may see that match `query`: an auditor sees
    /// every alert; a member or a department's node those concerning its
    /// department (naming it, or on documents it registered or holds).
    pub fn page(&self, caller: &Caller, query: AlertQuery) -> Result<AlertsPage, BookUnavailable> {
        let book = self.read();
        if let Some(reason) = &book.stopped {
            return Err(BookUnavailable::Stopped(reason.clone()));
        }
        if !book.ready {
            return Err(BookUnavailable::Starting);
        }
        let department = caller.department();
        let mut matching: Vec<&Arc<LiveAlert>> = book
            .alerts
            .range(query.since_seq.saturating_add(1)..)
            .map(|(_, a)| a)
            .filter(|a| query.since_height.is_none_or(|h| a.updated_height.0 > h))
            .filter(|a| department.is_none_or(|d| a.concerns(d)))
            .take(query.limit.saturating_add(1))
            .collect();
        let more = matching.len() > query.limit;
        matching.truncate(query.limit);
        Ok(AlertsPage {
            height: book.height.0,
            last_seq: book.last_seq,
            alerts: matching.into_iter().map(|a| (**a).clone()).collect(),
            more,
        })
    }
}

/// What the webhook receives for each alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub chain_id: String,
    /// The department of the node that sends it.
    pub department: DepartmentId,
    pub change: AlertChange,
    pub alert: LiveAlert,
}

/// Why an alert is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertChange {
    /// Raised for the first time.
    Raised,
    /// A new revision of an alert raised before.
    Updated,
}

/// The running desk: the detector and where its results go.
pub struct AlertDesk {
    pub chain: ChainView,
    pub genesis: Genesis,
    pub thresholds: Thresholds,
    pub department: DepartmentId,
    pub book: AlertBook,
    pub metrics: Arc<Metrics>,
    pub config: OversightConfig,
}

impl AlertDesk {
    /// Follows the chain until `stop`; on an error the book says why.
    pub async fn run(self, mut stop: Shutdown) {
        for rule in Rule::ALL {
            self.metrics.note_alerts(rule.code(), 0);
        }
        let webhook = self.config.webhook_url.clone().map(|url| {
            let (sender, receiver) = mpsc::channel(self.config.webhook_queue_max);
            tokio::spawn(deliver_webhook(
                url,
                receiver,
                self.config.clone(),
                self.metrics.clone(),
                stop.clone(),
            ));
            sender
        });
        let book = self.book.clone();
        tokio::select! {
            _ = stop.wait() => {}
            result = self.follow(webhook) => {
                if let Err(error) = result {
                    tracing::error!(%error, "the alert desk stopped: GET /v1/alerts answers 503 until the node restarts");
                    book.update(|b| b.stopped = Some(error.to_string()));
                }
            }
        }
    }

    async fn follow(
        self,
        webhook: Option<mpsc::Sender<WebhookPayload>>,
    ) -> Result<(), AlertDeskError> {
        let mut committed = self.chain.committed();
        // The stored chain first, each block judged as it was live: nothing
        // is delivered for it.
        let head = self.head()?;
        let (mut live, mut fed) = {
            let chain = self.chain.clone();
            let mut live = LiveDetector::new(self.thresholds.clone(), &self.genesis);
            tokio::task::spawn_blocking(move || -> Result<(LiveDetector, u64), AlertDeskError> {
                let mut fed = 0;
                while fed < head {
                    let to = head.min(fed + CATCH_UP_BLOCKS_MAX);
                    let blocks = read_blocks(&chain, fed + 1, to)?;
                    live.absorb(blocks.iter())
                        .map_err(|e| AlertDeskError::Feed {
                            height: to,
                            reason: e.to_string(),
                        })?;
                    fed = to;
                }
                Ok((live, fed))
            })
            .await
            .map_err(|e| AlertDeskError::Panicked {
                height: head,
                reason: e.to_string(),
            })??
        };
        for alert in live.iter() {
            self.metrics.note_alerts(alert.alert.rule.code(), 1);
        }
        self.book.publish(&live);
        tracing::info!(
            height = fed,
            alerts = live.len(),
            "oversight alerts derived from the stored chain"
        );

        loop {
            let head = self.head()?;
            if head <= fed {
                if committed.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
            let to = head.min(fed + CATCH_UP_BLOCKS_MAX);
            let blocks = read_blocks(&self.chain, fed + 1, to)?;
            let (detector, stepped) = tokio::task::spawn_blocking(move || {
                let step = live.feed_blocks(blocks.iter());
                (live, step)
            })
            .await
            .map_err(|e| AlertDeskError::Panicked {
                height: to,
                reason: e.to_string(),
            })?;
            live = detector;
            let step = stepped.map_err(|e| AlertDeskError::Feed {
                height: to,
                reason: e.to_string(),
            })?;
            fed = to;
            for alert in &step.raised {
                self.metrics.note_alerts(alert.alert.rule.code(), 1);
                tracing::warn!(
                    rule = %alert.alert.rule,
                    member = ?alert.alert.member.map(|m| m.to_hex()),
                    department = ?alert.alert.department.as_ref().map(|d| d.to_string()),
                    seq = alert.seq,
                    height = alert.raised_height.0,
                    "oversight alert: {}",
                    alert.alert.explanation
                );
            }
            self.book.apply(&step, &live);
            if let Some(sender) = &webhook {
                let changes = step
                    .raised
                    .into_iter()
                    .map(|a| (AlertChange::Raised, a))
                    .chain(step.updated.into_iter().map(|a| (AlertChange::Updated, a)));
                for (change, alert) in changes {
                    if !alert.concerns(&self.department) {
                        continue;
                    }
                    let seq = alert.seq;
                    let payload = WebhookPayload {
                        chain_id: self.chain.chain_id().to_string(),
                        department: self.department.clone(),
                        change,
                        alert,
                    };
                    if sender.try_send(payload).is_err() {
                        self.metrics
                            .alert_webhook_failures_total
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(seq, "the alert webhook's queue is full (oversight.webhook_queue_max): this alert is not delivered");
                    }
                }
            }
        }
    }

    fn head(&self) -> Result<u64, AlertDeskError> {
        self.chain
            .store()
            .latest_height()
            .map(|h| h.0)
            .map_err(|e| AlertDeskError::Head(e.to_string()))
    }
}

/// The committed blocks `from..=to`, from the store.
fn read_blocks(chain: &ChainView, from: u64, to: u64) -> Result<Vec<Block>, AlertDeskError> {
    (from..=to)
        .map(|height| {
            chain
                .store()
                .block(Height(height))
                .map_err(|e| AlertDeskError::Store {
                    height,
                    reason: e.to_string(),
                })?
                .ok_or(AlertDeskError::MissingBlock(height))
        })
        .collect()
}

/// Posts each payload to `url`, retrying with a doubling backoff; a
/// delivery that fails every attempt is logged and counted, and the next
/// one is tried. Ends on `stop` or when the sending side is dropped.
pub async fn deliver_webhook(
    url: String,
    mut receiver: mpsc::Receiver<WebhookPayload>,
    config: OversightConfig,
    metrics: Arc<Metrics>,
    mut stop: Shutdown,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(config.webhook_timeout_ms))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "the alert webhook's HTTP client could not be built: no alert is delivered");
            return;
        }
    };
    loop {
        let payload = tokio::select! {
            _ = stop.wait() => return,
            payload = receiver.recv() => match payload {
                Some(payload) => payload,
                None => return,
            },
        };
        let mut backoff_ms = config.webhook_backoff_ms;
        let mut last_error = String::new();
        let mut delivered = false;
        for attempt in 1..=config.webhook_attempts_max {
            match http.post(&url).json(&payload).send().await {
                Ok(response) if response.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(response) => last_error = format!("the receiver answered {}", response.status()),
                Err(error) => last_error = error.to_string(),
            }
            if attempt < config.webhook_attempts_max {
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
                backoff_ms = backoff_ms.saturating_mul(2);
            }
        }
        if delivered {
            metrics
                .alert_webhook_deliveries_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            metrics
                .alert_webhook_failures_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                %url,
                seq = payload.alert.seq,
                attempts = config.webhook_attempts_max,
                reason = %last_error,
                "the alert webhook did not accept the alert"
            );
        }
    }
}
