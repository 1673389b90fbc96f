module troupe.dev/examples/go-supervised/worker

go 1.22

require troupe.dev/troupe v0.0.0

replace troupe.dev/troupe => ../../../guest-sdk/go
