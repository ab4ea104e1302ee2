//! `custody watch`: follows one department on a node as blocks commit —
//! every action in its name or on its documents, and every oversight
//! alert concerning it — printed as lines or JSON lines until interrupted.
//!
//! It polls two signed routes: `GET /v1/departments/{d}/activity` (block
//! by block, from a height) and `GET /v1/alerts` (from a sequence number).
//! A node that cannot be reached is retried; a refusal ends the command.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use custody_ledger::types::DepartmentId;
use custody_node::alert_desk::AlertsPage;
use custody_node::api_alerts::{ActivityItem, ActivityPage};
use custody_node::client::{Client, ClientError};
use custody_oversight::LiveAlert;
use serde::Serialize;

/// Pause between two polls when nothing new came.
const POLL_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Pause before asking an unreachable node again, at most.
const UNREACHABLE_RETRY_MS_MAX: u64 = 10_000;

/// `custody watch`.
#[derive(Args, Debug)]
#[command(
    after_help = concat!(
        "Prints, from the next block on (or from --from-height), every committed action signed by the \
department's members or node or done on its documents (registrations, transfers, grants, reads, \
governance), and every oversight alert concerning the department, one per line, until \
interrupted (Ctrl-C). The key is a member's of the department, the department's node key, or an \
auditor's named in the node's api.auditor_keys.\n\nExample:\n  custody watch --department civil-affairs --node http://127.0.0.1:26680 --key clerk.key --json\n\n",
        exit_codes_help!()
    )
)]
pub struct WatchArgs {
    /// The department to follow (its slug).
    #[arg(long)]
    pub department: String,
    /// The node's HTTP API.
    #[arg(long, env = "CUSTODY_NODE", default_value = "http://127.0.0.1:26680")]
    pub node: String,
    /// The key that signs the reads (member, node or auditor key file).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Environment variable holding --key's passphrase, if it is sealed.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Start from this committed height (default: the next block), with
    /// the alerts derived after it.
    #[arg(long)]
    pub from_height: Option<u64>,
    /// Pause between polls, in milliseconds.
    #[arg(long, default_value_t = POLL_INTERVAL_MS_DEFAULT)]
    pub interval_ms: u64,
    /// Print one JSON object per line (`"type": "action"` or `"alert"`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ActionLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    item: &'a ActivityItem,
}

#[derive(Serialize)]
struct AlertLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    alert: &'a LiveAlert,
}

/// Where the watch stands.
struct Cursor {
    next_height: u64,
    alerts_since: u64,
    alerts_since_height: Option<u64>,
}

