#!/usr/bin/env bash
# The whole test suite: formatting, lints, the VM's unit and integration
# tests (which build the guests for wasm32-wasip1), the Rust SDK's host
# tests, and a smoke run of the benchmark harness. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
start=$(date +%s)

step "toolchain"
rustup target add wasm32-wasip1
rustup component add rustfmt clippy >/dev/null 2>&1 || true
install_go
raise_map_count
# The shim's build needs protoc and libseccomp; the container tests need
# containerd, docker.io, docker-compose and the musl target.
bash scripts/e2e-containers.sh --install
install_build_deps

step "cargo fmt --check"
cargo fmt --all -- --check
(cd guest-sdk/rust && cargo fmt -- --check)
(cd examples && cargo fmt --all -- --check)
(cd vm/tests/guests && cargo fmt -- --check)

step "cargo clippy (VM workspace, SDK and guests for wasm32-wasip1)"
cargo clippy --release --locked --all-targets -- -D warnings
(cd guest-sdk/rust && cargo clippy --release --target wasm32-wasip1 --all-targets -- -D warnings)
(cd examples && cargo clippy --release --locked --target wasm32-wasip1 -- -D warnings)
(cd vm/tests/guests && cargo clippy --release --target wasm32-wasip1 -- -D warnings)

step "VM: unit, integration and doc tests (release)"
cargo test --release --locked

step "containers: the shim, troupe image, compose, CRI (own containerd and dockerd)"
bash scripts/e2e-containers.sh

step "Rust guest SDK: host tests"
(cd guest-sdk/rust && cargo test --release)

step "Go guest SDK: gofmt, go vet (native and wasip1), native tests"
# Only Go's standard library is used: no module proxy.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
go_dirs=(guest-sdk/go examples/go-hello examples/go-ping-pong examples/go-workers examples/mixed
  examples/go-supervised/worker examples/go-echo)
unformatted=$("$(dirname "$TROUPE_GO")/gofmt" -l "${go_dirs[@]}")
if [ -n "$unformatted" ]; then echo "not gofmt-ed: $unformatted" >&2; exit 1; fi
(cd guest-sdk/go && "$TROUPE_GO" vet ./... && GOOS=wasip1 GOARCH=wasm "$TROUPE_GO" vet ./... \
  && "$TROUPE_GO" test ./...)
for dir in "${go_dirs[@]:1}"; do (cd "$dir" && GOOS=wasip1 GOARCH=wasm "$TROUPE_GO" vet .); done

if [ -x benches/run.sh ]; then
  step "benchmark harness: smoke run (--quick)"
  # The troupe binary the VM tests just built: building it again with
  # `-p troupe-cli` alone would compile wasmtime once more (other features).
  TROUPE_BIN="$TROUPE" bash benches/run.sh --quick --out "$CARGO_TARGET_DIR/bench-smoke"
  step "benchmark harness: fmt, clippy and its unit tests (its own workspace)"
  (cd benches && cargo fmt -- --check && cargo clippy --release --all-targets -- -D warnings \
    && cargo test --release)
  step "network benchmark: smoke run (benches/kv.sh --quick)"
  TROUPE_BIN="$TROUPE" bash benches/kv.sh --quick --out "$CARGO_TARGET_DIR/kv-smoke"
fi

echo
echo "all checks passed in $(( $(date +%s) - start )) s"
