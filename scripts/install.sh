#!/usr/bin/env bash
# Installs what building and testing Troupe needs on a Debian machine with
# rustup, and does nothing that is already done (a second run takes a few
# seconds): the wasm32-wasip1 and musl targets, rustfmt and clippy, Go 1.23,
# the shim's build dependencies (protoc, libseccomp), the services tests'
# servers (Postgres, Redis, nginx) and Go libraries (lib/pq, redigo), the
# container tests' packages (containerd, docker, ...; as root), and
# vm.max_map_count (as root).
#   bash scripts/install.sh           # everything scripts/test.sh needs
#   bash scripts/install.sh --minimal # what scripts/setup.sh needs: the wasm
#                                     # target, Go and the build dependencies
#   bash scripts/install.sh --no-containers  # all but the container tests'
#                                     # packages (test.sh installs those while
#                                     # it compiles)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step "install: Rust targets and components, Go 1.23, build dependencies"
have_target() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }
have_target wasm32-wasip1 || rustup target add wasm32-wasip1
if [ "${1:-}" != --minimal ]; then
  # The static troupe of the container tests (build_static_troupe).
  have_target x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
fi
if [ "${1:-}" != --minimal ]; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" ||
      rustup component add "$c" >/dev/null 2>&1 || true
  done
fi
install_go
raise_map_count
install_build_deps
if [ "${1:-}" != --minimal ]; then
  install_service_deps
fi
if [ "${1:-}" != --minimal ] && [ "${1:-}" != --no-containers ]; then
  # The container tests: containerd, docker.io, docker-compose, the grpc
  # client's packages and the musl target (only what is missing).
  bash scripts/e2e-containers.sh --install
fi
