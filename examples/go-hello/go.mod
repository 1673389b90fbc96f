module troupe.dev/examples/go-hello

go 1.22
