// Command go-echo is a TCP echo server made of Troupe processes: the root
// process listens, and hands every connection it accepts to a handler
// process of its own (troupe.SpawnSelf("handler", conn): the connection
// moves to the child with its spawn argument), which echoes lines until the
// client closes its side.
//
//	troupe run --allow-net go-echo.wasm [ADDR] [--once N]
//
// ADDR defaults to 127.0.0.1:7007 (port 0 picks a free port: the line
// "go-echo: listening on ADDR" gives the real one). With --once N the root
// stops accepting after N connections, waits until their handlers are done
// (it monitors them) and exits.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"

	"troupe.dev/troupe"
)

func main() {
	if troupe.Role() == "handler" {
		handler()
		return
	}
	root()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-echo: "+format+"\n", args...)
	os.Exit(1)
}

func root() {
	addr, once := "127.0.0.1:7007", 0
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--once" && i+1 < len(args):
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n <= 0 {
				fail("--once wants a positive count, not %q", args[i+1])
			}
			once = n
			i++
		case len(args[i]) > 0 && args[i][0] != '-':
			addr = args[i]
		default:
			fail("usage: go-echo [ADDR] [--once N]")
		}
	}

	ln, err := troupe.ListenTCP(addr)
	if err != nil {
		// Without troupe run --allow-net: errors.Is(err, os.ErrPermission),
		// and the VM's message says so.
		fail("%v", err)
	}
	fmt.Printf("go-echo: listening on %v\n", ln.Addr())

	handlers := map[troupe.Pid]int{} // pid -> connection number
	for n := 1; once == 0 || n <= once; n++ {
		conn, err := ln.AcceptTCP()
		if err != nil {
			fail("accept: %v", err)
		}
		peer := conn.RemoteAddr()
		// The connection moves to the handler: from here on this process
		// cannot use it (conn.Close would do nothing).
		pid, err := troupe.SpawnSelf("handler", conn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "go-echo: connection %d from %v: cannot spawn a handler: %v\n", n, peer, err)
			continue
		}
		if once > 0 {
			troupe.Monitor(pid)
			handlers[pid] = n
		}
		fmt.Printf("go-echo: connection %d from %v handed to %v\n", n, peer, pid)
	}
	ln.Close()
	for len(handlers) > 0 {
		ev, err := troupe.ReceiveDown(troupe.Forever)
		if err != nil {
			fail("waiting for the handlers: %v", err)
		}
		if n, ok := handlers[ev.From]; ok {
			delete(handlers, ev.From)
			fmt.Printf("go-echo: handler %v of connection %d done (%v)\n", ev.From, n, ev.Reason)
		}
	}
	fmt.Printf("go-echo: served %d connections\n", once)
}

// handler echoes the lines of the connection it was given until the client
// closes its side.
func handler() {
	var conn *troupe.TCPConn
	if _, err := troupe.SpawnArg(&conn); err != nil {
		fail("handler: %v", err)
	}
	defer conn.Close()
	in := bufio.NewReader(conn)
	lines := 0
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := conn.Write(line); werr != nil {
				fail("handler %v: write: %v", troupe.Self(), werr)
			}
			lines++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("handler %v: read: %v", troupe.Self(), err)
		}
	}
	fmt.Printf("go-echo: handler %v echoed %d lines to %v\n", troupe.Self(), lines, conn.RemoteAddr())
}
