#!/usr/bin/env bash
# The soak benchmark: message traffic at the VM's full rate for a long time
# (default 10 minutes), the VM's RSS sampled every 10 s. A VM that leaks shows
# a rising curve; a sound one a flat one. Two phases of half the time each,
# each one VM: a ring of 10,000 processes (the bench guest's `ring`), then
# ping-pong (`pingpong`), sized by a short calibration run. Writes
# benches/results/soak.md.
#   benches/soak.sh                        # 10 minutes
#   benches/soak.sh --minutes 1            # a short look
#   TROUPE_BIN=/path/to/troupe benches/soak.sh --guests DIR
# Builds the VM and the bench guest as benches/run.sh does, unless given.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
minutes=10
guests="${TROUPE_BENCH_GUESTS:-}"
out="$here/results/soak.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --guests) guests="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "soak.sh: unknown argument $1 (see the header of this file)" >&2; exit 2 ;;
  esac
done

vm_target="${CARGO_TARGET_DIR:-/var/tmp/troupe-target}"
troupe="${TROUPE_BIN:-}"
if [ -z "$troupe" ]; then
  (cd "$repo" && CARGO_TARGET_DIR="$vm_target" cargo build --release --locked --bin troupe)
  troupe="$vm_target/release/troupe"
fi
if [ -z "$guests" ]; then
  rustup target add wasm32-wasip1 >/dev/null
  CARGO_TARGET_DIR="$vm_target" cargo build --release --locked --target wasm32-wasip1 \
    --manifest-path "$repo/wasm/Cargo.toml" -p troupe-bench-guests
  guests="$vm_target/wasm32-wasip1/release"
fi
bench="$guests/bench.wasm"
[ -f "$bench" ] || { echo "soak.sh: no $bench" >&2; exit 1; }

samples=$(mktemp)
trap 'rm -f "$samples" "$samples.run"' EXIT

# Runs `bench ARGS` in one VM (2 threads), sampling its RSS every 10 s into
# $samples as "PHASE SECONDS RSS_KIB"; prints the run's JSON line.
soak_run() {
  local phase=$1; shift
  "$troupe" run --threads 2 --max-processes 10100 "$bench" "$@" > "$samples.run" 2>/dev/null &
  local pid=$! t0 t
  t0=$(date +%s)
  sleep 2
  while kill -0 "$pid" 2>/dev/null; do
    t=$(( $(date +%s) - t0 ))
    awk -v p="$phase" -v t="$t" '/^VmRSS:/{print p, t, $2}' "/proc/$pid/status" 2>/dev/null >> "$samples" || true
    sleep 10
  done
  wait "$pid"
  cat "$samples.run"
}
value() { grep -o '"value":[0-9.]*' | cut -d: -f2 | cut -d. -f1; }

# Calibrate: how many laps and round trips fill half the time each.
half=$(( minutes * 30 ))
ring_rate=$("$troupe" run --threads 2 --max-processes 10100 "$bench" ring procs=10000 laps=20 2>/dev/null | value)
pp_rate=$("$troupe" run --threads 2 --max-processes 10100 "$bench" pingpong rounds=200000 2>/dev/null | value)
laps=$(( ring_rate * half / 10000 ))
rounds=$(( pp_rate * half ))
echo "soak: ring of 10,000 x $laps laps (~${half} s at $ring_rate msgs/s), then $rounds round trips"
ring_out=$(soak_run ring ring procs=10000 "laps=$laps")
pp_out=$(soak_run pingpong pingpong "rounds=$rounds")

{
  echo "# Soak: about $minutes minutes of message traffic in two VMs"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, \`benches/soak.sh --minutes $minutes\`."
  echo "One VM (2 threads) per phase, its RSS read every 10 s while it runs."
  echo
  echo "- ring of 10,000 processes, $laps laps: $(echo "$ring_out" | value) msgs/s"
  echo "- ping-pong, $rounds round trips: $(echo "$pp_out" | value) round trips/s"
  echo
  echo "| phase | t (s) | RSS (MB) |"
  echo "|---|---:|---:|"
  awk '{ printf "| %s | %d | %.1f |\n", $1, $2, $3 / 1024 }' "$samples"
  echo
  for p in ring pingpong; do
    awk -v p="$p" '$1 == p { n++; if (n == 2) first = $3; last = $3; if ($3 > max) max = $3 }
      END { if (n > 1) printf "- %s: RSS %.1f MB at the second sample, %.1f MB at the last (%+.1f%%), peak %.1f MB, %d samples\n", p, first / 1024, last / 1024, (last - first) * 100 / first, max / 1024, n }' "$samples"
  done
} > "$out"
cat "$out"
