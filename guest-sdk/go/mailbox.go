package troupe

import (
	"os"
	"sync"
	"syscall"
	"time"

	"troupe.dev/troupe/abi"
)

// Waiting for a message without stopping the process.
//
// The mailbox is a WASI descriptor of every process (abi.ValMailboxFd,
// host-api/SPEC.md "WASI descriptors"): it is ready to read once a message
// arrives after a receive found none. One goroutine, the watcher, started
// by the first receive that has to wait, waits on it in Go's netpoller;
// each time it is ready, the watcher wakes every goroutine waiting in
// receive, which look again (and, finding none, re-arm the descriptor). A
// goroutine waiting for a message thus parks like one waiting on a socket
// or a timer, and when all of them wait, the Go runtime's poll_oneoff
// suspends this process in the VM until a socket, a timer or the mailbox
// is ready.

var mailbox struct {
	once sync.Once
	// file keeps the descriptor's *os.File (and its place in the
	// netpoller) alive.
	file *os.File
	mu   sync.Mutex
	// arrived is closed when the watcher sees the descriptor ready; a
	// new channel takes its place.
	arrived chan struct{}
}

// waitArrival parks the calling goroutine until a message may have arrived
// since its last receive found none (true), or timer fires (false; a nil
// timer never does).
func waitArrival(timer *time.Timer) bool {
	mailbox.once.Do(startWatcher)
	mailbox.mu.Lock()
	arrived := mailbox.arrived
	mailbox.mu.Unlock()
	if timer == nil {
		<-arrived
		return true
	}
	select {
	case <-arrived:
		return true
	case <-timer.C:
		return false
	}
}

func startWatcher() {
	mailbox.file = os.NewFile(uintptr(abi.ValMailboxFd), "troupe-mailbox")
	raw, err := mailbox.file.SyscallConn()
	if err != nil {
		panic("troupe: the mailbox's descriptor: " + err.Error())
	}
	mailbox.arrived = make(chan struct{})
	go watchMailbox(raw)
}

func watchMailbox(raw syscall.RawConn) {
	for {
		// RawConn.Read calls the function, which says "not ready" the
		// first time, waits in the netpoller until the descriptor is
		// ready, and calls it again.
		waited := false
		err := raw.Read(func(uintptr) bool {
			done := waited
			waited = true
			return done
		})
		if err != nil {
			panic("troupe: waiting on the mailbox's descriptor: " + err.Error())
		}
		mailbox.mu.Lock()
		close(mailbox.arrived)
		mailbox.arrived = make(chan struct{})
		mailbox.mu.Unlock()
	}
}
