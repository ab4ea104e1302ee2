//! Network module tests: real swarms on 127.0.0.1 with ephemeral ports.
//!
//! Every wait is on a condition with a deadline; on timeout the test prints
//! what each node saw.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_node::network::{
    GossipTopic, Keypair, Multiaddr, Network, NetworkConfig, NetworkError, NetworkEvent,
    NetworkHandle, NetworkLimits, PeerId, RequestProtocol, EVENTS_PENDING_MAX,
    MEMBER_RELAY_BYTES_MAX,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT_MS: u64 = 20_000;
/// How long a negative check ("nothing arrives") watches.
const QUIET_WINDOW_MS: u64 = 3_000;
/// Request body that makes the test responder answer with more than the
/// response cap.
const OVERSIZED_REPLY_REQUEST: &[u8] = b"please answer with too many bytes";
/// Request body that makes the test responder drop the reply unanswered.
const UNANSWERED_REQUEST: &[u8] = b"please do not answer";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

fn test_limits() -> NetworkLimits {
    NetworkLimits {
        gossip_message_bytes_max: 256 * 1024,
        request_bytes_max: 64 * 1024,
        response_bytes_max: 128 * 1024,
        request_timeout_ms: 5_000,
        gossip_duplicate_cache_ms: 4_000,
        idle_connection_timeout_ms: 3_600_000,
        redial_backoff_min_ms: 100,
        redial_backoff_max_ms: 1_000,
        connection_timeout_ms: 5_000,
        ping_interval_ms: 1_000,
        ping_timeout_ms: 5_000,
    }
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

/// What a test node saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Gossip {
        topic: GossipTopic,
        from: PeerId,
        bytes: Vec<u8>,
    },
    Request {
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
    },
    Connected(PeerId),
    Disconnected(PeerId),
}

struct TestNode {
    name: &'static str,
    key: Keypair,
    handle: NetworkHandle,
    join: JoinHandle<()>,
    seen: Arc<Mutex<Vec<Seen>>>,
    changed: Arc<Notify>,
    /// Held but never read, for nodes started with `read_events == false`.
    _unread_events: Option<mpsc::Receiver<NetworkEvent>>,
}

impl TestNode {
    async fn start(
        name: &'static str,
        key: Keypair,
        listen: Multiaddr,
        peers: Vec<(PeerId, Multiaddr)>,
        allowed: &[PeerId],
        limits: NetworkLimits,
    ) -> TestNode {
        Self::start_with(name, key, listen, peers, allowed, limits, true).await
    }

    async fn start_with(
        name: &'static str,
        key: Keypair,
        listen: Multiaddr,
        peers: Vec<(PeerId, Multiaddr)>,
        allowed: &[PeerId],
        limits: NetworkLimits,
        read_events: bool,
    ) -> TestNode {
        let config = NetworkConfig {
            node_key: key.clone(),
            listen: vec![listen],
            peers,
            allowed: allowed.iter().copied().collect::<HashSet<_>>(),
            limits,
        };
        let (handle, mut events, join) = Network::start(config)
            .await
            .unwrap_or_else(|error| panic!("{name}: start failed: {error}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(Notify::new());
        let response_cap = limits.response_bytes_max;
        if !read_events {
            return TestNode {
                name,
                key,
                handle,
                join,
                seen,
                changed,
                _unread_events: Some(events),
            };
        }
        {
            let seen = seen.clone();
            let changed = changed.clone();
            // The "node": records every event and answers requests with
            // "<protocol>:<request>".
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    let record = match event {
                        NetworkEvent::Gossip {
                            topic, from, bytes, ..
                        } => Seen::Gossip { topic, from, bytes },
                        NetworkEvent::InboundRequest {
                            peer,
                            protocol,
                            bytes,
                            reply,
                        } => {
                            if bytes == UNANSWERED_REQUEST {
                                drop(reply);
                            } else if bytes == OVERSIZED_REPLY_REQUEST {
                                let _ = reply.send(vec![7u8; response_cap + 1]);
                            } else {
                                let mut answer = protocol.name().as_bytes().to_vec();
                                answer.push(b':');
                                answer.extend_from_slice(&bytes);
                                let _ = reply.send(answer);
                            }
                            Seen::Request {
                                peer,
                                protocol,
                                bytes,
                            }
                        }
                        NetworkEvent::PeerConnected(peer) => Seen::Connected(peer),
                        NetworkEvent::PeerDisconnected(peer) => Seen::Disconnected(peer),
                    };
                    seen.lock().unwrap().push(record);
                    changed.notify_waiters();
                }
            });
        }
        TestNode {
            name,
            key,
            handle,
            join,
            seen,
            changed,
            _unread_events: None,
        }
    }

    fn peer_id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    fn addr(&self) -> Multiaddr {
        self.handle.listen_addrs()[0].clone()
    }

    fn describe(&self) -> String {
        let seen = self.seen.lock().unwrap();
        let lines: Vec<String> = seen.iter().map(short).collect();
        format!(
            "{} ({}) saw:\n  {}",
            self.name,
            self.peer_id(),
            lines.join("\n  ")
        )
    }

    fn saw(&self, predicate: impl Fn(&Seen) -> bool) -> bool {
        self.seen.lock().unwrap().iter().any(predicate)
    }

    /// Waits until `predicate` holds for something this node saw.
    async fn wait_for(&self, what: &str, deadline: Instant, predicate: impl Fn(&Seen) -> bool) {
        self.wait_until(what, deadline, |seen| seen.iter().any(&predicate))
            .await
    }

    /// Waits until `condition` holds for everything this node saw.
    async fn wait_until(&self, what: &str, deadline: Instant, condition: impl Fn(&[Seen]) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if condition(&self.seen.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}\n{}", self.describe());
            }
        }
    }

    async fn stop(self) {
        self.handle.shutdown().await;
        tokio::time::timeout(Duration::from_millis(WAIT_MS), self.join)
            .await
            .unwrap_or_else(|_| panic!("{}: network task did not stop", self.name))
            .unwrap();
    }
}

