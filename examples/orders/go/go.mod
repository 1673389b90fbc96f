module troupe.dev/examples/orders

go 1.22

require (
	github.com/lib/pq v1.10.7
	troupe.dev/troupe v0.0.0
)

// No module proxy: the SDK from this repository, lib/pq from Debian's
// golang-github-lib-pq-dev (the Dockerfile's build stage does the same).
replace (
	github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq
	troupe.dev/troupe => ../../../guest-sdk/go
)
