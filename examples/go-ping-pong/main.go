// Command go-ping-pong: two Go processes bounce a ball back and forth N
// times and report the rate (the Go twin of examples/ping-pong).
//
//	troupe run go-ping-pong.wasm [N]   (N defaults to 100000)
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"troupe.dev/troupe"
	"troupe.dev/troupe/bincode"
)

// Pong is what pong's mailbox takes: the Rust enum
// Pong { Ball(u64), Count(Reply<u64>), Stop(Reply<()>) }.
type Pong interface{ isPong() }

type (
	Ball  uint64       // send this number back
	Count troupe.Reply // how many balls have you seen?
	Stop  troupe.Reply // say goodbye, answer, and end
)

func (Ball) isPong()  {}
func (Count) isPong() {}
func (Stop) isPong()  {}

func init() { bincode.RegisterEnum[Pong](Ball(0), Count{}, Stop{}) }

// pong returns every ball to ping until told to stop.
func pong() {
	var ping troupe.Pid
	if _, err := troupe.SpawnArg(&ping); err != nil {
		fail("pong: spawn argument", err)
	}
	fmt.Printf("pong %v: started, bouncing balls back to %v\n", troupe.Self(), ping)
	seen := uint64(0)
	for {
		var msg Pong
		if _, err := troupe.Receive(&msg); err != nil {
			fail("pong: receive", err)
		}
		switch m := msg.(type) {
		case Ball:
			seen++
			if ping.Send(uint64(m)) != nil {
				return // ping is gone: nothing left to do
			}
		case Count:
			troupe.Reply(m).Send(seen)
		case Stop:
			fmt.Printf("pong %v: stopping after %d balls\n", troupe.Self(), seen)
			troupe.Reply(m).Send(struct{}{})
			return
		}
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "go-ping-pong: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if troupe.Role() == "pong" {
		pong()
		return
	}
	rounds := uint64(100_000)
	if len(os.Args) > 1 {
		n, err := strconv.ParseUint(os.Args[1], 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "usage: go-ping-pong [ROUND_TRIPS]  (got %q)\n", os.Args[1])
			os.Exit(2)
		}
		rounds = n
	}

	fmt.Printf("go-ping-pong: root process %v\n", troupe.Self())
	start := time.Now()
	pong, err := troupe.SpawnSelf("pong", troupe.Self())
	if err != nil {
		fail("spawn", err)
	}
	fmt.Printf("go-ping-pong: spawned pong %v in %d us\n", pong, time.Since(start).Microseconds())

	// A few round trips to show (the first includes pong's start-up), then
	// the timed ones.
	const shown = 3
	var back uint64
	for ball := uint64(0); ball < shown; ball++ {
		start := time.Now()
		if err := pong.Send(Ball(ball)); err != nil {
			fail("send", err)
		}
		if _, err := troupe.Receive(&back); err != nil {
			fail("receive", err)
		}
		fmt.Printf("go-ping-pong: %v sent ball %d to %v, got %d back in %d us\n",
			troupe.Self(), ball, pong, back, time.Since(start).Microseconds())
	}

	start = time.Now()
	for ball := uint64(0); ball < rounds; ball++ {
		if err := pong.Send(Ball(ball)); err != nil {
			fail("send", err)
		}
		if _, err := troupe.Receive(&back); err != nil {
			fail("receive", err)
		}
		if back != ball {
			fail("wrong ball", fmt.Errorf("sent %d, got %d back", ball, back))
		}
	}
	secs := time.Since(start).Seconds()

	timeout := 10 * time.Second
	var seen uint64
	count := func(r troupe.Reply) any { return Count(r) }
	if err := troupe.RequestTimeout(pong, count, &seen, timeout); err != nil {
		fail("count request", err)
	}
	if seen != shown+rounds {
		fail("count", fmt.Errorf("pong saw %d balls, expected %d", seen, shown+rounds))
	}
	fmt.Printf("go-ping-pong: pong saw %d balls\n", seen)
	stop := func(r troupe.Reply) any { return Stop(r) }
	if err := troupe.RequestTimeout(pong, stop, &struct{}{}, timeout); err != nil {
		fail("stop request", err)
	}

	rate := float64(rounds) / secs
	fmt.Printf("go-ping-pong: %d round trips in %.3f s = %.0f round trips/s\n", rounds, secs, rate)
}