fn short(seen: &Seen) -> String {
    match seen {
        Seen::Gossip { topic, from, bytes } => format!(
            "gossip {topic} from {from}: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        ),
        Seen::Request {
            peer,
            protocol,
            bytes,
        } => format!("request {protocol} from {peer}: {} bytes", bytes.len()),
        Seen::Connected(peer) => format!("connected {peer}"),
        Seen::Disconnected(peer) => format!("disconnected {peer}"),
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_millis(WAIT_MS)
}

/// Publishes `label`-numbered messages from `sender` until every receiver
/// has seen one of them (gossipsub needs the subscriptions to be exchanged
/// first, so the first publishes may find no subscriber). Returns the bytes
/// that every receiver saw.
async fn publish_until_seen(
    sender: &TestNode,
    topic: GossipTopic,
    label: &str,
    receivers: &[&TestNode],
) -> Vec<u8> {
    let deadline = deadline();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let bytes = format!("{label} #{attempt}").into_bytes();
        match sender.handle.publish(topic, bytes.clone()).await {
            Ok(()) | Err(NetworkError::NoPeersSubscribed { .. }) => {}
            Err(error) => panic!("{}: publish failed: {error}", sender.name),
        }
        let from = sender.peer_id();
        let round_end = (Instant::now() + Duration::from_millis(500)).min(deadline);
        let mut all_seen = true;
        for receiver in receivers {
            let matches = |seen: &Seen| {
                matches!(seen, Seen::Gossip { topic: t, from: f, bytes: b }
                    if *t == topic && *f == from && *b == bytes)
            };
            loop {
                let notified = receiver.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if receiver.saw(matches) {
                    break;
                }
                if tokio::time::timeout_at(round_end, notified).await.is_err() {
                    all_seen = false;
                    break;
                }
            }
        }
        if all_seen {
            return bytes;
        }
        if Instant::now() >= deadline {
            let views: Vec<String> = receivers.iter().map(|node| node.describe()).collect();
            panic!(
                "{} published {label:?} on {topic} {attempt} times; not seen by all:\n{}",
                sender.name,
                views.join("\n")
            );
        }
    }
}

async fn wait_connected(a: &TestNode, b: &TestNode) {
    let deadline = deadline();
    for (node, other) in [(a, b), (b, a)] {
        let other = other.peer_id();
        loop {
            let peers = node.handle.connected_peers().await.unwrap();
            if peers.contains(&other) {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not connected to {other}; connected: {peers:?}\n{}",
                    node.name,
                    node.describe()
                );
            }
            node.wait_for_change(Duration::from_millis(200)).await;
        }
    }
}

impl TestNode {
    /// Waits for the next event or `at_most`, whichever comes first.
    async fn wait_for_change(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changed.notified()).await;
    }
}

