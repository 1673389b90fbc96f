#!/usr/bin/env bash
# The network benchmark: the kv-server example (examples/kv-server, one Troupe
# process per connection) against the same service in plain tokio
# (kv-native), loaded by kv-load with 1, 100 and 1,000 connections. Writes
# benches/results/kv.md and kv.json.
#   benches/kv.sh --quick            # CI smoke run: a few seconds after the builds
#   benches/kv.sh                    # full run: 3 x 5 s per cell, about 2 min
#   benches/kv.sh --conns 1,100 --duration 10s --reps 5 --threads 2
# Builds (release), unless given:
#   - the Troupe VM of this checkout, unless TROUPE_BIN or --troupe names one;
#   - kv-server.wasm (the wasm32-wasip1 workspace, wasm/), unless --wasm names one;
#   - kv-load and kv-native (examples/kv-server/load);
#   - the runner kv-bench (this crate);
# all in one target dir (CARGO_TARGET_DIR, default /var/tmp/troupe-target).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-/var/tmp/troupe-target}"

args=("$@")
# Whether the flag $1 was given (as `--flag value` or `--flag=value`).
given() {
  local a
  for a in ${args[@]+"${args[@]}"}; do
    [[ $a == "$1" || $a == "$1="* ]] && return 0
  done
  return 1
}
# Whether the Troupe column is wanted (`--systems` absent or naming troupe).
troupe_wanted() {
  local i
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --systems=*) [[ ,${args[i]#--systems=}, == *,troupe,* ]]; return ;;
      --systems) [[ ,${args[i + 1]:-}, == *,troupe,* ]]; return ;;
    esac
  done
  return 0
}

# 1,000 connections need more than the usual 1,024 open files, in the client
# and in the server: raise the soft limit to the hard one.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
ulimit -Sn "$hard" 2>/dev/null || echo "kv.sh: warning: cannot raise ulimit -n to $hard" >&2

echo "kv.sh: building kv-bench, kv-load and kv-native (release) ..." >&2
# Each package alone (`-p`, by its manifest): their tokio keeps its own
# features, not the whole workspace's.
CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
  --manifest-path "$here/Cargo.toml" --bin kv-bench
CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
  --manifest-path "$repo/examples/kv-server/load/Cargo.toml"

extra=(--load-bin "$target/release")
if troupe_wanted; then
  if [ -z "${TROUPE_BIN:-}" ] && ! given --troupe; then
    echo "kv.sh: building the Troupe VM (release) ..." >&2
    CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
      --manifest-path "$repo/Cargo.toml" --bin troupe
    export TROUPE_BIN="$target/release/troupe"
  fi
  if ! given --wasm; then
    echo "kv.sh: building examples/kv-server (wasm32-wasip1, release) ..." >&2
    if command -v rustup >/dev/null; then
      rustup target add wasm32-wasip1 >/dev/null 2>&1 ||
        echo "kv.sh: warning: rustup target add wasm32-wasip1 failed" >&2
    fi
    CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
      --manifest-path "$repo/wasm/Cargo.toml" -p kv-server --target wasm32-wasip1
    extra+=(--wasm "$target/wasm32-wasip1/release/kv-server.wasm")
  fi
fi
export TROUPE_BENCHES_DIR="$here"
exec "$target/release/kv-bench" "${extra[@]}" "$@"
