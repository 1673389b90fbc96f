// Command costs measures what a Go process costs in the Troupe VM: the
// spawn call, the time until a spawned Go process has started (its Go
// runtime initialised, main running, a first message sent), and the memory
// of N idle Go processes parked in Receive, from the VM's own
// /proc/self/status (VmRSS) and /proc/self/smaps_rollup (Pss):
//
//	troupe run --dir /proc::/proc costs.wasm [N]   (N defaults to 1000)
//
// Every process runs inside the VM's OS process, so /proc/self is the VM.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"troupe.dev/troupe"
)

// kB reads a "Key:  N kB" line of a /proc file.
func kB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == key+":" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			return n
		}
	}
	return -1
}

func memory() (rss, pss int64) {
	return kB("/proc/self/status", "VmRSS"), kB("/proc/self/smaps_rollup", "Pss")
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "costs: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if troupe.Role() == "idle" {
		var parent troupe.Pid
		troupe.SpawnArg(&parent)
		parent.Send(troupe.Self())
		var stop bool
		troupe.Receive(&stop) // parked until the VM ends
		return
	}
	n := 1000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if rss, _ := memory(); rss < 0 {
		fail("cannot read /proc/self/status", fmt.Errorf("run with --dir /proc::/proc"))
	}

	// Start-up latency, one process at a time: the spawn call, and the time
	// until the child's first message (its Go runtime is up, main runs).
	const probes = 20
	var calls, readies []time.Duration
	for i := 0; i < probes; i++ {
		start := time.Now()
		pid, err := troupe.SpawnSelf("idle", troupe.Self(), troupe.WithPreopens())
		if err != nil {
			fail("spawn", err)
		}
		call := time.Since(start)
		var ready troupe.Pid
		if _, err := troupe.Receive(&ready); err != nil || ready != pid {
			fail("ready", err)
		}
		calls, readies = append(calls, call), append(readies, time.Since(start))
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Nanoseconds()) / 1000
	}
	fmt.Printf("costs: spawn call %.0f us, spawn until the Go child's first message %.0f us (median of %d)\n",
		median(calls), median(readies), probes)

	// N idle processes.
	time.Sleep(20 * time.Millisecond)
	rss0, pss0 := memory()
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := troupe.SpawnSelf("idle", troupe.Self(), troupe.WithPreopens()); err != nil {
			fail(fmt.Sprintf("spawn %d", i), err)
		}
	}
	spawned := time.Since(start)
	for i := 0; i < n; i++ {
		var ready troupe.Pid
		if _, err := troupe.ReceiveTimeout(&ready, 60*time.Second); err != nil {
			fail("ready", err)
		}
	}
	all := time.Since(start)
	time.Sleep(20 * time.Millisecond) // let the last ones park in Receive
	rss1, pss1 := memory()
	fmt.Printf("costs: %d Go processes: spawn calls %.1f us each, all running after %.0f ms (%.0f us each)\n",
		n, float64(spawned.Microseconds())/float64(n), float64(all.Milliseconds()),
		float64(all.Microseconds())/float64(n))
	fmt.Printf("costs: VM memory %d -> %d MiB RSS, %d -> %d MiB PSS\n", rss0>>10, rss1>>10, pss0>>10, pss1>>10)
	fmt.Printf("costs: per idle Go process: %.0f KiB RSS, %.0f KiB PSS\n",
		float64(rss1-rss0)/float64(n), float64(pss1-pss0)/float64(n))
}