/// Three members: A (dials nobody), B (dials A), C (dials A and B).
async fn three_members() -> (TestNode, TestNode, TestNode) {
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();
    let a = TestNode::start("A", keys[0].clone(), loopback(), vec![], &ids, limits).await;
    let b = TestNode::start(
        "B",
        keys[1].clone(),
        loopback(),
        vec![(ids[0], a.addr())],
        &ids,
        limits,
    )
    .await;
    let c = TestNode::start(
        "C",
        keys[2].clone(),
        loopback(),
        vec![(ids[0], a.addr()), (ids[1], b.addr())],
        &ids,
        limits,
    )
    .await;
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_flows_on_both_topics_between_three_members() {
    init_tracing();
    let (a, b, c) = three_members().await;
    wait_connected(&a, &b).await;
    wait_connected(&a, &c).await;
    wait_connected(&b, &c).await;

    publish_until_seen(&a, GossipTopic::Tx, "tx from A", &[&b, &c]).await;
    publish_until_seen(&b, GossipTopic::Consensus, "vote from B", &[&a, &c]).await;
    publish_until_seen(&c, GossipTopic::Tx, "tx from C", &[&a, &b]).await;
    publish_until_seen(&c, GossipTopic::Consensus, "vote from C", &[&a, &b]).await;

    // Same bytes again: content-addressed duplicate, reported as success.
    let again = publish_until_seen(&a, GossipTopic::Consensus, "vote from A", &[&b]).await;
    a.handle.publish_consensus(again.clone()).await.unwrap();
    // The same bytes on the other topic are a different message.
    a.handle.publish_transactions(again.clone()).await.unwrap();
    b.wait_for("A's bytes on the tx topic", deadline(), |seen| {
        matches!(seen, Seen::Gossip { topic: GossipTopic::Tx, bytes, .. } if *bytes == again)
    })
    .await;

    // Nobody hears their own gossip.
    assert!(!a.saw(|seen| matches!(seen, Seen::Gossip { from, .. } if *from == a.peer_id())));

    // Too large to publish: refused before it reaches the swarm.
    let too_big = vec![1u8; test_limits().gossip_message_bytes_max + 1];
    match a.handle.publish_transactions(too_big).await {
        Err(NetworkError::MessageTooLarge { .. }) => {}
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }

    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_on_both_protocols() {
    init_tracing();
    let (a, b, c) = three_members().await;
    wait_connected(&a, &b).await;

    let answer = a
        .handle
        .request(
            b.peer_id(),
            RequestProtocol::Sync,
            b"blocks from 5".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(answer, b"/custody/sync/1:blocks from 5");
    let answer = b
        .handle
        .request(a.peer_id(), RequestProtocol::Blob, b"blob 42".to_vec())
        .await
        .unwrap();
    assert_eq!(answer, b"/custody/blob/1:blob 42");
    // A largest-allowed request and a response close to the cap go through.
    let big = vec![9u8; test_limits().request_bytes_max];
    let answer = c
        .handle
        .request(a.peer_id(), RequestProtocol::Blob, big.clone())
        .await
        .unwrap();
    assert_eq!(answer.len(), "/custody/blob/1:".len() + big.len());

    // A request the node drops fails at once rather than timing out.
    match a
        .handle
        .request(
            b.peer_id(),
            RequestProtocol::Sync,
            UNANSWERED_REQUEST.to_vec(),
        )
        .await
    {
        Err(NetworkError::RequestFailed { .. }) => {}
        other => panic!("expected RequestFailed, got {other:?}"),
    }

    b.wait_for("the sync request from A", deadline(), |seen| {
        matches!(seen, Seen::Request { peer, protocol: RequestProtocol::Sync, .. } if *peer == a.peer_id())
    })
    .await;

    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_and_responses_are_refused_without_a_panic() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let small = test_limits();
    // The sender allows itself bigger requests than the receiver accepts, as
    // a misconfigured or hostile peer would.
    let generous = NetworkLimits {
        request_bytes_max: small.request_bytes_max * 4,
        ..small
    };
    let receiver =
        TestNode::start("receiver", keys[0].clone(), loopback(), vec![], &ids, small).await;
    let sender = TestNode::start(
        "sender",
        keys[1].clone(),
        loopback(),
        vec![(ids[0], receiver.addr())],
        &ids,
        generous,
    )
    .await;
    wait_connected(&receiver, &sender).await;

    // Over the sender's own cap: refused locally.
    let over_own_cap = vec![0u8; generous.request_bytes_max + 1];
    match sender
        .handle
        .request(receiver.peer_id(), RequestProtocol::Sync, over_own_cap)
        .await
    {
        Err(NetworkError::RequestTooLarge { .. }) => {}
        other => panic!("expected RequestTooLarge, got {other:?}"),
    }

    // Over the receiver's cap: the receiver reads the length prefix, refuses
    // the frame and never hands it to its node.
    let over_receiver_cap = vec![0u8; small.request_bytes_max + 1];
    let result = sender
        .handle
        .request(receiver.peer_id(), RequestProtocol::Sync, over_receiver_cap)
        .await;
    assert!(
        result.is_err(),
        "an oversized request must fail, got {} bytes back",
        result.map(|bytes| bytes.len()).unwrap_or(0)
    );
    assert!(
        !receiver.saw(|seen| matches!(seen, Seen::Request { .. })),
        "{}",
        receiver.describe()
    );

    // A response over the cap is not sent; the caller gets an error.
    let result = sender
        .handle
        .request(
            receiver.peer_id(),
            RequestProtocol::Blob,
            OVERSIZED_REPLY_REQUEST.to_vec(),
        )
        .await;
    assert!(result.is_err(), "an oversized response must not arrive");

    // Both nodes are still up and the connection still serves requests.
    let answer = sender
        .handle
        .request(
            receiver.peer_id(),
            RequestProtocol::Sync,
            b"still there?".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(answer, b"/custody/sync/1:still there?");

    sender.stop().await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_the_allowed_set_cannot_get_a_message_through() {
    init_tracing();
    let member_keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let members: Vec<PeerId> = member_keys
        .iter()
        .map(|key| key.public().to_peer_id())
        .collect();
    let stranger_key = Keypair::generate_ed25519();
    let stranger_id = stranger_key.public().to_peer_id();
    let limits = test_limits();

    let a = TestNode::start(
        "A",
        member_keys[0].clone(),
        loopback(),
        vec![],
        &members,
        limits,
    )
    .await;
    let b = TestNode::start(
        "B",
        member_keys[1].clone(),
        loopback(),
        vec![(members[0], a.addr())],
        &members,
        limits,
    )
    .await;
    // The stranger knows A and B and would accept them; they do not know it.
    let stranger = TestNode::start(
        "stranger",
        stranger_key,
        loopback(),
        vec![(members[0], a.addr()), (members[1], b.addr())],
        &[members[0], members[1], stranger_id],
        limits,
    )
    .await;
    wait_connected(&a, &b).await;

    // The stranger keeps trying for a while: publishing and requesting.
    let quiet_until = Instant::now() + Duration::from_millis(QUIET_WINDOW_MS);
    let mut attempt = 0u32;
    while Instant::now() < quiet_until {
        attempt += 1;
        let bytes = format!("forged #{attempt}").into_bytes();
        let _ = stranger.handle.publish_transactions(bytes.clone()).await;
        let _ = stranger.handle.publish_consensus(bytes).await;
        let result = stranger
            .handle
            .request(members[0], RequestProtocol::Sync, b"let me in".to_vec())
            .await;
        assert!(result.is_err(), "a stranger's request was answered");
        stranger.wait_for_change(Duration::from_millis(200)).await;
    }
    // Control: a member's gossip published after the stranger's attempts
    // arrives, so the window was long enough for the stranger's to arrive too.
    publish_until_seen(&b, GossipTopic::Tx, "tx from B", &[&a]).await;

    for member in [&a, &b] {
        let peers = member.handle.connected_peers().await.unwrap();
        assert!(
            !peers.contains(&stranger_id),
            "{} keeps a connection to the stranger",
            member.name
        );
        assert!(
            !member.saw(|seen| match seen {
                Seen::Gossip { from, .. } => *from == stranger_id,
                Seen::Request { peer, .. } => *peer == stranger_id,
                Seen::Connected(peer) => *peer == stranger_id,
                Seen::Disconnected(_) => false,
            }),
            "{}",
            member.describe()
        );
    }

    for node in [a, b, stranger] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_redialed_and_gossip_flows_again() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();

    // B dials nobody, so after its restart only A's redial loop can bring the
    // link back.
    let b = TestNode::start("B", keys[1].clone(), loopback(), vec![], &ids, limits).await;
    let b_addr = b.addr();
    let a = TestNode::start(
        "A",
        keys[0].clone(),
        loopback(),
        vec![(ids[1], b_addr.clone())],
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    publish_until_seen(&a, GossipTopic::Consensus, "before restart", &[&b]).await;

    let b_key = b.key.clone();
    b.stop().await;
    a.wait_for("B to disconnect", deadline(), |seen| {
        *seen == Seen::Disconnected(ids[1])
    })
    .await;
    // Let a few redials fail against the closed port, so the restart is
    // found by the backoff loop rather than by a lucky first attempt.
    let connected_events_before = a
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|seen| **seen == Seen::Connected(ids[1]))
        .count();
    a.wait_for_change(Duration::from_millis(500)).await;

    let b = TestNode::start("B restarted", b_key, b_addr, vec![], &ids, limits).await;
    let deadline = deadline();
    loop {
        let count = a
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| **seen == Seen::Connected(ids[1]))
            .count();
        if count > connected_events_before {
            break;
        }
        if Instant::now() >= deadline {
            panic!("A did not redial B\n{}\n{}", a.describe(), b.describe());
        }
        a.wait_for_change(Duration::from_millis(200)).await;
    }
    wait_connected(&a, &b).await;
    publish_until_seen(&a, GossipTopic::Tx, "after restart from A", &[&b]).await;
    publish_until_seen(&b, GossipTopic::Consensus, "after restart from B", &[&a]).await;

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_are_refused() {
    init_tracing();
    let key = Keypair::generate_ed25519();
    let other = Keypair::generate_ed25519().public().to_peer_id();
    let dial_but_not_allowed = NetworkConfig {
        node_key: key.clone(),
        listen: vec![loopback()],
        peers: vec![(other, "/ip4/127.0.0.1/tcp/1".parse().unwrap())],
        allowed: HashSet::new(),
        limits: test_limits(),
    };
    match Network::start(dial_but_not_allowed).await {
        Err(NetworkError::InvalidConfig(_)) => {}
        Err(error) => panic!("expected InvalidConfig, got {error}"),
        Ok(_) => panic!("expected InvalidConfig, got a running network"),
    }
    let bad_backoff = NetworkConfig {
        node_key: key,
        listen: vec![loopback()],
        peers: vec![],
        allowed: HashSet::new(),
        limits: NetworkLimits {
            redial_backoff_min_ms: 0,
            ..test_limits()
        },
    };
    assert!(matches!(
        Network::start(bad_backoff).await,
        Err(NetworkError::InvalidConfig(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_in_the_allowed_set_receives_relayed_gossip_and_can_request() {
    init_tracing();
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let (members, observer_id) = (&ids[..2], ids[2]);
    let limits = test_limits();
    // Members allow the observer but do not dial it; it dials A only.
    let a = TestNode::start("A", keys[0].clone(), loopback(), vec![], &ids, limits).await;
    let b = TestNode::start(
        "B",
        keys[1].clone(),
        loopback(),
        vec![(members[0], a.addr())],
        &ids,
        limits,
    )
    .await;
    let observer = TestNode::start(
        "observer",
        keys[2].clone(),
        loopback(),
        vec![(members[0], a.addr())],
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    wait_connected(&a, &observer).await;

    publish_until_seen(&a, GossipTopic::Consensus, "vote from A", &[&observer]).await;
    // B is not connected to the observer: A relays, and the author stays B.
    publish_until_seen(&b, GossipTopic::Consensus, "vote from B", &[&observer, &a]).await;
    // The observer's transactions reach B through A.
    publish_until_seen(
        &observer,
        GossipTopic::Tx,
        "tx from the observer",
        &[&b, &a],
    )
    .await;
    assert!(!b
        .handle
        .connected_peers()
        .await
        .unwrap()
        .contains(&observer_id));

    let answer = observer
        .handle
        .request(members[0], RequestProtocol::Sync, b"height?".to_vec())
        .await
        .unwrap();
    assert_eq!(answer, b"/custody/sync/1:height?");

    for node in [a, b, observer] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_transaction_batch_or_large_message_is_delivered_but_not_relayed() {
    init_tracing();
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();
    // A and B are members that dial each other; the observer dials A only.
    let (a_addr, b_addr) = (free_loopback_addr(), free_loopback_addr());
    let a = TestNode::start(
        "A",
        keys[0].clone(),
        a_addr.clone(),
        vec![(ids[1], b_addr.clone())],
        &ids,
        limits,
    )
    .await;
    let b = TestNode::start(
        "B",
        keys[1].clone(),
        b_addr,
        vec![(ids[0], a_addr.clone())],
        &ids,
        limits,
    )
    .await;
    let observer = TestNode::start(
        "observer",
        keys[2].clone(),
        loopback(),
        vec![(ids[0], a_addr)],
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    wait_connected(&a, &observer).await;

    let tx = publish_until_seen(&b, GossipTopic::Tx, "tx from B", &[&a]).await;
    // A proposal-sized consensus message: A gets it, and does not relay it.
    let large = format!("proposal from B {}", "x".repeat(MEMBER_RELAY_BYTES_MAX));
    publish_until_seen(&b, GossipTopic::Consensus, &large, &[&a]).await;
    // A relays B's small consensus messages; one published after the
    // others arrives after them, had A relayed them.
    publish_until_seen(&b, GossipTopic::Consensus, "vote from B", &[&observer]).await;
    let from_b = b.peer_id();
    assert!(
        !observer.saw(|seen| matches!(seen, Seen::Gossip { topic: GossipTopic::Tx, from, .. } if *from == from_b)),
        "A relayed B's transaction batch {:?}\n{}",
        String::from_utf8_lossy(&tx),
        observer.describe()
    );
    assert!(
        !observer.saw(|seen| matches!(seen, Seen::Gossip { from, bytes, .. }
            if *from == from_b && bytes.len() > MEMBER_RELAY_BYTES_MAX)),
        "A relayed B's large consensus message\n{}",
        observer.describe()
    );

    for node in [a, b, observer] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reading_events_does_not_stall_its_swarm() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();
    let stuck = TestNode::start_with(
        "stuck",
        keys[0].clone(),
        loopback(),
        vec![],
        &ids,
        limits,
        false,
    )
    .await;
    let busy = TestNode::start(
        "busy",
        keys[1].clone(),
        loopback(),
        vec![(ids[0], stuck.addr())],
        &ids,
        limits,
    )
    .await;
    // Connected from the busy side (the stuck node's events are unread).
    let deadline = deadline();
    while !busy
        .handle
        .connected_peers()
        .await
        .unwrap()
        .contains(&ids[0])
    {
        assert!(Instant::now() < deadline, "{}", busy.describe());
        busy.wait_for_change(Duration::from_millis(200)).await;
    }
    // Wait until the stuck node is subscribed from the busy node's view.
    let deadline_subscribed = Instant::now() + Duration::from_millis(WAIT_MS);
    while let Err(NetworkError::NoPeersSubscribed { .. }) =
        busy.handle.publish_transactions(b"probe".to_vec()).await
    {
        assert!(
            Instant::now() < deadline_subscribed,
            "stuck node never subscribed"
        );
        busy.wait_for_change(Duration::from_millis(100)).await;
    }

    // Far more gossip than the stuck node's event channel holds.
    for index in 0..(EVENTS_PENDING_MAX * 2) {
        busy.handle
            .publish_transactions(format!("flood #{index}").into_bytes())
            .await
            .unwrap();
    }
    // The stuck node's swarm still answers commands and still gossips out.
    let peers = tokio::time::timeout(
        Duration::from_millis(WAIT_MS),
        stuck.handle.connected_peers(),
    )
    .await
    .expect("the stuck node's swarm task stopped answering")
    .unwrap();
    assert!(peers.contains(&ids[1]));
    publish_until_seen(&stuck, GossipTopic::Consensus, "still alive", &[&busy]).await;
    // Its outbound requests still work (the answer does not go through its
    // own event channel).
    let answer = stuck
        .handle
        .request(ids[1], RequestProtocol::Blob, b"blob?".to_vec())
        .await
        .unwrap();
    assert_eq!(answer, b"/custody/blob/1:blob?");

    busy.stop().await;
    stuck.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_over_the_receivers_cap_is_dropped_and_later_gossip_flows() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let small = test_limits();
    // A misconfigured sender with a larger gossip cap than the receiver.
    let generous = NetworkLimits {
        gossip_message_bytes_max: small.gossip_message_bytes_max * 4,
        ..small
    };
    let receiver =
        TestNode::start("receiver", keys[0].clone(), loopback(), vec![], &ids, small).await;
    let sender = TestNode::start(
        "sender",
        keys[1].clone(),
        loopback(),
        vec![(ids[0], receiver.addr())],
        &ids,
        generous,
    )
    .await;
    wait_connected(&receiver, &sender).await;
    publish_until_seen(&sender, GossipTopic::Tx, "small before", &[&receiver]).await;

    let oversized = vec![5u8; small.gossip_message_bytes_max * 2];
    sender
        .handle
        .publish_transactions(oversized.clone())
        .await
        .unwrap();
    publish_until_seen(&sender, GossipTopic::Tx, "small after", &[&receiver]).await;
    assert!(
        !receiver.saw(|seen| matches!(seen, Seen::Gossip { bytes, .. } if bytes.len() > small.gossip_message_bytes_max)),
        "{}",
        receiver.describe()
    );

    sender.stop().await;
    receiver.stop().await;
}

/// A TCP relay standing for the network between two nodes. While
/// partitioned it reads and discards everything in both directions, like a
/// link that silently drops packets (no reset, no FIN); a connection that
/// lost bytes stays broken, as a Noise session would be.
struct Relay {
    addr: Multiaddr,
    partitioned: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(target: &Multiaddr) -> Relay {
        let target = socket_addr(target);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let partitioned = Arc::new(AtomicBool::new(false));
        let flag = partitioned.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (inbound_read, inbound_write) = inbound.into_split();
                    let (outbound_read, outbound_write) = outbound.into_split();
                    let broken = Arc::new(AtomicBool::new(false));
                    tokio::join!(
                        pump(inbound_read, outbound_write, flag.clone(), broken.clone()),
                        pump(outbound_read, inbound_write, flag, broken),
                    );
                });
            }
        });
        Relay {
            addr: format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
            partitioned,
            task,
        }
    }

    fn partition(&self, on: bool) {
        self.partitioned.store(on, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    partitioned: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            // A cut link does not carry the close either: the other side
            // keeps its half-open connection until its own pings say so.
            Ok(0) | Err(_) if broken.load(Ordering::SeqCst) => {
                return std::future::pending::<()>().await;
            }
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if partitioned.load(Ordering::SeqCst) {
            broken.store(true, Ordering::SeqCst);
        }
        if broken.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
}

fn socket_addr(address: &Multiaddr) -> SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for part in address.iter() {
        match part {
            Protocol::Ip4(value) => ip = Some(value),
            Protocol::Tcp(value) => port = Some(value),
            _ => {}
        }
    }
    SocketAddr::from((ip.unwrap(), port.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_detected_by_ping_and_healed_by_redial() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = NetworkLimits {
        ping_interval_ms: 300,
        ping_timeout_ms: 1_000,
        connection_timeout_ms: 2_000,
        ..test_limits()
    };
    // B dials nobody; A reaches B only through the relay.
    let b = TestNode::start("B", keys[1].clone(), loopback(), vec![], &ids, limits).await;
    let relay = Relay::start(&b.addr()).await;
    let a = TestNode::start(
        "A",
        keys[0].clone(),
        loopback(),
        vec![(ids[1], relay.addr.clone())],
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    publish_until_seen(&a, GossipTopic::Tx, "before the cut", &[&b]).await;

    relay.partition(true);
    // The node closes a connection that answered no ping for
    // ping_interval + ping_timeout.
    let detection_deadline = Instant::now() + Duration::from_millis(WAIT_MS * 2);
    a.wait_for("A to notice the silent cut", detection_deadline, |seen| {
        *seen == Seen::Disconnected(ids[1])
    })
    .await;
    let connected_before = a
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|seen| **seen == Seen::Connected(ids[1]))
        .count();
    relay.partition(false);

    let deadline = deadline();
    loop {
        let connected_now = a
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| **seen == Seen::Connected(ids[1]))
            .count();
        if connected_now > connected_before {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "A did not reconnect after the cut\n{}\n{}",
                a.describe(),
                b.describe()
            );
        }
        a.wait_for_change(Duration::from_millis(200)).await;
    }
    publish_until_seen(&a, GossipTopic::Consensus, "after the cut from A", &[&b]).await;
    publish_until_seen(&b, GossipTopic::Tx, "after the cut from B", &[&a]).await;

    a.stop().await;
    b.stop().await;
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebroadcast_is_delivered_again_while_a_plain_duplicate_is_not() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();
    let a = TestNode::start("A", keys[0].clone(), loopback(), vec![], &ids, limits).await;
    let b = TestNode::start(
        "B",
        keys[1].clone(),
        loopback(),
        vec![(ids[0], a.addr())],
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    let vote = publish_until_seen(&a, GossipTopic::Consensus, "the same vote", &[&b]).await;
    let copies = |node: &TestNode| {
        node.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| matches!(seen, Seen::Gossip { bytes, .. } if *bytes == vote))
            .count()
    };

    // Inside the window a re-broadcast is accepted and not sent.
    a.handle.publish_consensus(vote.clone()).await.unwrap();
    b.wait_for_change(Duration::from_millis(500)).await;
    assert_eq!(copies(&b), 1, "{}", b.describe());

    // A re-broadcast goes out at once and every copy arrives.
    for expected in 2..=4 {
        a.handle.rebroadcast_consensus(vote.clone()).await.unwrap();
        b.wait_until("the re-broadcast vote", deadline(), |seen| {
            seen.iter()
                .filter(|seen| matches!(seen, Seen::Gossip { bytes, .. } if *bytes == vote))
                .count()
                >= expected
        })
        .await;
    }
    // And a plain publish of the same bytes is still a duplicate.
    a.handle.publish_consensus(vote.clone()).await.unwrap();
    b.wait_for_change(Duration::from_millis(500)).await;
    assert_eq!(copies(&b), 4, "{}", b.describe());

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_network_answers_every_call_with_stopped() {
    init_tracing();
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let node = TestNode::start("A", key, loopback(), vec![], &[id], test_limits()).await;
    let handle = node.handle.clone();
    node.stop().await;
    assert!(matches!(
        handle.publish_consensus(b"late".to_vec()).await,
        Err(NetworkError::Stopped)
    ));
    assert!(matches!(
        handle
            .request(id, RequestProtocol::Sync, b"late".to_vec())
            .await,
        Err(NetworkError::Stopped)
    ));
    assert!(matches!(
        handle.connected_peers().await,
        Err(NetworkError::Stopped)
    ));
    // Shutting down twice is harmless.
    handle.shutdown().await;
}

/// A free loopback port: bound, read and released. Another process could
/// take it in between, which is acceptable in a test.
fn free_loopback_addr() -> Multiaddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_that_all_dial_each_other_form_one_network() {
    init_tracing();
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let addrs: Vec<Multiaddr> = (0..4).map(|_| free_loopback_addr()).collect();
    // As in production: every node gets the same member list, itself
    // included, and a dead address listed before each live one.
    let dead: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    let mut members: Vec<(PeerId, Multiaddr)> = Vec::new();
    for (id, addr) in ids.iter().zip(&addrs) {
        members.push((*id, dead.clone()));
        members.push((*id, addr.clone()));
    }
    let names = ["A", "B", "C", "D"];
    let mut nodes = Vec::new();
    for index in 0..4 {
        nodes.push(
            TestNode::start(
                names[index],
                keys[index].clone(),
                addrs[index].clone(),
                members.clone(),
                &ids,
                test_limits(),
            )
            .await,
        );
    }
    for first in 0..4 {
        for second in (first + 1)..4 {
            wait_connected(&nodes[first], &nodes[second]).await;
        }
    }
    for (index, sender) in nodes.iter().enumerate() {
        let others: Vec<&TestNode> = nodes
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, node)| node)
            .collect();
        // Labels name the sender: identical bytes from two authors would be
        // one message under content-hash ids.
        let vote = format!("vote from {}", sender.name);
        publish_until_seen(sender, GossipTopic::Consensus, &vote, &others).await;
        let batch = format!("batch from {}", sender.name);
        publish_until_seen(sender, GossipTopic::Tx, &batch, &others).await;
    }
    for node in &nodes {
        let peers = node.handle.connected_peers().await.unwrap();
        assert_eq!(peers.len(), 3, "{}: {peers:?}", node.name);
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_connection_wins_so_a_peer_restarted_behind_a_half_open_link_gossips_again() {
    init_tracing();
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|key| key.public().to_peer_id()).collect();
    let limits = test_limits();
    // B dials nobody; A reaches B only through the relay.
    let b = TestNode::start("B", keys[1].clone(), loopback(), vec![], &ids, limits).await;
    let relay = Relay::start(&b.addr()).await;
    let peers = vec![(ids[1], relay.addr.clone())];
    let a = TestNode::start(
        "A",
        keys[0].clone(),
        loopback(),
        peers.clone(),
        &ids,
        limits,
    )
    .await;
    wait_connected(&a, &b).await;
    publish_until_seen(&a, GossipTopic::Consensus, "before the cut", &[&b]).await;

    // The link goes silent, then A's process goes away: B still holds its
    // connection to A (nothing tells it otherwise) when A's new process
    // dials in over a working link.
    relay.partition(true);
    a.stop().await;
    relay.partition(false);
    let a = TestNode::start(
        "A restarted",
        keys[0].clone(),
        loopback(),
        peers,
        &ids,
        limits,
    )
    .await;

    // gossipsub announces subscriptions on a peer's first connection only:
    // without the newest-connection rule B never tells the new A that it is
    // subscribed, and A publishes nothing to it.
    publish_until_seen(
        &a,
        GossipTopic::Consensus,
        "after the restart from A",
        &[&b],
    )
    .await;
    publish_until_seen(
        &b,
        GossipTopic::Consensus,
        "after the restart from B",
        &[&a],
    )
    .await;

    a.stop().await;
    b.stop().await;
    drop(relay);
}
