#!/usr/bin/env bash
# Installs what Troupe needs on a fresh Debian machine with rustup, builds the
# VM and the examples, and runs the flagship example (ping-pong).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step "installing the wasm32-wasip1 Rust target"
rustup target add wasm32-wasip1

step "installing Go 1.23 (for Go guests; from bookworm-backports)"
install_go

raise_map_count
install_build_deps

step "building the troupe VM (release; the first build takes several minutes)"
cargo build --release --locked -p troupe-cli

step "building the example guests for wasm32-wasip1"
(cd examples && cargo build --release --locked --target wasm32-wasip1)

step "running the flagship example: troupe run ping-pong.wasm 100000"
"$TROUPE" run "$GUESTS/ping-pong.wasm" 100000
echo
echo "Done. The troupe binary is $TROUPE; the examples are in $GUESTS."
