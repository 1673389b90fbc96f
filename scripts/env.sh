# Shared settings of the scripts (sourced, not run).
# A cargo target dir outside the clone, so builds are kept between runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/troupe-target}"
TROUPE="$CARGO_TARGET_DIR/release/troupe"
GUESTS="$CARGO_TARGET_DIR/wasm32-wasip1/release"

step() { printf '\n==> %s\n' "$*"; }

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
