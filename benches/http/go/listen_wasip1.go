//go:build wasip1

package main

import (
	"net"

	"troupe.dev/troupe"
)

func listen(addr string) (net.Listener, error) { return troupe.ListenTCP(addr) }
