#!/usr/bin/env bash
# Build the benchmark harness, the Troupe VM and the Troupe guests (release),
# then run the harness with the arguments given.
#   benches/run.sh --quick                 # CI smoke run (about a minute after the builds)
#   benches/run.sh                         # full run (~15 min on 2 cores)
#   benches/run.sh --install-erlang ...    # apt-get install erlang-nox first if erl is missing
# The VM is built from this checkout unless TROUPE_BIN (or --troupe) names one,
# and the guests (benches/guests) unless --guests names a directory of them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
# One target dir for both cargo workspaces (the host's, the repository's
# root, and wasm32-wasip1's, wasm/), as scripts/env.sh has it.
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
# Whether the Troupe column or the wasmtime floor (which shares the VM's
# build and guests) is wanted (`--systems` absent or naming either).
troupe_wanted() {
  local i list
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --systems=*) list=${args[i]#--systems=} ;;
      --systems) list=${args[i + 1]:-} ;;
      *) continue ;;
    esac
    [[ ,$list, == *,troupe,* || ,$list, == *,wasmtime-floor,* ]]
    return
  done
  return 0
}

# The harness alone (`-p`, by its manifest): its tokio and clap keep their own
# features, not the whole workspace's.
CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
  --manifest-path "$here/Cargo.toml" --bins

extra=()
if troupe_wanted; then
  if [ -z "${TROUPE_BIN:-}" ] && ! given --troupe; then
    echo "run.sh: building the Troupe VM and the wasmtime floor (release) ..." >&2
    CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
      --manifest-path "$repo/Cargo.toml" --bin troupe --bin wasmtime-floor
    export TROUPE_BIN="$target/release/troupe"
  fi
  if ! given --guests; then
    echo "run.sh: building the Troupe guests (wasm32-wasip1, release) ..." >&2
    if command -v rustup >/dev/null; then
      rustup target add wasm32-wasip1 >/dev/null 2>&1 ||
        echo "run.sh: warning: rustup target add wasm32-wasip1 failed" >&2
    fi
    CARGO_TARGET_DIR="$target" cargo build --release --quiet --locked \
      --manifest-path "$repo/wasm/Cargo.toml" -p troupe-bench-guests --target wasm32-wasip1
    extra+=(--guests "$target/wasm32-wasip1/release")
  fi
fi
export TROUPE_BENCHES_DIR="$here"
exec "$target/release/bench" ${extra[@]+"${extra[@]}"} "$@"
