// Command worker is the Go half of the go-supervised example: a worker
// process that a Rust supervisor starts (the module's _start, so this main),
// restarts when it crashes, and stops. It answers requests typed by the Rust
// enum Job in ../supervisor/src/main.rs.
//
// It knows nothing of supervision: it reads its name from the spawn
// argument, serves requests, and panics when asked to. A Go panic ends the
// process with exit code 2, an abnormal exit that the supervisor, linked to
// it, sees and answers with a fresh worker.
package main

import (
	"fmt"
	"os"

	"troupe.dev/troupe"
	"troupe.dev/troupe/bincode"
)

// Job is the Rust enum Job { Square(u64, Reply<u64>), Crash(String),
// Stats(Reply<Stats>) }: one Go type per variant, in the Rust order.
type Job interface{ isJob() }

type (
	Square struct {
		N     uint64
		Reply troupe.Reply
	}
	Crash    string
	StatsJob troupe.Reply
)

func (Square) isJob()   {}
func (Crash) isJob()    {}
func (StatsJob) isJob() {}

func init() { bincode.RegisterEnum[Job](Square{}, Crash(""), StatsJob{}) }

// Stats is the Rust struct Stats { name: String, pid: u64, jobs: u32 }.
type Stats struct {
	Name string
	Pid  uint64
	Jobs uint32
}

func main() {
	var name string
	if _, err := troupe.SpawnArg(&name); err != nil {
		fmt.Fprintf(os.Stderr, "go worker: no spawn argument (start me from a supervisor): %v\n", err)
		os.Exit(1)
	}
	self := troupe.Self()
	fmt.Printf("go worker %s %v: started\n", name, self)
	stats := Stats{Name: name, Pid: uint64(self)}
	for {
		var job Job
		if _, err := troupe.Receive(&job); err != nil {
			fmt.Fprintf(os.Stderr, "go worker %s: %v\n", name, err)
			os.Exit(1)
		}
		switch j := job.(type) {
		case Square:
			stats.Jobs++
			j.Reply.Send(j.N * j.N)
		case StatsJob:
			troupe.Reply(j).Send(stats)
		case Crash:
			panic(fmt.Sprintf("go worker %s %v: %s", name, self, string(j)))
		}
	}
}
