#!/usr/bin/env bash
# Fills examples/compose/context/ with a static troupe binary and the example
# modules, building them if they are missing. Run it before
# `docker-compose up --build`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/troupe-target}"
static="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/troupe"
guests="$CARGO_TARGET_DIR/wasm32-wasip1/release"
if [ ! -x "$static" ]; then
  rustup target add x86_64-unknown-linux-musl
  # gcc compiles wasmtime's few C files for musl; musl-tools is not needed.
  (cd "$root" && CC_x86_64_unknown_linux_musl=gcc CARGO_PROFILE_RELEASE_DEBUG=0 \
     CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked \
     --target x86_64-unknown-linux-musl -p troupe-cli --bin troupe)
fi
if [ ! -f "$guests/workers.wasm" ] || [ ! -f "$guests/heartbeat.wasm" ] ||
   [ ! -f "$guests/kv-server.wasm" ] || [ ! -f "$guests/kv-client.wasm" ]; then
  (cd "$root/examples" && cargo build --release --locked --target wasm32-wasip1)
fi
mkdir -p "$here/context"
cp "$static" "$here/context/troupe"
for m in workers heartbeat hello kv-server kv-client; do cp "$guests/$m.wasm" "$here/context/"; done
ls -l "$here/context"
