#!/usr/bin/env bash
# The HTTP benchmark: the same small JSON endpoint on Go's net/http and on
# Rust's axum (benches/http/{go,rust}), each native and in a Troupe process,
# at 1, 50 and 500 connections. Writes benches/results/http.md and http.json.
#   benches/http.sh --quick          # smoke run: a few seconds after the builds
#   benches/http.sh                  # full run: 3 x 3 s per cell, about 2 min
#   benches/http.sh --conns 50 --secs 10 --reps 5
# Builds (release) the VM of this checkout (unless TROUPE_BIN is set), both
# servers for both targets and the runner, in CARGO_TARGET_DIR (default
# /var/tmp/troupe-target).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
source "$repo/scripts/env.sh"
target="$CARGO_TARGET_DIR"

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
ulimit -Sn "$hard" 2>/dev/null || echo "http.sh: warning: cannot raise ulimit -n to $hard" >&2

echo "http.sh: building the runner, the VM and the servers (release) ..." >&2
cargo build --release --quiet --locked --manifest-path "$here/Cargo.toml" --bin http-bench
if [ -z "${TROUPE_BIN:-}" ]; then
  cargo build --release --quiet --locked --manifest-path "$repo/Cargo.toml" --bin troupe
  export TROUPE_BIN="$target/release/troupe"
fi
cargo build --release --quiet --locked --manifest-path "$WASM_MANIFEST" \
  --target wasm32-wasip1 -p http-bench-axum
cargo build --release --quiet --locked --manifest-path "$WASM_MANIFEST" -p http-bench-axum
out="$target/http-bench"
mkdir -p "$out"
(cd "$here/http/go" &&
  GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local "$TROUPE_GO" build -o "$out/go-native" . &&
  GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
    "$TROUPE_GO" build -o "$out/go.wasm" .)

exec "$target/release/http-bench" \
  --go-native "$out/go-native" --go-wasm "$out/go.wasm" \
  --axum-native "$target/release/http-bench-axum" \
  --axum-wasm "$target/wasm32-wasip1/release/http-bench-axum.wasm" "$@"
