#!/usr/bin/env bash
# Four Custody nodes as containers on a private docker network, under a
# steady signed load, through one fault after another:
#
#   1. SIGKILL of a node, then restart
#   2. a node cut off from the network (docker network disconnect), then reconnected
#   2b. one link cut (two nodes that still reach the other two): each must
#      fetch the other's proposals from the nodes that voted for them
#   3. a 2-2 split (no block may be committed), then healed
#   4. a rolling restart of all four nodes
#   5. one node's clock 10 minutes ahead (its config's clock_offset_ms), then restored
#   6. bad input at one node's edges (random bytes to libp2p, oversized,
#      truncated and garbage transactions, replays)
#   7. quorum lost: two nodes stopped, then started again
#      (CUSTODY_CLUSTER_QUORUM_LOSS=0 skips it)
#   8. a validator's inbound packets dropped for 22 s (its peers keep a
#      half-open connection to it), then SIGKILL and restart; its signature
#      must be back in the other nodes' commit certificates within 5 s of
#      the restart, and with a second node then stopped the three others
#      (the restarted one among them) must keep committing
#   9. a stopped node's ledger store damaged on disk (its sled log
#      overwritten with zeros): `custody node check` must refuse it; `custody node repair`
#      (run from the image, on the node's volume) rebuilds it from two
#      other nodes' APIs; restarted, it must rejoin at the full height with
#      a chain that verifies, and the damaged copy must be kept aside,
#      byte for byte as repair found it
#  10. governance under load, five nodes: finance (prepared outside the
#      genesis) is voted in and its node starts from the genesis, syncs and
#      signs; health installs a next validator key (custody node next-key,
#      restart) and the others vote its rotation; public-security is voted
#      out (its chain must end at the removal and the others must close its
#      connections by the next height); a parameter is changed. Between two
#      consecutive blocks of the whole fault at most 5 s pass, and the final
#      chain, exported, verifies offline from the genesis across every
#      validator-set handoff
#
# During the split, one node is also flooded with valid transactions past
# its mempool limit (no block can drain it then).
#
# After each fault it waits for convergence and checks (custody-harness cluster
# check): the same block at every height on every node, every transaction
# acknowledged as committed present on every node, every node's chain
# verifies from the genesis, heights advance. It prints a table and exits
# non-zero on any violation, on a time-out, or when no Docker daemon is
# reachable. Traffic from the host goes only to 127.0.0.1 (the published
# ports); the nodes talk to each other on the docker network it creates.
# Containers, network and volumes are removed on every exit.
#
#   scripts/cluster-test.sh              # needs target/release/custody and custody-harness
#   CUSTODY_CLUSTER_KEEP=1 scripts/cluster-test.sh   # keep the work dir
#   CUSTODY_CLUSTER_ONLY=8 scripts/cluster-test.sh   # only fault 8 (or 1, 2, 2b, 3-7, 9, 10)
#   CUSTODY_CLUSTER_HALF_OPEN_SECONDS=3 ...          # fault 8's cut (default 22 s)
set -euo pipefail
cd "$(dirname "$0")/.."

# The whole run is bounded: past this, the run is stopped and fails.
TIME_LIMIT_SECONDS=${CUSTODY_CLUSTER_TIME_LIMIT:-780}

export CUSTODY_CLUSTER=${CUSTODY_CLUSTER:-custody-ct}
export CUSTODY_SUBNET=${CUSTODY_SUBNET:-172.29.77}
export CUSTODY_API_PORT_BASE=${CUSTODY_API_PORT_BASE:-2768}
export CUSTODY_P2P_PORT=${CUSTODY_P2P_PORT:-27600}
export CUSTODY_IMAGE=${CUSTODY_IMAGE:-custody:dev}

# The four genesis departments, then finance, voted in by fault 10.
DEPARTMENTS=(civil-affairs social-security health public-security finance)
NETWORK=$CUSTODY_CLUSTER-net
BIN=${CUSTODY_BINARY:-target/release/custody}
# The fault-test tools (`custody-harness cluster …`) live in the harness
# binary, apart from the product's `custody`.
HARNESS=${CUSTODY_HARNESS:-target/release/custody-harness}
started=$SECONDS

