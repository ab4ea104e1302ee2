#!/usr/bin/env bash
# Schema-based fuzzing of a live node's HTTP API: starts a one-department
# network with the release binary, then runs schemathesis over the node's
# own description (GET /v1/openapi.json). Fails on any 5xx answer, any
# answer that does not fit the described schema, and any status the
# description does not list. The node is always stopped.
#
#   scripts/api_fuzz.sh                      # about 150 s of fuzzing
#   API_FUZZ_SECONDS=600 scripts/api_fuzz.sh # longer
#   API_FUZZ_SEED=42 scripts/api_fuzz.sh     # replay a run's seed
#
# Signed routes are fuzzed past the caller check: the hooks in
# scripts/api_fuzz_hooks.py sign each request to a signed route with the
# testnet clerk's member key (x-custody-auth, and x-custody-upload for a
# blob upload), by the node's clock rules. At the end the script prints how
# many cases went to each route class (signed, open), and how many signed
# cases got past the door.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${API_FUZZ_SECONDS:-150}
SCHEMATHESIS_VERSION=4.32.5
# ed25519 for the hooks' signatures.
CRYPTOGRAPHY_VERSION=50.0.2
VENV=${API_FUZZ_VENV:-/opt/custody-fuzz-venv}
BIN=${CUSTODY_BIN:-target/release/custody}
# Longest wait for the node to answer after it is started.
NODE_START_WAIT_S=60
# Longest wait for the node to stop before it is killed.
NODE_STOP_WAIT_S=10

install_schemathesis() {
    if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
        && "$VENV/bin/python" -c "import cryptography, sys; sys.exit(cryptography.__version__ != '$CRYPTOGRAPHY_VERSION')" 2>/dev/null; then
        return
    fi
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        echo "installing python3-venv (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    echo "installing schemathesis $SCHEMATHESIS_VERSION and cryptography $CRYPTOGRAPHY_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
}

install_schemathesis
if [ ! -x "$BIN" ]; then
    # The same invocation as scripts/test.sh's, so nothing is built twice.
    cargo build --workspace --all-targets --release
fi

work=$(mktemp -d)
node_pid=""
stop_node() {
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 $((NODE_STOP_WAIT_S * 10))); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$node_pid" 2>/dev/null; then
            echo "the node did not stop within ${NODE_STOP_WAIT_S} s; killing it"
            kill -KILL "$node_pid" 2>/dev/null || true
        fi
        wait "$node_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_node EXIT

# Two free ports on loopback (peers, API) for the one node.
base_port=$(python3 - <<'EOF'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    if port >= 65535:
        continue
    try:
        t = socket.socket(); t.bind(("0.0.0.0", port + 1)); t.close()
        u = socket.socket(); u.bind(("0.0.0.0", port)); u.close()
    except OSError:
        continue
    print(port)
    break
EOF
)

"$BIN" testnet init --dir "$work/net" --departments 1 --fast \
    --base-port "$base_port" --chain-id custody-fuzz --json > "$work/manifest.json"
read -r home api_url chain_id < <(python3 -c '
import json, sys
manifest = json.load(open(sys.argv[1]))
node = manifest["nodes"][0]
print(node["home"], node["api_url"], manifest["chain_id"])' "$work/manifest.json")

"$BIN" node start --home "$home" > "$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 $((NODE_START_WAIT_S * 10))); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$api_url/v1/openapi.json" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "the node exited at start:"; tail -n 40 "$work/node.log"; exit 1
    fi
    sleep 0.1
done

seed=${API_FUZZ_SEED:-$RANDOM}
echo "fuzzing $api_url for ${FUZZ_SECONDS} s (seed $seed)"
status=0
started_s=$(date +%s)
hooks_dir="$PWD/scripts"
# From the scratch directory: schemathesis keeps its cache in the current one.
(cd "$work" && \
    PYTHONPATH="$hooks_dir" SCHEMATHESIS_HOOKS=api_fuzz_hooks \
    API_FUZZ_URL="$api_url" API_FUZZ_CHAIN_ID="$chain_id" \
    API_FUZZ_MEMBER_KEY="$home/members/clerk.key" API_FUZZ_COUNTS="$work/counts.json" \
    "$VENV/bin/schemathesis" run "$api_url/v1/openapi.json" \
    --url "$api_url" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance \
    --max-time "$FUZZ_SECONDS" \
    --seed "$seed" \
    --workers 1 \
    --no-color \
    --report junit --report-junit-path "$work/junit.xml") 2>&1 | tee "$work/fuzz.log" || status=$?

# Cases (schemathesis' summary) and failing operations (its JUnit report).
cases=$(grep -oE '[0-9]+ generated' "$work/fuzz.log" | tail -n 1 | cut -d' ' -f1 || true)
failing=$(python3 - "$work/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("unknown")
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
print(sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites))
EOF
)
elapsed_s=$(( $(date +%s) - started_s ))
echo "API fuzz: ${cases:-unknown} cases, ${failing} failing operations, ${elapsed_s} s (seed $seed)"
python3 - "$work/counts.json" <<'EOF'
import json, sys
try:
    counts = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("cases per route class: unknown (the hooks wrote no counts)")
    sys.exit(0)
signed, open_ = counts["signed"], counts["open"]
print(f"cases per route class: signed {signed['cases']} "
      f"({signed['past_the_door']} past the caller check, {signed['at_the_door']} refused at it), "
      f"open {open_['cases']}")
EOF

if [ "$status" -ne 0 ]; then
    echo "API fuzz failed (schemathesis exit $status); the node's warnings and errors:"
    grep -E "WARN|ERROR" "$work/node.log" | tail -n 40 || true
    exit 1
fi
echo "API fuzz passed"
