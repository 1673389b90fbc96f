#!/usr/bin/env bash
# Fills examples/compose/context/ with a static troupe binary and the example
# modules, building them if they are missing. Run it before
# `docker-compose up --build`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
source "$root/scripts/env.sh"
if [ ! -x "$STATIC_TROUPE" ]; then
  rustup target add x86_64-unknown-linux-musl
  (cd "$root" && build_static_troupe --locked)
fi
if [ ! -f "$GUESTS/workers.wasm" ] || [ ! -f "$GUESTS/heartbeat.wasm" ] ||
   [ ! -f "$GUESTS/kv-server.wasm" ] || [ ! -f "$GUESTS/kv-client.wasm" ]; then
  (cd "$root" && build_guests --locked)
fi
mkdir -p "$here/context"
cp "$STATIC_TROUPE" "$here/context/troupe"
for m in workers heartbeat hello kv-server kv-client; do cp "$GUESTS/$m.wasm" "$here/context/"; done
ls -l "$here/context"
