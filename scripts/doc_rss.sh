#!/usr/bin/env bash
# Peak memory of registering and opening a large document.
#
# Default: starts a one-department testnet node, writes SIZE_MIB MiB of
# random bytes, runs `custody doc register` and `custody doc open` under
# /usr/bin/time -v, checks the opened copy is identical, and prints the peak
# resident set of each CLI run and of the node (VmHWM from /proc, covering
# both runs).
#
# FETCH=1: starts a four-department testnet instead; department 0 registers
# the document and grants department 1, whose clerk opens it, so that
# department 1's node first fetches the blob from department 0's node over
# libp2p (/custody/blob/1). Prints both nodes' peaks.
#
#   cargo build --release -p custody-cli
#   scripts/doc_rss.sh                  # 1 GiB, one node
#   FETCH=1 scripts/doc_rss.sh          # 1 GiB, fetched between nodes
#   SIZE_MIB=64 scripts/doc_rss.sh      # quicker
#
# Needs: /usr/bin/time (GNU time), curl, jq, bc, cmp.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
FETCH=${FETCH:-0}
BASE_PORT=${BASE_PORT:-27610}
BIN=${CUSTODY_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/custody}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/custody-doc-rss.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$FETCH" = 1 ]; then departments=4; else departments=1; fi
"$BIN" testnet init --departments "$departments" --fast --dir "$WORK/net" --base-port "$BASE_PORT" --json > "$WORK/manifest.json"

for i in $(seq 0 $((departments - 1))); do
    dept=$(jq -r ".nodes[$i].department" "$WORK/manifest.json")
    RUST_LOG=warn "$BIN" node start --home "$WORK/net/$dept" 2> "$WORK/node-$i.log" &
    PIDS+=($!)
done

wait_for() { # URL JQ-CONDITION
    for _ in $(seq 1 600); do
        if curl -fsS "$1" 2>/dev/null | jq -e "$2" > /dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $2 at $1" >&2
    return 1
}

DEPT0=$(jq -r '.nodes[0].department' "$WORK/manifest.json")
API0=$(jq -r '.nodes[0].api_url' "$WORK/manifest.json")
HOME0="$WORK/net/$DEPT0"
wait_for "$API0/v1/status" ".height >= 1 and (.peers | length) == $((departments - 1))"
if [ "$FETCH" = 1 ]; then
    READER=1
else
    READER=0
fi
DEPTR=$(jq -r ".nodes[$READER].department" "$WORK/manifest.json")
APIR=$(jq -r ".nodes[$READER].api_url" "$WORK/manifest.json")
HOMER="$WORK/net/$DEPTR"
node_start_kib=$(awk '/VmHWM/ {print $2}' "/proc/${PIDS[$READER]}/status")

head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/document.bin"

as0=(--node "$API0" --key "$HOME0/members/clerk.key" --department-key "$HOME0/members/department.key")
asr=(--node "$APIR" --key "$HOMER/members/clerk.key" --department-key "$HOMER/members/department.key")

start=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/register.time" "$BIN" doc register "$WORK/document.bin" \
    --title "RSS check" --record-type test --classification internal --work-dir "$WORK" \
    --json "${as0[@]}" > "$WORK/register.json"
register_s=$(echo "$(date +%s.%N) - $start" | bc)
DOC=$(jq -r '.document' "$WORK/register.json")

if [ "$FETCH" = 1 ]; then
    "$BIN" doc grant "$DOC" --to "$DEPTR" --until +1h --json "${as0[@]}" > /dev/null
    wait_for "$APIR/v1/documents/$DOC" '(.grants | length) == 1'
fi

start=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/open.time" "$BIN" doc open "$DOC" -o "$WORK/opened.bin" \
    --purpose "memory measurement" --json "${asr[@]}" > "$WORK/open.json"
open_s=$(echo "$(date +%s.%N) - $start" | bc)

cmp "$WORK/document.bin" "$WORK/opened.bin"

peak() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
mib() { echo "$1 / 1024" | bc -l; }
node0_kib=$(awk '/VmHWM/ {print $2}' "/proc/${PIDS[0]}/status")

echo "document: $SIZE_MIB MiB ($DOC), opened copy identical"
printf 'cli  doc register (%s): peak RSS %6d KiB (%.1f MiB), %.1f s\n' "$DEPT0" "$(peak "$WORK/register.time")" "$(mib "$(peak "$WORK/register.time")")" "$register_s"
printf 'cli  doc open     (%s): peak RSS %6d KiB (%.1f MiB), %.1f s\n' "$DEPTR" "$(peak "$WORK/open.time")" "$(mib "$(peak "$WORK/open.time")")" "$open_s"
printf 'node %s (upload%s): peak RSS %6d KiB (%.1f MiB)\n' "$DEPT0" "$([ "$FETCH" = 1 ] && echo ", serving the fetch" || echo ", download")" "$node0_kib" "$(mib "$node0_kib")"
if [ "$FETCH" = 1 ]; then
    noder_kib=$(awk '/VmHWM/ {print $2}' "/proc/${PIDS[$READER]}/status")
    printf 'node %s (fetch over libp2p, download): peak RSS %6d KiB (%.1f MiB); %d KiB before\n' "$DEPTR" "$noder_kib" "$(mib "$noder_kib")" "$node_start_kib"
else
    printf 'node %s: %d KiB before the document\n' "$DEPT0" "$node_start_kib"
fi
