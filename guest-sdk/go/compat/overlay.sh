#!/usr/bin/env bash
# Prints a `go build -overlay` file that adds what a Go library needs to
# build for GOOS=wasip1 (see README.md):
#   guest-sdk/go/compat/overlay.sh > overlay.json
#   GOOS=wasip1 GOARCH=wasm go build -overlay overlay.json ...
# PQ_DIR: where github.com/lib/pq's sources are (default: Debian's
# golang-github-lib-pq-dev).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pq="${PQ_DIR:-/usr/share/gocode/src/github.com/lib/pq}"
if [ -e "$pq/user_wasip1.go" ] || grep -qs 'wasip1' "$pq/user_other.go"; then
  echo '{"Replace":{}}' # this lib/pq builds for wasip1 as it is
else
  printf '{"Replace":{"%s/user_wasip1.go":"%s/pq_user_wasip1.go.txt"}}\n' "$pq" "$here"
fi
