module troupe.dev/examples/go-db

go 1.22

require (
	github.com/gomodule/redigo v1.8.3
	github.com/lib/pq v1.10.7
	troupe.dev/troupe v0.0.0
)

// No module proxy: the SDK from this repository, the libraries from
// Debian's golang-github-lib-pq-dev and golang-github-gomodule-redigo-dev.
replace (
	github.com/gomodule/redigo => /usr/share/gocode/src/github.com/gomodule/redigo
	github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq
	troupe.dev/troupe => ../../guest-sdk/go
)
