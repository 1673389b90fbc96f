module troupe.dev/troupe

go 1.22
