#!/usr/bin/env bash
# The test suite. CI runs exactly `scripts/test.sh` (via .ci/run).
#   bash scripts/test.sh          # everything: installs what is missing
#                                 # (scripts/install.sh), then every check below
#   bash scripts/test.sh --quick  # day to day: fmt, clippy, the unit tests and
#                                 # the host-api, ABI and SDK tests; installs
#                                 # nothing, no guests run in the VM, no
#                                 # containers, no benchmarks, no chaos or fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac
start=$(date +%s)

containers_installing=
if [ $quick = 0 ]; then
  bash scripts/install.sh --no-containers
  # The container tests' packages (apt: mostly waiting on the network and
  # the disk) install while the code compiles; the container step waits.
  install_log="$(mktemp /var/tmp/troupe-install.XXXXXX)"
  bash scripts/e2e-containers.sh --install > "$install_log" 2>&1 &
  containers_installing=$!
  # The static troupe the container tests put in FROM-scratch images is a
  # second compile of wasmtime (for musl): it runs the whole time, at the
  # lowest priority, in the CPU the other steps leave idle; the container
  # step, last, waits for it.
  static_log="$(mktemp /var/tmp/troupe-static.XXXXXX)"
  # Its own session, so that a failing suite stops it (and its rustc) too.
  setsid nice -n 19 bash -c 'source scripts/env.sh && build_static_troupe --locked' \
    > "$static_log" 2>&1 &
  static_building=$!
  trap 'kill -- -"$static_building" 2>/dev/null || true' EXIT
fi

step "cargo fmt --check (host and wasm32-wasip1 workspaces)"
cargo fmt --all -- --check
cargo fmt --all --manifest-path "$WASM_MANIFEST" -- --check

if [ $quick = 1 ]; then
  step "cargo clippy (host workspace; wasm32-wasip1 workspace)"
  cargo clippy --release --locked --workspace --all-targets -- -D warnings
  cargo clippy --release --locked --manifest-path "$WASM_MANIFEST" --target wasm32-wasip1 \
    --workspace --all-targets -- -D warnings
  step "unit tests (host workspace), host-api and ABI tests (release)"
  cargo test --release --locked --workspace --lib --bins
  cargo test --release --locked -p troupe-host-api --test abi
  cargo test --release --locked --workspace --doc
  cargo test --release --locked -p troupe-abi --features serde
  step "Rust guest SDK: host tests"
  cargo test --release --locked --manifest-path "$WASM_MANIFEST" -p troupe
  if [ -x "$TROUPE_GO" ]; then
    step "Go guest SDK: native tests (its ABI mirror among them)"
    (cd guest-sdk/go && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local "$TROUPE_GO" test ./...)
  else
    echo "note: no Go at $TROUPE_GO: the Go SDK's tests were skipped (scripts/install.sh installs it)" >&2
  fi
  echo
  echo "quick checks passed in $(( $(date +%s) - start )) s"
  exit 0
fi

step "cargo clippy (wasm32-wasip1 workspace, every target)"
cargo clippy --release --locked --manifest-path "$WASM_MANIFEST" --target wasm32-wasip1 \
  --workspace --all-targets -- -D warnings

# From here on, clippy lints every crate of ours as it is compiled (see
# lint_while_building in scripts/env.sh): a warning fails the build.
lint_while_building

step "the guests (wasm32-wasip1 workspace, release), once for every test below"
build_guests --locked

step "clippy and build (host workspace, every target, release)"
cargo test --release --locked --workspace --all-targets --no-run
cargo build --release --locked --workspace

step "host workspace: unit, integration (vm/tests/all, vm/tests/fuzz_abi.rs, cli/tests/all) and doc tests (release)"
cargo test --release --locked --workspace
cargo test --release --locked -p troupe-abi --features serde

step "Rust guest SDK: host tests"
cargo test --release --locked --manifest-path "$WASM_MANIFEST" -p troupe

step "Go guest SDK: gofmt, go vet (native and wasip1), native tests"
# Only Go's standard library is used: no module proxy.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
go_dirs=(guest-sdk/go examples/go-hello examples/go-ping-pong examples/go-workers examples/mixed
  examples/go-supervised/worker examples/go-echo examples/go-db examples/orders/go benches/http/go)
unformatted=$("$(dirname "$TROUPE_GO")/gofmt" -l "${go_dirs[@]}")
if [ -n "$unformatted" ]; then echo "not gofmt-ed: $unformatted" >&2; exit 1; fi
(cd guest-sdk/go && "$TROUPE_GO" vet ./... && GOOS=wasip1 GOARCH=wasm "$TROUPE_GO" vet ./... \
  && "$TROUPE_GO" test ./...)
for dir in "${go_dirs[@]:1}"; do
  if grep -q 'github.com/lib/pq' "$dir/go.mod"; then
    # lib/pq builds for wasip1 through the SDK's overlay (guest-sdk/go/compat),
    # which go vet's analyzers do not read: vetted natively, compiled for wasip1.
    go_overlay="$(mktemp /var/tmp/troupe-overlay.XXXXXX)"
    guest-sdk/go/compat/overlay.sh > "$go_overlay"
    (cd "$dir" && "$TROUPE_GO" vet . \
      && GOOS=wasip1 GOARCH=wasm "$TROUPE_GO" build -overlay "$go_overlay" -o /dev/null .)
    rm -f "$go_overlay"
  else
    (cd "$dir" && GOOS=wasip1 GOARCH=wasm "$TROUPE_GO" vet .)
  fi
done

if [ -x benches/run.sh ]; then
  # The harness's fmt, clippy and unit tests ran above (a host workspace member).
  step "benchmark harness: smoke run (--quick)"
  # The troupe binary the VM tests just built: building it again with
  # `-p troupe-cli` alone would compile wasmtime once more (other features).
  TROUPE_BIN="$TROUPE" bash benches/run.sh --quick --out "$CARGO_TARGET_DIR/bench-smoke"
  step "network benchmark: smoke run (benches/kv.sh --quick)"
  TROUPE_BIN="$TROUPE" bash benches/kv.sh --quick --out "$CARGO_TARGET_DIR/kv-smoke"
  step "HTTP benchmark: smoke run (benches/http.sh --quick: net/http and axum, native and in Troupe)"
  TROUPE_BIN="$TROUPE" bash benches/http.sh --quick --out "$CARGO_TARGET_DIR/http-smoke"
fi

step "containers: the shim, troupe image, compose, CRI (own containerd and dockerd)"
if ! wait "$containers_installing"; then
  cat "$install_log" >&2
  echo "installing the container tests' packages failed (log above)" >&2
  exit 1
fi
cat "$install_log"; rm -f "$install_log"
echo "waiting for the static troupe (built in the background since the start)"
if ! wait "$static_building"; then
  cat "$static_log" >&2
  echo "building the static troupe failed (log above)" >&2
  exit 1
fi
tail -1 "$static_log"; rm -f "$static_log"
bash scripts/e2e-containers.sh

echo
echo "all checks passed in $(( $(date +%s) - start )) s"
