#!/usr/bin/env bash
# End-to-end tests of Troupe in containers, against real daemons: the
# containerd shim (io.containerd.troupe.v1) driven by ctr, images made by
# `troupe image` and by `docker build`, the static-binary image under runc
# with docker-compose, and the CRI path (containerd's CRI plugin driven by a
# small gRPC client, as the kubelet would).
#
# It installs what is missing (Debian's containerd, runc, docker.io,
# docker-compose, protobuf-compiler, libseccomp-dev, python3-grpc-tools; the
# musl target), builds the shim, the CLI (glibc and static musl) and the
# guests, then starts its OWN containerd and dockerd under a temp dir with
# their own sockets and stops them (by PID) at the end, whatever happened.
# It prints `e2e-containers: N passed, M failed` and exits non-zero on a
# failure. Needs root.
#
#   bash scripts/e2e-containers.sh            # everything
#   bash scripts/e2e-containers.sh --install  # only install the packages and targets
#                                             # (test.sh does this before clippy: the
#                                             # shim's build needs protoc, libseccomp)
#   E2E_KEEP=1 bash scripts/e2e-containers.sh # keep the temp dir for a look
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/env.sh
start_time=$(date +%s)

PASSED=0
FAILED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf '  FAIL  %s\n' "$1"; }
# check NAME COMMAND...: one test.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
note() { printf '  ..    %s\n' "$*"; }
die() { echo "e2e-containers: $*" >&2; echo "e2e-containers: $PASSED passed, $((FAILED + 1)) failed"; exit 1; }

if [ "$(id -u)" != 0 ]; then
  echo "e2e-containers: needs root (it starts containerd and dockerd)" >&2
  echo "e2e-containers: 0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- packages
step "e2e: packages"
want=()
for pkg in containerd runc docker.io docker-compose protobuf-compiler libseccomp-dev \
           python3-grpcio python3-grpc-tools python3-protobuf gcc libc6-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
