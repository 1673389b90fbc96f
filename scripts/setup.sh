#!/usr/bin/env bash
# Installs what Troupe needs on a fresh Debian machine with rustup (the part
# of scripts/install.sh a user needs), builds the VM and the example guests,
# and runs the flagship example (ping-pong).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/install.sh --minimal

step "building the troupe VM (release; the first build takes several minutes)"
# The whole host workspace, as scripts/test.sh builds it: building one package
# alone would give wasmtime's dependencies other features, and test.sh would
# compile wasmtime again.
cargo build --release --locked

step "building the guests for wasm32-wasip1 (the examples among them)"
build_guests --locked

step "running the flagship example: troupe run ping-pong.wasm 100000"
"$TROUPE" run "$GUESTS/ping-pong.wasm" 100000
echo
echo "Done. The troupe binary is $TROUPE; the examples are in $GUESTS."
