# Shared settings of the scripts (sourced, not run).
# A cargo target dir outside the clone, so builds are kept between runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/troupe-target}"
TROUPE="$CARGO_TARGET_DIR/release/troupe"
GUESTS="$CARGO_TARGET_DIR/wasm32-wasip1/release"
# The two cargo workspaces: the host's (the repository's root: the VM, the
# host API, the shim, the benchmarks' host side) and wasm32-wasip1's (the
# Rust SDK, the examples, the test and benchmark guests). One target dir.
WASM_MANIFEST="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/wasm/Cargo.toml"

# Each step is printed with the seconds since the outermost script began
# (TROUPE_T0 is passed on to the scripts it runs), so a log shows where the
# time goes.
export TROUPE_T0="${TROUPE_T0:-$(date +%s)}"
step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - TROUPE_T0 ))" "$*"; }

# Builds every guest of the wasm32-wasip1 workspace into $GUESTS, once: the
# VM's tests run the same command (vm/tests/all/common.rs), so whichever comes
# second has nothing to do. Extra arguments (say --locked) are passed on.
build_guests() {
  cargo build --release --target wasm32-wasip1 --workspace --bins --examples \
    --manifest-path "$WASM_MANIFEST" "$@"
}

# Clippy's lints during the build itself (the full suite; `--quick` runs
# `cargo clippy`): cargo hands only the workspace's own crates to
# RUSTC_WORKSPACE_WRAPPER, so clippy-driver lints and compiles those, while
# every dependency is compiled by rustc as in any build and shared with
# plain builds. One compile of wasmtime then gives both `clippy -D warnings`
# and the test binaries, where `cargo clippy` would first check every
# dependency in a pass of its own (~6 of a cold run's minutes on 2 cores).
# CLIPPY_ARGS is how cargo-clippy passes its arguments to clippy-driver
# (separated by __CLIPPY_HACKERY__). Exported: every cargo run of the suite,
# the tests' own guest builds among them, then builds the same way and none
# rebuilds another's crates.
lint_while_building() {
  local driver
  driver="$(command -v clippy-driver)" || { echo "clippy-driver not found (rustup component add clippy)" >&2; return 1; }
  export RUSTC_WORKSPACE_WRAPPER="$driver"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
}

# The static troupe (musl, stripped) that FROM-scratch images carry, as
# releases are built: by rustc alone, even where test.sh has clippy lint our
# crates while they compile. Its own target dir, because a cargo build locks
# the target dir it uses: test.sh builds this one in the background, at low
# priority, while it compiles and tests everything else. musl-tools is not
# needed: gcc compiles wasmtime's few C files for musl.
STATIC_TARGET_DIR="$CARGO_TARGET_DIR/static"
STATIC_TROUPE="$STATIC_TARGET_DIR/x86_64-unknown-linux-musl/release/troupe"
build_static_troupe() {
  CC_x86_64_unknown_linux_musl=gcc CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TARGET_DIR="$STATIC_TARGET_DIR" env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
    cargo build --release --target x86_64-unknown-linux-musl -p troupe-cli --bin troupe "$@"
}

# Each live process holds about six kernel memory mappings; the kernel's
# default vm.max_map_count (65530) caps a VM near 10,000 processes. Raise it
# where we can (root), and say so where we cannot.
raise_map_count() {
  local want=16777216 have
  have=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
  if [ "$have" -ge "$want" ]; then return; fi
  if [ "$(id -u)" = 0 ] && echo "$want" > /proc/sys/vm/max_map_count 2>/dev/null; then
    echo "raised vm.max_map_count from $have to $want (for 100k+ processes)"
  else
    echo "note: vm.max_map_count is $have: a VM holds about $((have / 6)) processes." \
         "Raise it as root: sysctl -w vm.max_map_count=$want" >&2
  fi
}

# Go guests (guest-sdk/go, examples/go-*) need Go >= 1.21 for GOOS=wasip1;
# Debian bookworm's default is 1.19, so take Go 1.23 from bookworm-backports.
# The backports suite is added to the machine's existing deb822 source (its
# mirror, whatever it is), idempotently.
export TROUPE_GO="${TROUPE_GO:-/usr/lib/go-1.23/bin/go}"
install_go() {
  if [ -x /usr/lib/go-1.23/bin/go ]; then return; fi
  local sources=/etc/apt/sources.list.d/debian.sources
  if [ "$(id -u)" != 0 ]; then
    echo "Go 1.23 is missing and installing it needs root:" \
         "add bookworm-backports to $sources, then apt-get install -t bookworm-backports golang-1.23-go" >&2
    return 1
  fi
  if ! grep -Eq '^Suites:.*[[:space:]]bookworm-backports([[:space:]]|$)' "$sources"; then
    sed -i -E 's/^(Suites:[[:space:]]*bookworm bookworm-updates)([[:space:]]*)$/\1 bookworm-backports/' "$sources"
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports golang-1.23-go
}

# The services tests (cli/tests/all/services.rs, examples/orders) start
# real servers on loopback: Postgres, Redis and nginx, from Debian; their Go
# guests use Debian's lib/pq and redigo (no module proxy is reachable).
install_service_deps() {
  local missing=()
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nginx >/dev/null || missing+=(nginx-light)
  [ -d /usr/share/gocode/src/github.com/lib/pq ] || missing+=(golang-github-lib-pq-dev)
  [ -d /usr/share/gocode/src/github.com/gomodule/redigo ] || missing+=(golang-github-gomodule-redigo-dev)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ]; then
    echo "the services tests need ${missing[*]}: apt-get install them as root" >&2
    return 1
  fi
  echo "installing ${missing[*]} (for the services tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The containerd shim (a workspace member) builds with protoc and libseccomp.
install_build_deps() {
  local missing=()
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  [ -e /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing ${missing[*]} (for the containerd shim's build)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