pub async fn run(args: WatchArgs) -> Result<(), String> {
    let department = DepartmentId::new(args.department.clone())
        .map_err(|error| format!("--department `{}`: {error}", args.department))?;
    let key = crate::keyfile::read_signing_key(&args.key, args.passphrase_env.as_deref())?;
    let client = Client::new(args.node.clone()).signed_by(key);
    let status = client.status().await.map_err(|error| error.to_string())?;
    let mut cursor = Cursor {
        next_height: args.from_height.unwrap_or(status.height + 1).max(1),
        alerts_since: 0,
        alerts_since_height: None,
    };
    match args.from_height {
        Some(height) => cursor.alerts_since_height = Some(height.saturating_sub(1)),
        None => {
            // Alerts already raised are not news: start after the last one.
            let page: AlertsPage = get(&client, "/v1/alerts?limit=1").await?;
            cursor.alerts_since = page.last_seq;
        }
    }
    if !args.json {
        eprintln!(
            "watching {department} on {} from height {} (Ctrl-C to stop)",
            args.node, cursor.next_height
        );
    }
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut retry_ms = args.interval_ms.max(1);
    loop {
        let polled = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            polled = poll(&client, &department, &mut cursor, args.json) => polled,
        };
        let pause = match polled {
            Ok(()) => {
                retry_ms = args.interval_ms.max(1);
                interval
            }
            Err(PollError::Unreachable(message)) => {
                eprintln!("warning: {message}; trying again");
                retry_ms = (retry_ms * 2).min(UNREACHABLE_RETRY_MS_MAX);
                Duration::from_millis(retry_ms)
            }
            Err(PollError::Fatal(message)) => return Err(message),
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

enum PollError {
    Unreachable(String),
    Fatal(String),
}

async fn get<T: serde::de::DeserializeOwned>(client: &Client, path: &str) -> Result<T, String> {
    get_polled(client, path).await.map_err(|error| match error {
        PollError::Unreachable(message) | PollError::Fatal(message) => message,
    })
}

async fn get_polled<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
) -> Result<T, PollError> {
    let value = client.get_json(path).await.map_err(|error| match error {
        ClientError::Unreachable { .. } => PollError::Unreachable(error.to_string()),
        error => PollError::Fatal(error.to_string()),
    })?;
    serde_json::from_value(value).map_err(|error| {
        PollError::Fatal(format!(
            "the node's answer to {path} could not be read: {error}"
        ))
    })
}

/// Prints what committed since the cursor, and moves it.
async fn poll(
    client: &Client,
    department: &DepartmentId,
    cursor: &mut Cursor,
    json: bool,
) -> Result<(), PollError> {
    loop {
        let path = format!(
            "/v1/departments/{department}/activity?from_height={}",
            cursor.next_height
        );
        let page: ActivityPage = get_polled(client, &path).await?;
        for item in &page.items {
            print_action(item, json);
        }
        let moved = page.next_height > cursor.next_height;
        cursor.next_height = page.next_height;
        if !moved || cursor.next_height > page.head {
            break;
        }
    }
    loop {
        let mut path = format!("/v1/alerts?since={}", cursor.alerts_since);
        if let Some(height) = cursor.alerts_since_height {
            path.push_str(&format!("&since_height={height}"));
        }
        let page: AlertsPage = get_polled(client, &path).await?;
        for alert in &page.alerts {
            if alert.concerns(department) {
                print_alert(alert, json);
            }
            cursor.alerts_since = cursor.alerts_since.max(alert.seq);
        }
        if !page.more {
            break;
        }
    }
    Ok(())
}

fn print_action(item: &ActivityItem, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        if let Ok(line) = serde_json::to_string(&ActionLine {
            r#type: "action",
            item,
        }) {
            let _ = writeln!(out, "{line}");
        }
        return;
    }
    let mut line = format!(
        "{} height {} #{} {} by {}",
        crate::audit::format_ms(item.time.0),
        item.height.0,
        item.index,
        item.kind,
        item.actor.to_hex()
    );
    if let Some(department) = &item.actor_department {
        line.push_str(&format!(" ({department})"));
    }
    if let Some(document) = &item.document {
        line.push_str(&format!(" on {document}"));
    }
    if let Some(to) = &item.to {
        line.push_str(&format!(" for {to}"));
    }
    let _ = writeln!(out, "{line} tx {}", item.tx.to_hex());
}

fn print_alert(alert: &LiveAlert, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        if let Ok(line) = serde_json::to_string(&AlertLine {
            r#type: "alert",
            alert,
        }) {
            let _ = writeln!(out, "{line}");
        }
        return;
    }
    let change = if alert.revision > 1 {
        "updated"
    } else {
        "raised"
    };
    let documents: Vec<String> = alert
        .alert
        .documents
        .iter()
        .map(|d| d.to_string())
        .collect();
    let _ = writeln!(
        out,
        "ALERT #{} {} {change} at height {}: {} (member {}, department {}, documents {})",
        alert.seq,
        alert.alert.rule,
        alert.updated_height.0,
        alert.alert.explanation,
        alert
            .alert
            .member
            .map(|m| m.to_hex())
            .unwrap_or_else(|| "-".to_string()),
        alert
            .alert
            .department
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".to_string()),
        documents.join(",")
    );
}
