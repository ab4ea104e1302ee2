//! Running a node in this process until SIGINT or SIGTERM: what `custody
//! node start` does, shared with the harness, whose demo and benches start
//! their nodes from their own binary.

use std::path::PathBuf;

use custody_node::home::Home;

/// How long the stopped node's runtime may wait for its blocking tasks.
const NODE_RUNTIME_STOP_WAIT_MS_MAX: u64 = 5_000;

/// Starts the tracing subscriber, then runs the node of `home` until an OS
/// signal asks it to stop. Errors are the node's own, as text.
pub fn run_node(home: PathBuf, log_json: bool) -> Result<(), String> {
    custody_node::shutdown::init_tracing(log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let result = runtime.block_on(async move {
        let (trigger, shutdown) = custody_node::shutdown::shutdown_channel();
        tokio::spawn(async move {
            custody_node::shutdown::os_signal().await;
            tracing::info!("shutdown requested");
            trigger.trigger();
        });
        custody_node::node::run(Home::new(home), shutdown)
            .await
            .map_err(|error| error.to_string())
    });
    // A blocking call still running (a disk write that hangs, say) must not
    // keep a failed node's process alive: its supervisor restarts it only
    // once it has exited, non-zero.
    runtime.shutdown_timeout(std::time::Duration::from_millis(
        NODE_RUNTIME_STOP_WAIT_MS_MAX,
    ));
    result
}
