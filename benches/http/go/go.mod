module troupe.dev/benches/http

go 1.22

require troupe.dev/troupe v0.0.0

replace troupe.dev/troupe => ../../../guest-sdk/go