say() { printf '\n[cluster %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { echo "cluster test FAILED: $*" >&2; exit 1; }

if ! command -v docker >/dev/null 2>&1; then
    fail "docker is not installed: the container fault tests did NOT run"
fi
if ! docker info >/dev/null 2>&1; then
    fail "no Docker daemon is reachable (docker info failed): the container fault tests did NOT run"
fi
if command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    fail "neither docker-compose nor the docker compose plugin is installed"
fi
compose+=(-p "$CUSTODY_CLUSTER" -f docker-compose.yml)
if ! command -v jq >/dev/null 2>&1; then
    echo "installing jq (reads the nodes' JSON answers)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; } >/dev/null 2>&1 ||
        fail "jq is needed and could not be installed"
fi

container() { echo "$CUSTODY_CLUSTER-${DEPARTMENTS[$1]}"; }
api() { echo "http://127.0.0.1:${CUSTODY_API_PORT_BASE}$(($1 + 1))"; }
ip_of() { echo "$CUSTODY_SUBNET.$((11 + $1))"; }
ALL_NODES="$(api 0),$(api 1),$(api 2),$(api 3)"

work=$(mktemp -d /tmp/custody-cluster.XXXXXX)
table=$work/table.md
load_pid=
watchdog_pid=
status=1

remove_cluster() {
    "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    for i in 0 1 2 3 4; do docker rm -f "$(container "$i")" >/dev/null 2>&1 || true; done
    docker network rm "$NETWORK" >/dev/null 2>&1 || true
    for d in "${DEPARTMENTS[@]}"; do docker volume rm -f "$CUSTODY_CLUSTER-$d" >/dev/null 2>&1 || true; done
}

cleanup() {
    local code=$1
    trap - EXIT INT TERM
    if [[ -n $watchdog_pid ]]; then
        kill $(pgrep -P "$watchdog_pid") "$watchdog_pid" 2>/dev/null || true
    fi
    if [[ -n $load_pid ]] && kill -0 "$load_pid" 2>/dev/null; then
        touch "$work/stop"
        kill "$load_pid" 2>/dev/null || true
        wait "$load_pid" 2>/dev/null || true
    fi
    if [[ $code -ne 0 || $status -ne 0 ]]; then
        [[ -f ${table:-} ]] && { echo "table so far:" >&2; cat "$table" >&2; }
        for i in 0 1 2 3 4; do
            echo "----- $(container "$i") (last 25 log lines but gossip duplicates) -----" >&2
            docker logs "$(container "$i")" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' |
                grep -v 'already been published' | tail -n 25 | cut -c1-300 >&2 || true
        done
    fi
    remove_cluster
    if [[ -n ${CUSTODY_CLUSTER_KEEP:-} ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$code"
}
trap 'cleanup $?' EXIT
trap 'echo "cluster test interrupted" >&2; exit 130' INT TERM

# A watchdog: past the time limit the run is stopped (and cleaned up).
main_pid=$$
( sleep "$TIME_LIMIT_SECONDS"; echo "cluster test: time limit of ${TIME_LIMIT_SECONDS}s reached" >&2; kill -TERM "$main_pid" ) 2>/dev/null &
watchdog_pid=$!

custody() { "$BIN" "$@"; }
harness() { "$HARNESS" "$@"; }
# The node's own image runs the commands on its home volume: the same
# binary, paths and network as the node.
on_home() { # node args...: custody ARGS with the node's home mounted
    local node=$1
    shift
    docker run --rm --network "$NETWORK" --volumes-from "$(container "$node")" \
        --entrypoint /usr/local/bin/custody "$CUSTODY_IMAGE" "$@"
}
# Whether fault $1 runs: all of them, or only CUSTODY_CLUSTER_ONLY's.
runs() { [[ -z ${CUSTODY_CLUSTER_ONLY:-} || ${CUSTODY_CLUSTER_ONLY} == "$1" ]]; }
report=$work/bad-input.md
acked=$work/acked.tsv
passed=0
check() { # fault [timeout_seconds [nodes]]
    say "check after: $1"
    harness cluster check --net "$work/net" --nodes "${3:-$ALL_NODES}" --acked "$acked" \
        --fault "$1" --table "$table" --timeout-seconds "${2:-90}"
    passed=$((passed + 1))
}

if [[ ! -x $BIN || ! -x $HARNESS ]]; then
    say "building the release binaries"
    # The same invocation as scripts/test.sh's, so nothing is built twice.
    cargo build --workspace --all-targets --release
fi
say "building the image $CUSTODY_IMAGE (FROM scratch, from $BIN)"
scripts/build-image.sh

say "generating keys, genesis and configs (custody-harness cluster prepare)"
harness cluster prepare --dir "$work/net" --subnet "$CUSTODY_SUBNET" --joining 1
# Reads of blocks, members and proposals are signed; the harness reads as
# the auditor every node's api.auditor_keys names.
export CUSTODY_AUDITOR_KEY="$work/net/auditor.key"

say "starting four containers on $NETWORK ($CUSTODY_SUBNET.0/24)"
remove_cluster
"${compose[@]}" up --no-start >/dev/null 2>&1 || "${compose[@]}" up --no-start
for i in 0 1 2 3 4; do
    docker cp "$work/net/${DEPARTMENTS[$i]}/." "$(container "$i"):/home/custody/"
done
# All four at once, as an operator would start them (finance waits for
# its vote, fault 10).
docker start "$(container 0)" "$(container 1)" "$(container 2)" "$(container 3)" >/dev/null

echo "| fault | time to recover | acknowledged | found on every node | forks | lost | common height (chains verified) |" >"$table"
echo "|---|---|---|---|---|---|---|" >>"$table"
echo "| input | outcome | node afterwards |" >"$report"
echo "|---|---|---|" >>"$report"

check "start (no fault)" 60

say "starting the load: admins of three departments, submitting through all four nodes"
harness cluster load --net "$work/net" --nodes "$ALL_NODES" \
    --signers civil-affairs,social-security,health --acked "$acked" \
    --stop-file "$work/stop" --seconds-max "$TIME_LIMIT_SECONDS" 2>"$work/load.log" &
load_pid=$!
sleep 6

if runs 1; then
    say "fault 1: SIGKILL ${DEPARTMENTS[2]}, restart after 5 s"
    docker kill -s KILL "$(container 2)" >/dev/null
    sleep 5
    docker start "$(container 2)" >/dev/null
    check "SIGKILL of ${DEPARTMENTS[2]} and restart"
fi

if runs 2; then
    say "fault 2: ${DEPARTMENTS[1]} cut off from the network for 10 s"
    docker network disconnect "$NETWORK" "$(container 1)"
    sleep 10
    docker network connect --ip "$(ip_of 1)" "$NETWORK" "$(container 1)"
    check "${DEPARTMENTS[1]} cut off (network disconnect) and reconnected"
fi

if runs 2b; then
    say "fault 2b: the link between ${DEPARTMENTS[0]} and ${DEPARTMENTS[1]} cut for 20 s (both still reach the other two)"
    # Members do not relay each other's proposals: each of the two must fetch
    # the other's proposals from the nodes that voted for them.
    link_rules() { # action (-I or -D)
        local action=$1 pair i peer pid
        for pair in "0 1" "1 0"; do
            read -r i peer <<<"$pair"
            pid=$(docker inspect -f '{{.State.Pid}}' "$(container "$i")")
            nsenter -t "$pid" -n iptables "$action" INPUT -s "$(ip_of "$peer")" -j DROP
            nsenter -t "$pid" -n iptables "$action" OUTPUT -d "$(ip_of "$peer")" -j DROP
        done
    }
    fetched() { # node: its custody_fetched_proposals_total (HTTP/1.0 GET over bash's /dev/tcp)
        local port=${CUSTODY_API_PORT_BASE}$(($1 + 1)) value
        exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot reach $(api "$1")"
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        value=$(timeout 5 awk '$1 == "custody_fetched_proposals_total" { print $2 }' <&3)
        exec 3>&-
        [[ $value =~ ^[0-9]+$ ]] || fail "no custody_fetched_proposals_total in $(api "$1")/metrics"
        echo "$value"
    }
    command -v nsenter >/dev/null && command -v iptables >/dev/null ||
        fail "nsenter and iptables are needed for the cut link"
    fetched_before=$(( $(fetched 0) + $(fetched 1) ))
    link_rules -I
    sleep 20
    fetched_during=$(( $(fetched 0) + $(fetched 1) - fetched_before ))
    link_rules -D
    say "proposals fetched by ${DEPARTMENTS[0]} and ${DEPARTMENTS[1]} while cut: $fetched_during"
    (( fetched_during > 0 )) || fail "no proposal was fetched across the cut link"
    check "link ${DEPARTMENTS[0]}-${DEPARTMENTS[1]} cut (proposals fetched: $fetched_during), restored"
fi

if runs 3; then
    say "fault 3: 2-2 split ({${DEPARTMENTS[0]}, ${DEPARTMENTS[1]}} | {${DEPARTMENTS[2]}, ${DEPARTMENTS[3]}})"
    # Each node's own network namespace drops the other half's packets, so
    # each half still sees itself.
    split_rules() { # action (-I or -D)
        local action=$1 i peer pid
        for i in 0 1 2 3; do
            pid=$(docker inspect -f '{{.State.Pid}}' "$(container "$i")")
            for peer in 0 1 2 3; do
                if (( (i < 2) != (peer < 2) )); then
                    nsenter -t "$pid" -n iptables "$action" INPUT -s "$(ip_of "$peer")" -j DROP
                    nsenter -t "$pid" -n iptables "$action" OUTPUT -d "$(ip_of "$peer")" -j DROP
                fi
            done
        done
    }
    command -v nsenter >/dev/null && command -v iptables >/dev/null ||
        fail "nsenter and iptables are needed for the 2-2 split"
    split_rules -I
    harness cluster frozen --nodes "$ALL_NODES" --settle-seconds 4 --seconds 5
    passed=$((passed + 1))
    say "during the split: flood ${DEPARTMENTS[3]} with valid transactions past its mempool limit"
    harness cluster flood --net "$work/net" --node "$(api 3)" --signer "${DEPARTMENTS[3]}" \
        --pid "$(docker inspect -f '{{.State.Pid}}' "$(container 3)")" --report "$report"
    harness cluster frozen --nodes "$ALL_NODES" --settle-seconds 0 --seconds 5
    passed=$((passed + 2))
    split_rules -D
    check "2-2 split with a mempool flood (no commit during it), healed" 120
fi

if runs 4; then
    say "fault 4: rolling restart (SIGTERM, start, wait for catch-up) of all four"
    for i in 0 1 2 3; do
        docker restart -t 15 "$(container "$i")" >/dev/null
        check "rolling restart: ${DEPARTMENTS[$i]}"
    done
fi

if runs 5; then
    say "fault 5: ${DEPARTMENTS[3]}'s clock 10 minutes ahead (clock_offset_ms), then restored"
    set_clock_offset() { # node offset_ms
        local name config
        name=$(container "$1")
        config=$work/config-$1.toml
        docker stop -t 15 "$name" >/dev/null
        docker cp "$name:/home/custody/config.toml" "$config"
        sed -i "s/^clock_offset_ms = .*/clock_offset_ms = $2/" "$config"
        grep -q "^clock_offset_ms = $2\$" "$config" || fail "could not set clock_offset_ms in $config"
        docker cp "$config" "$name:/home/custody/config.toml"
        docker start "$name" >/dev/null
    }
    set_clock_offset 3 600000
    sleep 10
    check "clock of ${DEPARTMENTS[3]} +10 min (3 nodes decide)"
    set_clock_offset 3 0
    check "clock of ${DEPARTMENTS[3]} restored"
fi

if runs 6; then
    say "fault 6: bad input at ${DEPARTMENTS[0]}'s edges"
    harness cluster bad-input --net "$work/net" --node "$(api 0)" \
        --p2p "127.0.0.1:$CUSTODY_P2P_PORT" --signer "${DEPARTMENTS[3]}" --acked "$acked" --report "$report"
    passed=$((passed + $(grep -c '^| .* | answers (height' "$report") - 1))
    check "bad input at ${DEPARTMENTS[0]}"
fi

if runs 7 && [[ ${CUSTODY_CLUSTER_QUORUM_LOSS:-1} == 1 ]]; then
    say "fault 7: quorum lost: ${DEPARTMENTS[1]} and ${DEPARTMENTS[2]} stopped for 5 s, then started"
    docker stop -t 15 "$(container 1)" "$(container 2)" >/dev/null
    sleep 5
    docker start "$(container 1)" "$(container 2)" >/dev/null
    check "quorum lost (two nodes stopped) and restored" 60
fi

if runs 8; then
    # Longer than the node's silence bound (5 s) by default, so that the
    # other three have closed their connections by the restart; shorter
    # (e.g. 3) tests the newest-connection rule instead.
    cut_seconds=${CUSTODY_CLUSTER_HALF_OPEN_SECONDS:-22}
    say "fault 8: ${DEPARTMENTS[2]}'s inbound packets dropped for $cut_seconds s, SIGKILL and restart; then ${DEPARTMENTS[3]} stopped"
    # Only the restarted node drops packets, and only inbound ones: its peers
    # go on sending into connections that no longer deliver, and still count
    # it as connected when its new process dials them.
    inbound_rules() { # node action (-I or -D)
        local node=$1 action=$2 pid peer
        pid=$(docker inspect -f '{{.State.Pid}}' "$(container "$node")")
        for peer in 0 1 2 3; do
            (( peer == node )) && continue
            nsenter -t "$pid" -n iptables "$action" INPUT -s "$(ip_of "$peer")" -j DROP
        done
    }
    command -v nsenter >/dev/null && command -v iptables >/dev/null ||
        fail "nsenter and iptables are needed to drop inbound packets"
    peers_at() { # node: its custody_peers (HTTP/1.0 GET over bash's /dev/tcp)
        local port=${CUSTODY_API_PORT_BASE}$(($1 + 1)) value
        exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        value=$(timeout 5 awk '$1 == "custody_peers" { print $2 }' <&3)
        exec 3>&-
        echo "$value"
    }
    cut_ms=$(date +%s%3N)
    inbound_rules 2 -I
    # While the cut lasts, watch how long civil-affairs still counts health
    # as connected (reported, not judged: the cut may be shorter).
    noticed_ms=
    while (( $(date +%s%3N) < cut_ms + cut_seconds * 1000 )); do
        if [[ -z $noticed_ms && $(peers_at 0) == 2 ]]; then
            noticed_ms=$(( $(date +%s%3N) - cut_ms ))
        fi
        sleep 0.2
    done
    if [[ -n $noticed_ms ]]; then
        say "${DEPARTMENTS[0]} stopped counting ${DEPARTMENTS[2]} as connected $noticed_ms ms into the cut"
    else
        say "${DEPARTMENTS[0]} still counted ${DEPARTMENTS[2]} as connected at the end of the $cut_seconds s cut"
    fi
    # The kill takes the node's network namespace, and its rules, with it.
    docker kill -s KILL "$(container 2)" >/dev/null
    docker start "$(container 2)" >/dev/null
    heal_ms=$(date +%s%3N)
    # A late signature fails the run, after the rest of the fault has run
    # (so that one run shows both figures).
    rejoined=1
    harness cluster rejoin --net "$work/net" --nodes "$(api 0),$(api 1),$(api 3)" \
        --department "${DEPARTMENTS[2]}" --heal-unix-ms "$heal_ms" --within-seconds 5 || rejoined=0
    docker stop -t 15 "$(container 3)" >/dev/null
    check "${DEPARTMENTS[2]} inbound cut $cut_seconds s, SIGKILL, restart; ${DEPARTMENTS[3]} stopped (3 nodes decide)" 20 \
        "$(api 0),$(api 1),$(api 2)"
    docker start "$(container 3)" >/dev/null
    check "${DEPARTMENTS[3]} started again"
    (( rejoined )) || fail "${DEPARTMENTS[2]}'s signature was not back in the certificates within 5 s of its restart"
    passed=$((passed + 1))
fi

if runs 9; then
    say "fault 9: ${DEPARTMENTS[1]} stopped, its ledger store damaged on disk, repaired from its peers"
    docker stop -t 15 "$(container 1)" >/dev/null
    ledger=/home/custody/data/ledger
    docker cp "$(container 1):$ledger/db" "$work/db-intact"
    # Zeros over the whole file, its length kept: what a failed disk returns.
    head -c "$(stat -c %s "$work/db-intact")" /dev/zero >"$work/db-damaged"
    docker cp "$work/db-damaged" "$(container 1):$ledger/db"
    if on_home 1 node check --home /home/custody >"$work/check-damaged.txt" 2>&1; then
        cat "$work/check-damaged.txt" >&2
        fail "node check accepted ${DEPARTMENTS[1]}'s damaged store"
    fi
    say "node check refused the damaged store: $(tail -n 1 "$work/check-damaged.txt" | cut -c1-160)"
    # Opening a store lets the engine rewrite a log it cannot read, so the
    # copy to compare with is the store as repair finds it.
    docker cp "$(container 1):$ledger/db" "$work/db-before-repair"
    on_home 1 node repair --home /home/custody --json \
        --peer "http://$(ip_of 0):26680" --peer "http://$(ip_of 2):26680" >"$work/repair.json" ||
        fail "node repair failed"
    kept=$(sed -n 's/^  "damaged_store_kept_at": "\(.*\)",$/\1/p' "$work/repair.json")
    repaired_height=$(sed -n 's/^  "height": \([0-9]*\),$/\1/p' "$work/repair.json")
    [[ -n $kept && -n $repaired_height ]] || { cat "$work/repair.json" >&2; fail "node repair did not report what it did"; }
    say "repaired ${DEPARTMENTS[1]} to height $repaired_height; damaged store kept at $kept"
    docker cp "$(container 1):$kept/db" "$work/db-kept"
    cmp -s "$work/db-kept" "$work/db-before-repair" || fail "the damaged store was not kept as repair found it"
    on_home 1 node check --home /home/custody >/dev/null || fail "node check refused the repaired store"
    docker start "$(container 1)" >/dev/null
    check "${DEPARTMENTS[1]}'s store damaged, repaired from peers (height $repaired_height), restarted"
fi

if runs 10; then
    say "fault 10: governance under load: finance voted in, health's validator key rotated, public-security voted out, a parameter changed"
    governor() { echo "$work/net/${DEPARTMENTS[$1]}/members/governor.key"; }
    height_at() { custody node status --node "$(api "$1")" --json | jq -r .height; }
    # vote PROPOSER "APPROVERS" CHANGE...: the change proposed by one
    # department's governance admin and approved by the others in turn
    # until it executes; prints the height of the block that executed it.
    vote() {
        local proposer=$1 approvers=$2 out id a
        shift 2
        out=$(custody gov propose "$@" --key "$(governor "$proposer")" --node "$(api "$proposer")" --wait) ||
            fail "gov propose $* failed: $out"
        id=$(sed -n 's/^proposal id \([0-9a-f]*\);.*/\1/p' <<<"$out")
        [[ -n $id ]] || fail "gov propose printed no proposal id: $out"
        for a in $approvers; do
            [[ $(custody gov show "$id" --json --key "$(governor "$a")" --node "$(api "$a")" | jq -r .status) == executed ]] && break
            custody gov approve "$id" --key "$(governor "$a")" --node "$(api "$a")" --wait >/dev/null ||
                fail "gov approve $id by ${DEPARTMENTS[$a]} failed"
        done
        custody gov show "$id" --json --key "$(governor "$proposer")" --node "$(api "$proposer")" >"$work/proposal.json"
        [[ $(jq -r .status "$work/proposal.json") == executed ]] ||
            { cat "$work/proposal.json" >&2; fail "proposal $id ($*) did not execute"; }
        jq -r .proposal.executed_at "$work/proposal.json"
    }
    from_height=$(height_at 0)

    added=$(vote 0 "1 2" add-department --contribution "$work/net/finance/contribution.json")
    say "finance voted in at height $added; starting its node from the genesis"
    docker start "$(container 4)" >/dev/null
    harness cluster rejoin --net "$work/net" --nodes "$(api 0),$(api 1),$(api 2)" \
        --department finance --heal-unix-ms "$(date +%s%3N)" --within-seconds 90 --timeout-seconds 120 ||
        fail "finance's node did not sign a certificate"
    check "finance voted in at height $added: its node synced from the genesis and signs" 90 \
        "$(api 0),$(api 1),$(api 2),$(api 3),$(api 4)"

    on_home 2 node next-key --home /home/custody --json >"$work/next-key.json" || fail "node next-key failed"
    docker restart -t 15 "$(container 2)" >/dev/null
    check "health restarted holding its next validator key" 60 "$(api 0),$(api 1),$(api 2),$(api 3),$(api 4)"
    rotated=$(vote 2 "0 1 4" rotate-keys --department health \
        --validator-key "pub:$(jq -r .validator_key "$work/next-key.json")")
    say "health's validator key rotated at height $rotated"
    harness cluster rejoin --net "$work/net" --nodes "$(api 0),$(api 1),$(api 4)" \
        --department health --heal-unix-ms "$(date +%s%3N)" --within-seconds 10 ||
        fail "health's new validator key does not sign"
    check "health's validator key rotated at height $rotated" 60 "$(api 0),$(api 1),$(api 2),$(api 3),$(api 4)"

    removed=$(vote 0 "1 2 4" remove-department --department public-security)
    say "public-security voted out at height $removed"
    harness cluster removed --removed "$(api 3)" --nodes "$(api 0),$(api 1),$(api 2),$(api 4)" \
        --executed "$removed" || fail "public-security was not cut off at its removal"
    passed=$((passed + 1))
    ALL_NODES="$(api 0),$(api 1),$(api 2),$(api 4)"

    changed=$(vote 1 "0 2 4" parameters --max-block-txs 4000)
    say "max_block_txs changed at height $changed"
    check "public-security voted out at height $removed, max_block_txs changed at height $changed"
    harness cluster pauses --node "$(api 0)" --from-height "$from_height" --max-gap-ms 5000 ||
        fail "the chain paused longer than 5 s during the governance changes"
    passed=$((passed + 1))
fi

say "stopping the load"
touch "$work/stop"
wait "$load_pid" || fail "the load tool failed (see above)"
load_pid=
tail -n 1 "$work/load.log"
check "end of run (load stopped)"
say "exporting the final chain and verifying it offline from the genesis"
custody chain export --node "$(api 0)" --genesis "$work/net/genesis.json" --to "$work/final.export" >/dev/null ||
    fail "chain export failed"
custody audit verify --export "$work/final.export" \
    --genesis-hash "$(jq -r .genesis_hash "$work/net/testnet.json")" --json >"$work/verify.json" ||
    { cat "$work/verify.json" >&2; fail "the final chain does not verify offline"; }
say "audit verify: $(jq -c . "$work/verify.json" | cut -c1-300)"
passed=$((passed + 1))

status=0
say "done in $((SECONDS - started)) s"
echo
echo "Faults (every row: zero forks and zero lost transactions):"
cat "$table"
echo
echo "Bad input:"
cat "$report"
if [[ -n ${CUSTODY_CLUSTER_RESULTS:-} ]]; then
    { cat "$table"; echo; cat "$report"; } >"$CUSTODY_CLUSTER_RESULTS"
fi
echo
echo "cluster: $passed passed, 0 failed"