done
if [ ${#want[@]} -gt 0 ]; then
  echo "installing ${want[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" \
    >/dev/null || die "apt-get install ${want[*]} failed"
fi
# The Debian packages start nothing here (no systemd); we start our own daemons.
rustup target add wasm32-wasip1 x86_64-unknown-linux-musl >/dev/null 2>&1 ||
  die "rustup target add failed"
raise_map_count >/dev/null
if [ "${1:-}" = --install ]; then echo "e2e-containers: packages and targets installed"; exit 0; fi
PY=/usr/bin/python3          # Debian's, which has the grpc packages
DOCKER=/usr/bin/docker       # Debian's client (not another one on PATH)

# ---------------------------------------------------------------- builds
step "e2e: build (the shim, troupe glibc + static musl, guests)"
t_build=$(date +%s)
# The whole workspace, as test.sh's build and tests select it, so that what
# they built is reused rather than rebuilt with other features.
cargo build --release --locked --workspace ||
  die "cargo build (shim, troupe) failed"
# The static troupe for FROM-scratch images run by runc (build_static_troupe
# in env.sh): nothing to do if test.sh built it in the background.
build_static_troupe --locked || die "cargo build (static troupe) failed"
# Every guest (the examples, and the hostile test guest for the shim under
# faults), as test.sh and the VM's tests build them: nothing to do after them.
build_guests --locked || die "building the guests failed"
echo "builds took $(( $(date +%s) - t_build )) s"
SHIM_BIN="$CARGO_TARGET_DIR/release/containerd-shim-troupe-v1"
for f in "$SHIM_BIN" "$TROUPE" "$STATIC_TROUPE" "$GUESTS/hello.wasm" "$GUESTS/workers.wasm" \
         "$GUESTS/crash.wasm" "$GUESTS/heartbeat.wasm" "$GUESTS/hostile.wasm"; do
  [ -f "$f" ] || die "missing $f"
done

# ---------------------------------------------------------------- daemons
T=$(mktemp -d /var/tmp/troupe-e2e.XXXXXX)
chmod 755 "$T"
NS=troupe-e2e
SOCK=$T/containerd.sock
CONTAINERD_PID=
DOCKERD_PID=

ctr_() { ctr --address "$SOCK" --namespace "$NS" "$@"; }
docker_() { "$DOCKER" --host "unix://$T/docker.sock" "$@"; }
compose_() {
  DOCKER_HOST="unix://$T/docker.sock" docker-compose --project-name troupe-e2e \
    --project-directory "$ROOT/examples/compose" -f "$ROOT/examples/compose/docker-compose.yml" "$@"
}

# Stops only what this script started, by PID, and removes its state.
cleanup() {
  set +e
  step "e2e: cleanup"
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    compose_ down --volumes --remove-orphans >/dev/null 2>&1
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
  fi
  if [ -n "$CONTAINERD_PID" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
    for ns in "$NS" k8s.io moby; do
      for id in $(ctr --address "$SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
        ctr --address "$SOCK" -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
        sleep 0.3
        ctr --address "$SOCK" -n "$ns" tasks delete "$id" >/dev/null 2>&1
      done
      for id in $(ctr --address "$SOCK" -n "$ns" containers ls -q 2>/dev/null); do
        ctr --address "$SOCK" -n "$ns" containers delete "$id" >/dev/null 2>&1
      done
    done
    kill -TERM "$CONTAINERD_PID"
    for _ in $(seq 50); do kill -0 "$CONTAINERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$CONTAINERD_PID" 2>/dev/null
  fi
  # Shims of this run (their binary is our copy) that outlived containerd.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$T/bin/containerd-shim-troupe-v1" ] &&
      kill -KILL "${p#/proc/}" 2>/dev/null
  done
  # Mounts under the temp dir (overlay snapshots, docker's), deepest first.
  grep -o " $T[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  # runwasi's state: our namespace is ours; k8s.io and the root only if empty.
  rm -rf "/run/containerd/troupe/$NS" 2>/dev/null
  rmdir /run/containerd/troupe/k8s.io /run/containerd/troupe 2>/dev/null
  rmdir "/run/containerd/runc/$NS" /run/containerd/runc/troupe-e2e-docker 2>/dev/null
  for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/*/troupe-e2e-docker /sys/fs/cgroup/*/troupe-e2e-cri; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [ -n "${E2E_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/bin" "$T/containerd" "$T/data/sub" "$T/images" "$T/out" "$T/opt"
# The shim on containerd's PATH, for this containerd only.
cp "$SHIM_BIN" "$T/bin/containerd-shim-troupe-v1"
SHIM=$T/bin/containerd-shim-troupe-v1

cat > "$T/containerd.toml" <<EOF
version = 2
root = "$T/containerd/root"
state = "$T/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$T/containerd-debug.sock"
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "troupe.e2e/pause:1"
  # This machine refuses negative oom_score_adj (the pause container asks -998).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$T/cni/bin"
    conf_dir = "$T/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    # The stanza of examples/k8s/containerd-config.toml:
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.troupe]
      runtime_type = "io.containerd.troupe.v1"
EOF

step "e2e: start containerd ($T)"
PATH="$T/bin:$PATH" containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 100); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$SOCK" version >/dev/null 2>&1 || { tail -20 "$T/containerd.log"; die "containerd did not start"; }
echo "containerd $(containerd --version | awk '{print $3}') is pid $CONTAINERD_PID"

# No shim process, task state, runwasi state or cgroup left for container ID.
leftovers() {
  local id=$1 found=""
  for _ in $(seq 50); do
    found=""
    for p in /proc/[0-9]*; do
      if [ "$(readlink "$p/exe" 2>/dev/null)" = "$SHIM" ]; then
        found+=" shim:${p#/proc/}"
      fi
    done
    [ -e "$T/containerd/state/io.containerd.runtime.v2.task/$NS/$id" ] && found+=" task-state"
    [ -e "/run/containerd/troupe/$NS/$id" ] && found+=" runwasi-state"
    for d in /sys/fs/cgroup/*/"$NS/$id"; do [ -e "$d" ] && found+=" cgroup:$d"; done
    [ -z "$found" ] && return 0
    sleep 0.2
  done
  echo "    left behind for $id:$found"
  return 1
}

# run_task ID OUTFILE [ctr run args...]: ctr run --rm with the shim, output to OUTFILE;
# sets RC. PLATFORM: the image's (default wasi/wasm, as troupe image writes).
run_task() {
  local id=$1 out=$2; shift 2
  timeout 120 ctr --address "$SOCK" --namespace "$NS" run --rm \
    --runtime io.containerd.troupe.v1 --platform "${PLATFORM:-wasi/wasm}" "$@" >"$out" 2>&1 </dev/null
  RC=$?
  sed 's/^/    | /' "$out" | head -40
}

# ---------------------------------------------------------------- images
step "e2e: troupe image"
cp "$GUESTS/hello.wasm" "$T/images/"
printf 'alpha\n' > "$T/data/a.txt"
printf 'beta\n' > "$T/data/sub/b.txt"
"$TROUPE" image -o "$T/images/hello.tar" --name hello:e2e --env FROM_IMAGE=yes \
  --file "$T/data::/srv/data" "$GUESTS/hello.wasm" default-arg >"$T/out/image.txt" 2>&1
check "troupe image writes a tarball" test -s "$T/images/hello.tar"
check "the tarball is an OCI layout (oci-layout, index.json, blobs)" \
  bash -c "tar -tf '$T/images/hello.tar' | grep -qx oci-layout && tar -tf '$T/images/hello.tar' | grep -qx index.json && tar -tf '$T/images/hello.tar' | grep -q '^blobs/sha256/'"
"$TROUPE" image -o "$T/images/heartbeat.tar" "$GUESTS/heartbeat.wasm" 3 200 >/dev/null
"$TROUPE" image -o "$T/images/actors.tar" --name actors:e2e --file "$GUESTS/crash.wasm" \
  "$GUESTS/workers.wasm" 4 200000 20 >/dev/null
"$TROUPE" image -o "$T/images/faults.tar" --name faults:e2e "$GUESTS/hostile.wasm" >/dev/null
for img in hello heartbeat actors faults; do
  check "ctr images import accepts $img.tar" \
    bash -c "ctr --address '$SOCK' -n '$NS' images import --all-platforms '$T/images/$img.tar' >/dev/null"
done
ctr_ images ls -q | sed 's/^/    /'

# ---------------------------------------------------------------- the shim
step "e2e: ctr run --runtime io.containerd.troupe.v1"
run_task t-hello "$T/out/hello.txt" --env FROM_RUN=1 --env DUP=first --env DUP=last \
  docker.io/library/hello:e2e t-hello
check "ctr run prints the app's output" grep -q "Hello from Troupe!" "$T/out/hello.txt"
check "the run exits 0" test "$RC" = 0
check "argv: the module's path, then the image's Cmd" \
  bash -c "grep -qx 'arg\[0\] = /app/hello.wasm' '$T/out/hello.txt' && grep -qx 'arg\[1\] = default-arg' '$T/out/hello.txt'"
check "env from the image and from the runtime arrive" \
  bash -c "grep -qx 'env FROM_IMAGE=yes' '$T/out/hello.txt' && grep -qx 'env FROM_RUN=1' '$T/out/hello.txt'"
check "duplicate env: one entry, the last value wins" \
  bash -c "[ \$(grep -c '^env DUP=' '$T/out/hello.txt') = 1 ] && grep -qx 'env DUP=last' '$T/out/hello.txt'"
check "no shim, state or cgroup left after t-hello" leftovers t-hello

run_task t-args "$T/out/args.txt" docker.io/library/hello:e2e t-args /app/hello.wasm x "two words" --exit 7
check "proc_exit(7) comes back as exit code 7" test "$RC" = 7
check "args given to ctr run replace the image's" \
  bash -c "grep -qx 'arg\[2\] = two words' '$T/out/args.txt' && ! grep -q default-arg '$T/out/args.txt'"
check "no shim, state or cgroup left after t-args" leftovers t-args

run_task t-mount "$T/out/mount.txt" --mount "type=bind,src=$T/data,dst=/data,options=rbind:ro" \
  docker.io/library/hello:e2e t-mount
check "a bind mount is visible to the guest (/data)" \
  bash -c "grep -qx '/data/a.txt' '$T/out/mount.txt' && grep -qx '/data/sub/' '$T/out/mount.txt'"
check "no shim, state or cgroup left after t-mount" leftovers t-mount

run_task t-actors "$T/out/actors.txt" docker.io/library/actors:e2e t-actors
check "a multi-process actor app (workers: spawn, messages, request/reply) runs in one container" \
  bash -c "[ $RC = 0 ] && grep -q 'workers: OK' '$T/out/actors.txt'"
check "no shim, state or cgroup left after t-actors" leftovers t-actors

run_task t-crash "$T/out/crash.txt" docker.io/library/actors:e2e t-crash /app/crash.wasm
check "a crash in one process: the others finish, exit 0" \
  bash -c "[ $RC = 0 ] && grep -q 'trapped' '$T/out/crash.txt' && grep -q 'survivors finished' '$T/out/crash.txt'"
check "no shim, state or cgroup left after t-crash" leftovers t-crash

run_task t-bad "$T/out/bad.txt" docker.io/library/hello:e2e t-bad /srv/data/a.txt
check "a non-Wasm entrypoint fails cleanly (non-zero, no hang)" test "$RC" != 0 -a "$RC" != 124
check "no shim, state or cgroup left after t-bad" leftovers t-bad

# The shim under faults: a guest that aborts, floods its memory or loops is
# contained: a clear exit code, and no shim, state or cgroup left.
run_task t-abort "$T/out/abort.txt" docker.io/library/faults:e2e t-abort /app/hostile.wasm abort
check "a guest that aborts: exit 134, the trap printed" \
  bash -c "test '$RC' = 134 && grep -q 'aborting on purpose' '$T/out/abort.txt'"
check "no shim, state or cgroup left after t-abort" leftovers t-abort
run_task t-bomb "$T/out/bomb.txt" --env TROUPE_MAX_MEMORY=16M docker.io/library/faults:e2e t-bomb \
  /app/hostile.wasm memory_bomb
check "a guest that floods its memory ends at its limit: exit 134, the limit named" \
  bash -c "test '$RC' = 134 && grep -q 'memory limit exceeded' '$T/out/bomb.txt'"
check "no shim, state or cgroup left after t-bomb" leftovers t-bomb
spin_test() {
  local out="$T/out/t-spin.txt" pid rc
  ctr --address "$SOCK" --namespace "$NS" run --rm --runtime io.containerd.troupe.v1 \
    --platform wasi/wasm docker.io/library/faults:e2e t-spin /app/hostile.wasm spin \
    >"$out" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q spinning "$out" && break; sleep 0.1; done
  ctr_ tasks kill -s SIGTERM t-spin
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    note "t-spin: still running 15 s after SIGTERM"
    ctr_ tasks kill -s SIGKILL t-spin
  fi
  wait "$pid"; rc=$?
  note "t-spin: exit code $rc"
  grep -q spinning "$out" && [ "$rc" = 143 ]
}
check "a guest in an endless loop is stopped by SIGTERM: exit 143" spin_test
check "no shim, state or cgroup left after t-spin" leftovers t-spin

# A long-running app, stopped by a signal: `ctr task kill` sends SIGTERM.
# signal_test ID SIGNAL EXPECTED_CODE
signal_test() {
  local id=$1 sig=$2 want=$3 out="$T/out/$1.txt" pid t0 t1 rc
  ctr --address "$SOCK" --namespace "$NS" run --rm --runtime io.containerd.troupe.v1 \
    --platform wasi/wasm docker.io/library/heartbeat:latest "$id" >"$out" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q "tick 2:" "$out" && break; sleep 0.1; done
  if ! grep -q "tick 2:" "$out"; then
    note "$id: the app did not start"; cat "$out"
  fi
  t0=$(date +%s%N)
  ctr_ tasks kill -s "$sig" "$id"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    note "$id: still running 15 s after $sig"
    ctr_ tasks kill -s SIGKILL "$id"
  fi
  wait "$pid"; rc=$?
  t1=$(date +%s%N)
  sed 's/^/    | /' "$out" | tail -4
  note "$id: exit code $rc, $(( (t1 - t0) / 1000000 )) ms after $sig"
  [ "$rc" = "$want" ]
}
check "ctr task kill (SIGTERM) stops a long-running actor app: exit 143" signal_test t-term SIGTERM 143
check "the VM reports the stop" grep -q "stopped by signal 15" "$T/out/t-term.txt"
check "no shim, state or cgroup left after t-term" leftovers t-term
check "SIGKILL gives 137" signal_test t-kill SIGKILL 137
check "no shim, state or cgroup left after t-kill" leftovers t-kill

# ---------------------------------------------------------------- numbers
step "e2e: numbers (shim vs runc)"
# Memory of an idle container: heartbeat ticking every 200 ms with 3 workers.
ctr_ run -d --runtime io.containerd.troupe.v1 --platform wasi/wasm \
  docker.io/library/heartbeat:latest t-idle >/dev/null
sleep 3
IDLE_PID=$(ctr_ tasks ls | awk '$1 == "t-idle" {print $2}')
mem_cg=$(cat /sys/fs/cgroup/memory/"$NS"/t-idle/memory.usage_in_bytes 2>/dev/null ||
         cat /sys/fs/cgroup/unified/"$NS"/t-idle/memory.current 2>/dev/null || echo 0)
rss_vm=$(awk '/VmRSS/ {print $2}' "/proc/$IDLE_PID/status" 2>/dev/null || echo 0)
rss_shim=0   # the shim's daemon and zygote (outside the container's cgroup)
for p in /proc/[0-9]*; do
  if [ "$(readlink "$p/exe" 2>/dev/null)" = "$SHIM" ] && [ "${p#/proc/}" != "$IDLE_PID" ]; then
    rss_shim=$(( rss_shim + $(awk '/VmRSS/ {print $2}' "$p/status" 2>/dev/null || echo 0) ))
  fi
done
ctr_ tasks kill -s SIGTERM t-idle; sleep 1
ctr_ tasks delete t-idle >/dev/null 2>&1; ctr_ containers delete t-idle >/dev/null 2>&1
check "no shim, state or cgroup left after t-idle" leftovers t-idle
IDLE="container cgroup $((mem_cg / 1024)) KiB, VM process RSS ${rss_vm} KiB; shim daemon + zygote RSS ${rss_shim} KiB"
note "idle heartbeat container: $IDLE"
SHIM_SIZE="$(stat -c %s "$SHIM_BIN") bytes ($(strip -o "$T/shim.stripped" "$SHIM_BIN" && stat -c %s "$T/shim.stripped") stripped)"
note "shim binary: $SHIM_SIZE"

# first_line_ms RUNTIME PLATFORM IMAGE ID [ARGS]: ms from `ctr run` to the first line of output.
first_line_ms() {
  local runtime=$1 platform=$2 image=$3 id=$4; shift 4
  local t0 t1
  t0=$(date +%s%N)
  ctr --address "$SOCK" --namespace "$NS" run --rm --runtime "$runtime" --platform "$platform" \
    "$image" "$id" "$@" \
    </dev/null 2>&1 | { IFS= read -r _; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); cat >/dev/null; }
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ---------------------------------------------------------------- docker
step "e2e: start dockerd (on our containerd)"
mkdir -p "$T/docker"
echo '{}' > "$T/docker/daemon.json"
# No docker0 bridge, no iptables rules: nothing reaches outside this machine.
dockerd --config-file "$T/docker/daemon.json" --data-root "$T/docker/root" \
  --exec-root "$T/docker/exec" --pidfile "$T/docker/docker.pid" \
  -H "unix://$T/docker.sock" --containerd "$SOCK" --containerd-namespace troupe-e2e-docker \
  --containerd-plugins-namespace troupe-e2e-docker-plugins \
  --cgroup-parent troupe-e2e-docker \
  --bridge none --iptables=false --ip-masq=false >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 150); do docker_ version >/dev/null 2>&1 && break; sleep 0.2; done
docker_ version >/dev/null 2>&1 || { tail -20 "$T/dockerd.log"; die "dockerd did not start"; }
echo "dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) is pid $DOCKERD_PID"

# Native helper programs, static: a pause for CRI pods, a hello for timing.
cat > "$T/pause.c" <<'EOF'
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }
EOF
cat > "$T/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello from a static native binary"); return 0; }
EOF
mkdir -p "$T/ctx-pause" "$T/ctx-native" "$T/ctx-wasm"
gcc -static -O2 -o "$T/ctx-pause/pause" "$T/pause.c" &&
  gcc -static -O2 -o "$T/ctx-native/hello" "$T/hello.c" || die "gcc -static failed"
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' > "$T/ctx-pause/Dockerfile"
cp "$STATIC_TROUPE" "$T/ctx-native/troupe"
cp "$GUESTS/hello.wasm" "$T/ctx-native/"
printf 'FROM scratch\nCOPY hello /hello\nCOPY troupe /troupe\nCOPY hello.wasm /app/hello.wasm\nENTRYPOINT ["/hello"]\n' \
  > "$T/ctx-native/Dockerfile"
# The Dockerfile route of shim/README.md: FROM scratch, the module as entrypoint.
cp "$ROOT/shim/examples/Dockerfile" "$T/ctx-wasm/Dockerfile"
cp "$GUESTS/hello.wasm" "$T/ctx-wasm/app.wasm"

check "docker build: pause image" bash -c "$DOCKER -H unix://$T/docker.sock build -q -t troupe.e2e/pause:1 '$T/ctx-pause' >/dev/null"
check "docker build: static native hello image" bash -c "$DOCKER -H unix://$T/docker.sock build -q -t troupe.e2e/native:1 '$T/ctx-native' >/dev/null"
check "docker build: FROM scratch Wasm image (shim/examples/Dockerfile)" \
  bash -c "$DOCKER -H unix://$T/docker.sock build -q -t troupe.e2e/hello-docker:1 '$T/ctx-wasm' >/dev/null"
docker_ save -o "$T/images/docker-built.tar" troupe.e2e/pause:1 troupe.e2e/native:1 troupe.e2e/hello-docker:1
check "docker save | ctr images import" bash -c "ctr --address '$SOCK' -n '$NS' images import '$T/images/docker-built.tar' >/dev/null"
PLATFORM=linux/amd64 run_task t-docker "$T/out/docker.txt" troupe.e2e/hello-docker:1 t-docker
check "a docker-built FROM scratch Wasm image runs with the shim" \
  bash -c "[ $RC = 0 ] && grep -q 'Hello from Troupe!' '$T/out/docker.txt' && grep -qx 'arg\[0\] = /app.wasm' '$T/out/docker.txt'"
check "no shim, state or cgroup left after t-docker" leftovers t-docker

# Time to first output line, same containerd, same run, 5 runs each (median).
shim_ms=(); runc_ms=(); runc_troupe_ms=()
for i in 1 2 3 4 5; do
  shim_ms+=("$(first_line_ms io.containerd.troupe.v1 wasi/wasm docker.io/library/hello:e2e "tf-shim-$i")")
  runc_ms+=("$(first_line_ms io.containerd.runc.v2 linux/amd64 troupe.e2e/native:1 "tf-runc-$i")")
  runc_troupe_ms+=("$(first_line_ms io.containerd.runc.v2 linux/amd64 troupe.e2e/native:1 "tf-rtroupe-$i" /troupe run /app/hello.wasm)")
done
FIRST_SHIM=$(echo "${shim_ms[*]}" | median)
FIRST_RUNC=$(echo "${runc_ms[*]}" | median)
FIRST_RUNC_TROUPE=$(echo "${runc_troupe_ms[*]}" | median)
note "ctr run -> first line: shim+VM ${FIRST_SHIM} ms [${shim_ms[*]}]; runc static C ${FIRST_RUNC} ms [${runc_ms[*]}]; runc static troupe ${FIRST_RUNC_TROUPE} ms [${runc_troupe_ms[*]}]"
check "no shim, state or cgroup left after the timing runs" leftovers tf-shim-5

# ---------------------------------------------------------------- compose
step "e2e: docker-compose (static troupe image under runc)"
bash "$ROOT/examples/compose/prepare.sh" >/dev/null || fail "examples/compose/prepare.sh"
# quiet FILE COMMAND...: runs it with its output in FILE, shown if it fails.
quiet() { local f=$1; shift; "$@" >"$f" 2>&1 || { sed 's/^/    | /' "$f" | tail -20; return 1; }; }
check "docker-compose build" quiet "$T/out/compose-build.txt" compose_ build
check "docker-compose up -d" quiet "$T/out/compose-up.txt" compose_ up -d
# workers runs to completion; check starts only once it exited 0.
for _ in $(seq 300); do
  [ "$(docker_ inspect -f '{{.State.Status}}' troupe-e2e_check_1 2>/dev/null)" = exited ] && break
  sleep 0.2
done
# kv-client waits for kv, checks it, and exits.
for _ in $(seq 300); do
  [ "$(docker_ inspect -f '{{.State.Status}}' troupe-e2e_kv-client_1 2>/dev/null)" = exited ] && break
  sleep 0.2
done
# heartbeat ticks every second: wait for its second tick.
for _ in $(seq 75); do
  compose_ logs --no-color >"$T/out/compose-logs.txt" 2>&1
  grep -q "heartbeat_1.*tick 2:" "$T/out/compose-logs.txt" && break
  sleep 0.2
done
sed 's/^/    | /' "$T/out/compose-logs.txt" | head -30
check "the workers service finishes its jobs (exit 0)" \
  bash -c "[ \"\$($DOCKER -H unix://$T/docker.sock inspect -f '{{.State.ExitCode}}' troupe-e2e_workers_1)\" = 0 ] && grep -q 'workers: OK' '$T/out/compose-logs.txt'"
check "the check service ran after it and passed (exit 0)" \
  bash -c "[ \"\$($DOCKER -H unix://$T/docker.sock inspect -f '{{.State.ExitCode}}' troupe-e2e_check_1)\" = 0 ]"
check "the heartbeat service serves (ticks)" grep -q "heartbeat_1.*tick 2:" "$T/out/compose-logs.txt"
check "kv-client reaches the kv service by name over the compose network (exit 0)" \
  bash -c "[ \"\$($DOCKER -H unix://$T/docker.sock inspect -f '{{.State.ExitCode}}' troupe-e2e_kv-client_1)\" = 0 ] && grep -q 'kv-client.*OK' '$T/out/compose-logs.txt'"
check "a crashing request handler in kv loses its connection only (kv still running)" \
  bash -c "grep -q 'kv_1.*trapped: .*CRASH' '$T/out/compose-logs.txt' && [ \"\$($DOCKER -H unix://$T/docker.sock inspect -f '{{.State.Status}}' troupe-e2e_kv_1)\" = running ]"
t0=$(date +%s%N)
compose_ stop >/dev/null 2>&1
t1=$(date +%s%N)
hb_code=$(docker_ inspect -f '{{.State.ExitCode}}' troupe-e2e_heartbeat_1 2>/dev/null)
kv_code=$(docker_ inspect -f '{{.State.ExitCode}}' troupe-e2e_kv_1 2>/dev/null)
note "docker-compose stop took $(( (t1 - t0) / 1000000 )) ms; heartbeat exited $hb_code, kv $kv_code"
check "docker-compose stop stops it cleanly (SIGTERM: exit 143, not 137)" test "$hb_code" = 143
check "docker-compose stop stops the kv service cleanly (exit 143)" test "$kv_code" = 143
check "docker-compose down" quiet "$T/out/compose-down.txt" compose_ down --remove-orphans
check "no compose container left" bash -c "[ -z \"\$($DOCKER -H unix://$T/docker.sock ps -aq)\" ]"

# ---------------------------------------------------------------- CRI
step "e2e: CRI (containerd's CRI plugin, runtime handler troupe)"
for img in pause native hello-docker; do
  docker_ save -o "$T/images/$img.tar" "troupe.e2e/$img:1"
  ctr --address "$SOCK" -n k8s.io images import "$T/images/$img.tar" >/dev/null
done
ctr --address "$SOCK" -n k8s.io images import --all-platforms "$T/images/hello.tar" >/dev/null
CRI=("$PY" scripts/e2e/cri.py "$SOCK" --workdir "$T" --handler troupe --cgroup-parent /troupe-e2e-cri)
check "CRI: a pod with handler troupe runs a troupe-image app" \
  "${CRI[@]}" --image docker.io/library/hello:e2e \
  --env FROM_POD=1 --env FROM_POD=2 --expect "Hello from Troupe!" --expect "env FROM_POD=2"
check "CRI: a pod with handler troupe runs a docker-built Wasm image" \
  "${CRI[@]}" --image troupe.e2e/hello-docker:1 --expect "Hello from Troupe!"
ctr --address "$SOCK" -n k8s.io images import --all-platforms "$T/images/heartbeat.tar" >/dev/null
check "CRI: a long-running actor app in a pod (ticks, then exits 0)" \
  "${CRI[@]}" --image docker.io/library/heartbeat:latest --arg 3 --arg 100 --arg 10 \
  --expect "tick 10: 3/3 workers answered" --expect "done after 10 ticks"
cri_leftovers() {
  local found=""
  for _ in $(seq 50); do
    found=""
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/exe" 2>/dev/null)" = "$SHIM" ] && found+=" shim:${p#/proc/}"
    done
    [ -n "$(ls -A "$T/containerd/state/io.containerd.runtime.v2.task/k8s.io" 2>/dev/null)" ] && found+=" task-state"
    [ -n "$(ls -A /run/containerd/troupe/k8s.io 2>/dev/null)" ] && found+=" runwasi-state"
    for d in /sys/fs/cgroup/*/troupe-e2e-cri; do
      [ -n "$(find "$d" -mindepth 1 -type d 2>/dev/null)" ] && found+=" cgroup:$d"
    done
    [ -z "$found" ] && return 0
    sleep 0.2
  done
  echo "    left behind by the pods:$found"
  return 1
}
check "no shim, state or cgroup left after the CRI pods" cri_leftovers

echo
echo "numbers (this run):"
echo "  ctr run -> first output line (median of 5): shim+VM ${FIRST_SHIM} ms;" \
     "runc + static C binary ${FIRST_RUNC} ms; runc + static troupe ${FIRST_RUNC_TROUPE} ms"
echo "  shim binary: $SHIM_SIZE"
echo "  idle heartbeat container (3 workers): $IDLE"
echo "  e2e wall time: $(( $(date +%s) - start_time )) s"
if [ "$FAILED" -gt 0 ]; then
  echo "failed:"; printf '  %s\n' "${FAILURES[@]}"
fi
echo "e2e-containers: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
