#!/usr/bin/env bash
# Peak memory of registering and opening a large document.
#
# Starts a one-department testnet node, writes SIZE_MIB MiB of random bytes,
# runs `custody doc register` and `custody doc open` under /usr/bin/time -v,
# checks the opened copy is identical, and prints the peak resident set of
# each CLI run and of the node (VmHWM from /proc, covering both runs).
#
#   cargo build --release -p custody-cli
#   scripts/doc_rss.sh                  # 1 GiB
#   SIZE_MIB=64 scripts/doc_rss.sh      # quicker
#
# Needs: /usr/bin/time (GNU time), curl, jq, cmp.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
BASE_PORT=${BASE_PORT:-27610}
BIN=${CUSTODY_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/custody}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/custody-doc-rss.XXXXXX")
NODE_PID=""

cleanup() {
    if [ -n "$NODE_PID" ]; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" testnet init --departments 1 --fast --dir "$WORK/net" --base-port "$BASE_PORT" --json > "$WORK/manifest.json"
DEPT=$(jq -r '.nodes[0].department' "$WORK/manifest.json")
API=$(jq -r '.nodes[0].api_url' "$WORK/manifest.json")
NODE_HOME="$WORK/net/$DEPT"

RUST_LOG=warn "$BIN" node start --home "$NODE_HOME" 2> "$WORK/node.log" &
NODE_PID=$!

for _ in $(seq 1 300); do
    height=$(curl -fsS "$API/v1/status" 2>/dev/null | jq -r '.height' 2>/dev/null || echo 0)
    [ "${height:-0}" -ge 1 ] 2>/dev/null && break
    sleep 0.1
done
node_start_kib=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status")

head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/document.bin"

common=(--node "$API" --key "$NODE_HOME/members/clerk.key" --department-key "$NODE_HOME/keys/encryption.key")

start=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/register.time" "$BIN" doc register "$WORK/document.bin" \
    --title "RSS check" --record-type test --classification internal --work-dir "$WORK" \
    --json "${common[@]}" > "$WORK/register.json"
register_s=$(echo "$(date +%s.%N) - $start" | bc)
DOC=$(jq -r '.document' "$WORK/register.json")

start=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/open.time" "$BIN" doc open "$DOC" -o "$WORK/opened.bin" \
    --purpose "memory measurement" --json "${common[@]}" > "$WORK/open.json"
open_s=$(echo "$(date +%s.%N) - $start" | bc)

cmp "$WORK/document.bin" "$WORK/opened.bin"

peak() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
node_kib=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status")

echo "document: $SIZE_MIB MiB ($DOC), opened copy identical"
printf 'cli  doc register: peak RSS %6d KiB (%.1f MiB), %.1f s\n' "$(peak "$WORK/register.time")" "$(echo "$(peak "$WORK/register.time") / 1024" | bc -l)" "$register_s"
printf 'cli  doc open    : peak RSS %6d KiB (%.1f MiB), %.1f s\n' "$(peak "$WORK/open.time")" "$(echo "$(peak "$WORK/open.time") / 1024" | bc -l)" "$open_s"
printf 'node (both runs) : peak RSS %6d KiB (%.1f MiB); %d KiB before the document\n' "$node_kib" "$(echo "$node_kib / 1024" | bc -l)" "$node_start_kib"
