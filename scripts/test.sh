#!/usr/bin/env bash
# The project's one test command: formatting, lints, then every test
# (unit, property, simulator, crash and multi-node), all from one release build.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

# Every cargo command below selects the whole workspace (the harness
# enables the ledger's and oversight's `testkit` features), so all of them
# resolve the same features and the crates are compiled once: a `-p CRATE`
# or a build without the tests' dev-dependencies would build them again.
step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "build (release, reused by every test below)"
cargo build --workspace --all-targets --release

step "headless Chromium for the pages' browser tests (installed when missing)"
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # A CJK font so that the Chinese pages render (and screenshot) legibly.
    $SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei
fi

step "cargo test"
cargo test --workspace --release

step "API fuzz (schemathesis against a live node, over /v1/openapi.json)"
scripts/api_fuzz.sh

step "cluster fault tests (four containers; needs a Docker daemon)"
scripts/cluster-test.sh
