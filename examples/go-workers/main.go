// Command go-workers counts the primes below N with a pool of Go worker
// processes: the root fans the jobs out as requests (each with its own
// reply handle), gathers the answers, asks every worker for its statistics
// with request/reply, and checks the total against a sequential count.
//
//	troupe run go-workers.wasm [WORKERS] [N] [JOBS]   (defaults: 4, 2000000, 40)
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"troupe.dev/troupe"
	"troupe.dev/troupe/bincode"
)

// Work is what a worker's mailbox takes.
type Work interface{ isWork() }

type (
	// Job asks to count the primes in [Lo, Hi) and answer on Reply.
	Job struct {
		ID     uint32
		Lo, Hi uint64
		Reply  troupe.Reply
	}
	// GetStats asks for the worker's totals.
	GetStats troupe.Reply
	// Stop ends the worker.
	Stop struct{}
)

func (Job) isWork()      {}
func (GetStats) isWork() {}
func (Stop) isWork()     {}

func init() { bincode.RegisterEnum[Work](Job{}, GetStats{}, Stop{}) }

// Stats are a worker's totals.
type Stats struct {
	Jobs   uint32
	Primes uint64
}

func isPrime(n uint64) bool {
	if n < 4 {
		return n >= 2
	}
	if n%2 == 0 {
		return false
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func countPrimes(lo, hi uint64) uint64 {
	n := uint64(0)
	for i := lo; i < hi; i++ {
		if isPrime(i) {
			n++
		}
	}
	return n
}

// worker does jobs until told to stop.
func worker() {
	var index uint32
	if _, err := troupe.SpawnArg(&index); err != nil {
		fail("worker: spawn argument", err)
	}
	var stats Stats
	for {
		var w Work
		if _, err := troupe.Receive(&w); err != nil {
			fail("worker: receive", err)
		}
		switch m := w.(type) {
		case Job:
			primes := countPrimes(m.Lo, m.Hi)
			stats.Jobs++
			stats.Primes += primes
			if m.Reply.Send(primes) != nil {
				return // the boss is gone
			}
		case GetStats:
			troupe.Reply(m).Send(stats)
		case Stop:
			return
		}
	}
}

func arg(i int, def uint64) uint64 {
	if len(os.Args) <= i {
		return def
	}
	n, err := strconv.ParseUint(os.Args[i], 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "usage: go-workers [WORKERS] [N] [JOBS]  (bad argument %q)\n", os.Args[i])
		os.Exit(2)
	}
	return n
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "go-workers: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if troupe.Role() == "worker" {
		worker()
		return
	}
	workers, n, jobs := int(arg(1, 4)), arg(2, 2_000_000), uint32(arg(3, 40))
	if workers == 0 || jobs == 0 {
		fail("arguments", fmt.Errorf("WORKERS and JOBS must be at least 1"))
	}
	fmt.Printf("go-workers: root %v counts the primes below %d with %d workers and %d jobs\n",
		troupe.Self(), n, workers, jobs)

	start := time.Now()
	pool := make([]troupe.Pid, workers)
	names := make([]string, workers)
	for i := range pool {
		pid, err := troupe.SpawnSelf("worker", uint32(i))
		if err != nil {
			fail("spawn", err)
		}
		pool[i], names[i] = pid, pid.String()
	}
	fmt.Printf("go-workers: spawned %s in %.1f ms\n", strings.Join(names, " "),
		float64(time.Since(start).Microseconds())/1000)

	// Fan out: every job is a request with a reply handle of its own, sent
	// round-robin; then gather the answers in job order. The workers run in
	// parallel while the root waits for each answer in turn.
	start = time.Now()
	step := n / uint64(jobs)
	replies := make([]troupe.Reply, jobs)
	for id := uint32(0); id < jobs; id++ {
		lo := uint64(id) * step
		hi := lo + step
		if id+1 == jobs {
			hi = n
		}
		replies[id] = troupe.NewReply()
		job := Job{ID: id, Lo: lo, Hi: hi, Reply: replies[id]}
		if err := pool[int(id)%workers].Send(job); err != nil {
			fail("send", err)
		}
	}
	total := uint64(0)
	for id, r := range replies {
		var primes uint64
		if err := r.WaitTimeout(&primes, 60*time.Second); err != nil {
			fail(fmt.Sprintf("waiting for job %d", id), err)
		}
		total += primes
	}
	parallel := time.Since(start)

	fromStats := uint64(0)
	for i, w := range pool {
		var stats Stats
		getStats := func(r troupe.Reply) any { return GetStats(r) }
		if err := troupe.RequestTimeout(w, getStats, &stats, 10*time.Second); err != nil {
			fail("stats request", err)
		}
		fmt.Printf("go-workers: worker %d %v: %d jobs, %d primes\n", i, w, stats.Jobs, stats.Primes)
		fromStats += stats.Primes
		w.Send(Stop{})
	}
	fmt.Printf("go-workers: total %d primes below %d in %.3f s\n", total, n, parallel.Seconds())

	start = time.Now()
	sequential := countPrimes(0, n)
	fmt.Printf("go-workers: sequential count %d in %.3f s\n", sequential, time.Since(start).Seconds())
	if total != sequential || fromStats != sequential {
		fmt.Printf("go-workers: MISMATCH (pool %d, worker stats %d, sequential %d)\n", total, fromStats, sequential)
		os.Exit(1)
	}
	fmt.Println("go-workers: OK")
}
