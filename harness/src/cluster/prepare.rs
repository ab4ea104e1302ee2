//! `custody-harness cluster prepare`: a testnet whose configs use the container
//! network of `docker-compose.yml` instead of loopback ports.

use std::path::PathBuf;

use clap::Args;
use custody_node::config::NodeConfig;
use custody_node::home::Home;

/// Port every node listens on for peers inside its container.
pub const P2P_PORT: u16 = 26600;
/// Port of every node's HTTP API inside its container.
pub const API_PORT: u16 = 26680;

#[derive(Args)]
pub struct PrepareArgs {
    /// Directory for the homes (must be empty or absent).
    #[arg(long)]
    dir: PathBuf,
    /// First three octets of the docker network; node i gets SUBNET.(11+i).
    #[arg(long, default_value = "172.29.77")]
    subnet: String,
    /// Mempool bound written into every config (small, so that the flood
    /// test reaches it in seconds).
    #[arg(long, default_value_t = 2_000)]
    mempool_txs_max: usize,
    /// Departments made beside the genesis ones, for the federation to vote
    /// in (node 4 and up; each home holds contribution.json).
    #[arg(long, default_value_t = 0)]
    joining: usize,
}

pub fn run(args: PrepareArgs) -> Result<(), String> {
    let octets: Vec<&str> = args.subnet.split('.').collect();
    if octets.len() != 3 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
        return Err(format!(
            "--subnet `{}` is not three octets like 172.29.77",
            args.subnet
        ));
    }
    let manifest = custody_node::testnet::generate(&custody_node::testnet::TestnetOptions {
        departments: 4,
        dir: args.dir.clone(),
        base_port: 26600,
        fast: true,
        chain_id: "custody-cluster".to_string(),
        joining: args.joining,
        governors: true,
    })
    .map_err(|error| error.to_string())?;
    let address = |index: usize| format!("{}.{}", args.subnet, 11 + index);
    let all: Vec<_> = manifest.nodes.iter().chain(&manifest.joining).collect();
    for (index, node) in all.iter().enumerate() {
        let home = Home::new(args.dir.join(&node.department));
        let path = home.config_path();
        let mut config = NodeConfig::load(&path).map_err(|error| error.to_string())?;
        config.network.listen = vec![format!("/ip4/0.0.0.0/tcp/{P2P_PORT}")];
        for peer in &mut config.network.peers {
            let peer_index = all
                .iter()
                .position(|other| other.peer_id == peer.peer_id)
                .ok_or_else(|| format!("peer {} is not in the manifest", peer.peer_id))?;
            peer.address = format!("/ip4/{}/tcp/{P2P_PORT}", address(peer_index));
        }
        // Inside its container the API must listen on every interface so
        // that docker can publish it; the compose file publishes it on the
        // host's loopback only.
        config.api.listen = std::net::SocketAddr::from(([0, 0, 0, 0], API_PORT));
        config.mempool.txs_max = args.mempool_txs_max;
        // Fewer, fuller blocks: the checker reads every block of every node.
        config.consensus.block_interval_ms = 250;
        config.consensus.empty_block_interval_ms = 800;
        config.save(&path).map_err(|error| error.to_string())?;
        println!(
            "{:<16} {}:{P2P_PORT}  peer id {}",
            node.department,
            address(index),
            node.peer_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_configs_use_the_container_network_and_publishable_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = dir.path().join("net");
        run(PrepareArgs {
            dir: net.clone(),
            subnet: "10.9.8".to_string(),
            mempool_txs_max: 123,
            joining: 0,
        })
        .expect("prepare");
        let manifest: custody_node::testnet::TestnetManifest =
            serde_json::from_slice(&std::fs::read(net.join("testnet.json")).expect("manifest"))
                .expect("manifest parses");
        assert_eq!(manifest.nodes.len(), 4);
        for (index, node) in manifest.nodes.iter().enumerate() {
            let config = NodeConfig::load(&Home::new(net.join(&node.department)).config_path())
                .expect("config");
            assert_eq!(config.network.listen, vec!["/ip4/0.0.0.0/tcp/26600"]);
            assert_eq!(config.api.listen.to_string(), "0.0.0.0:26680");
            assert_eq!(config.mempool.txs_max, 123);
            assert_eq!(config.network.peers.len(), 3);
            for peer in &config.network.peers {
                let peer_index = manifest
                    .nodes
                    .iter()
                    .position(|other| other.peer_id == peer.peer_id)
                    .expect("peer in manifest");
                assert_ne!(peer_index, index, "a node must not dial itself");
                assert_eq!(
                    peer.address,
                    format!("/ip4/10.9.8.{}/tcp/26600", 11 + peer_index)
                );
            }
        }
    }

    #[test]
    fn a_subnet_that_is_not_three_octets_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = run(PrepareArgs {
            dir: dir.path().join("net"),
            subnet: "10.9".to_string(),
            mempool_txs_max: 1,
            joining: 0,
        })
        .expect_err("refused");
        assert!(error.contains("three octets"), "{error}");
    }
}
