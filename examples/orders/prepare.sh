#!/usr/bin/env bash
# Fills examples/orders/context/ with a static troupe binary and the orders
# service's modules (Go: orders-go.wasm; Rust: orders-rust.wasm), building
# what is missing. Run it before `docker-compose up --build`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
source "$root/scripts/env.sh"
if [ ! -x "$STATIC_TROUPE" ]; then
  rustup target add x86_64-unknown-linux-musl
  (cd "$root" && build_static_troupe --locked)
fi
(cd "$root" && cargo build --release --locked --target wasm32-wasip1 \
  --manifest-path "$WASM_MANIFEST" -p orders-rust)
mkdir -p "$here/context"
"$root/guest-sdk/go/compat/overlay.sh" > "$here/context/overlay.json"
(cd "$here/go" && GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
  "$TROUPE_GO" build -overlay "$here/context/overlay.json" -o "$here/context/orders-go.wasm" .)
rm "$here/context/overlay.json"
cp "$STATIC_TROUPE" "$here/context/troupe"
cp "$GUESTS/orders-rust.wasm" "$here/context/"
ls -l "$here/context"
