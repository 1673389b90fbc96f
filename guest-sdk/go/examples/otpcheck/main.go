// Command otpcheck exercises the Go SDK's Server and Supervisor against the
// Troupe VM, with the semantics of Erlang/OTP's gen_server and supervisor
// (and the Rust SDK's). It prints "otpcheck: NAME: ok" per check and ends
// with "otpcheck: all ok" (exit 0), or names what failed (exit 1).
// cli/tests/all/go.rs runs it.
//
//	GOOS=wasip1 GOARCH=wasm go build -o otpcheck.wasm ./examples/otpcheck
//	troupe run otpcheck.wasm
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"troupe.dev/troupe"
)

const wait = 10 * time.Second

// CellArg starts a cell: a server holding a number.
type CellArg struct {
	Name  string
	Root  troupe.Pid // told of terminate and infos
	Fail  string     // init fails with this reason if set
	Start int64
}

// Ops of a CellCall.
const (
	opGet uint32 = iota
	opAdd
	opCrash
	opStopWithReply
	opDefer     // answered by the next cast
	opSleep     // answers after N ms
	opMonitorMe // monitors the caller, for HandleInfo's DOWN
)

// CellCall is a call to a cell.
type CellCall struct {
	Op uint32
	N  int64
}

// CellRef is a running cell.
type CellRef = troupe.ServerRef[CellCall, int64, int64, string]

type cell struct {
	arg      CellArg
	n        int64
	deferred []troupe.Caller[int64]
}

func newCell(arg CellArg) (troupe.Server[CellCall, int64, int64, string], troupe.ExitReason) {
	if arg.Fail != "" {
		r, _ := troupe.CustomReason(arg.Fail)
		return nil, r
	}
	// Trapping exits: an exit signal from the parent (a supervisor's
	// shutdown) runs Terminate.
	troupe.TrapExit(true)
	return &cell{arg: arg, n: arg.Start}, nil
}

func (c *cell) HandleCall(req CellCall, from troupe.Caller[int64]) (int64, troupe.Next) {
	switch req.Op {
	case opAdd:
		c.n += req.N
	case opCrash:
		panic("the cell crashes on purpose")
	case opStopWithReply:
		return c.n, troupe.Stop(troupe.ExitShutdown{})
	case opDefer:
		c.deferred = append(c.deferred, from)
		return 0, troupe.NoReply
	case opSleep:
		time.Sleep(time.Duration(req.N) * time.Millisecond)
	case opMonitorMe:
		troupe.Monitor(from.Pid)
	}
	return c.n, troupe.Continue
}

func (c *cell) HandleCast(add int64) troupe.Next {
	c.n += add
	for _, d := range c.deferred {
		_ = d.Reply(c.n)
	}
	c.deferred = nil
	return troupe.Continue
}

func (c *cell) HandleInfo(ev troupe.Event, msg string) troupe.Next {
	switch ev.Kind {
	case troupe.EventMessage:
		_ = c.arg.Root.Send("info " + c.arg.Name + " " + msg)
	case troupe.EventDown:
		_ = c.arg.Root.Send("down " + c.arg.Name)
	case troupe.EventExit:
		_ = c.arg.Root.Send("exit " + c.arg.Name)
	}
	return troupe.Continue
}

// Terminate tells the root, unless the reason is normal (the checks that
// stop a cell normally do not wait for the note).
func (c *cell) Terminate(reason troupe.ExitReason) {
	if reason != (troupe.ExitNormal{}) {
		_ = c.arg.Root.Send(fmt.Sprintf("terminate %s %v", c.arg.Name, reason))
	}
}

// worker is a supervised worker: it waits for a command.
func worker() {
	var name string
	if _, err := troupe.SpawnArg(&name); err != nil {
		panic(err)
	}
	for {
		var cmd string
		if _, err := troupe.Receive(&cmd); err != nil {
			continue
		}
		switch cmd {
		case "return":
			return
		case "crash":
			panic("the worker crashes on purpose")
		}
	}
}

var failed []string

func check(name string, err error) {
	if err != nil {
		failed = append(failed, name)
		fmt.Printf("otpcheck: %s: FAILED: %v\n", name, err)
		return
	}
	fmt.Printf("otpcheck: %s: ok\n", name)
}

func expect(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// expectNote waits for the next string message and checks it.
func expectNote(want string) error {
	var got string
	if _, err := troupe.ReceiveTimeout(&got, wait); err != nil {
		return fmt.Errorf("waiting for %q: %w", want, err)
	}
	return expect(got == want, "got %q, want %q", got, want)
}

func startCell(name string, opts ...troupe.StartOption) (CellRef, error) {
	return troupe.StartServer[CellCall, int64, int64, string]("cell",
		CellArg{Name: name, Root: troupe.Self()}, opts...)
}

func servers() {
	check("server: start, cast, call", func() error {
		c, err := troupe.StartServer[CellCall, int64, int64, string]("cell",
			CellArg{Name: "a", Root: troupe.Self(), Start: 10}, troupe.Linked())
		if err != nil {
			return err
		}
		if err := c.Cast(5); err != nil {
			return err
		}
		n, err := c.Call(CellCall{Op: opAdd, N: 1}, wait)
		if err != nil {
			return err
		}
		if err := expect(n == 16, "got %d, want 16", n); err != nil {
			return err
		}
		return c.Stop(troupe.ExitNormal{}, wait)
	}())

	check("server: Stop runs Terminate and ends with the reason", func() error {
		c, err := startCell("b")
		if err != nil {
			return err
		}
		if err := c.Stop(troupe.ExitShutdown{}, wait); err != nil {
			return err
		}
		return expectNote("terminate b shutdown")
	}())

	check("server: a name, and a second start under it", func() error {
		c, err := startCell("named", troupe.Named("cell-x"))
		if err != nil {
			return err
		}
		found, err := troupe.WhereisServer[CellCall, int64, int64, string]("cell-x")
		if err != nil || found.Pid != c.Pid {
			return fmt.Errorf("whereis: %v %v", found, err)
		}
		_, err = startCell("again", troupe.Named("cell-x"))
		var already *troupe.AlreadyStartedError
		if !errors.As(err, &already) || already.Pid != c.Pid || !errors.Is(err, troupe.ErrAlreadyRegistered) {
			return fmt.Errorf("second start: %v", err)
		}
		return c.Stop(troupe.ExitNormal{}, wait)
	}())

	check("server: init's error fails the start, and a linked starter lives", func() error {
		_, err := troupe.StartServer[CellCall, int64, int64, string]("cell",
			CellArg{Name: "f", Root: troupe.Self(), Fail: "no database"}, troupe.Linked())
		var se *troupe.ServerError
		if !errors.As(err, &se) {
			return fmt.Errorf("start: %v", err)
		}
		want, _ := troupe.CustomReason("no database")
		return expect(fmt.Sprint(se.Reason) == fmt.Sprint(want), "reason %v", se.Reason)
	}())

	check("server: a call to a server that ended is ErrNoProcess", func() error {
		c, err := startCell("gone")
		if err != nil {
			return err
		}
		if err := c.Stop(troupe.ExitNormal{}, wait); err != nil {
			return err
		}
		_, err = c.Call(CellCall{Op: opGet}, wait)
		return expect(errors.Is(err, troupe.ErrNoProcess), "got %v", err)
	}())

	check("server: a server dying in a call gives its reason at once", func() error {
		c, err := startCell("crash")
		if err != nil {
			return err
		}
		start := time.Now()
		_, err = c.Call(CellCall{Op: opCrash}, wait)
		var se *troupe.ServerError
		if !errors.As(err, &se) {
			return fmt.Errorf("got %v", err)
		}
		// A Go panic ends the process with exit code 2.
		return expect(se.Reason == troupe.ExitCode(2) && time.Since(start) < wait/2,
			"reason %v after %v", se.Reason, time.Since(start))
	}())

	check("server: a call times out, and other messages keep their order", func() error {
		c, err := startCell("slow")
		if err != nil {
			return err
		}
		_ = troupe.Self().Send("first")
		_ = troupe.Self().Send("second")
		_, err = c.Call(CellCall{Op: opSleep, N: 500}, 50*time.Millisecond)
		if !errors.Is(err, troupe.ErrTimeout) {
			return fmt.Errorf("got %v", err)
		}
		if err := expectNote("first"); err != nil {
			return err
		}
		if err := expectNote("second"); err != nil {
			return err
		}
		// The late reply (an int64) must not be taken for a string message.
		if err := c.Stop(troupe.ExitNormal{}, wait); err != nil {
			return err
		}
		return nil
	}())

	check("server: NoReply, then the answer from another handler", func() error {
		c, err := startCell("deferred")
		if err != nil {
			return err
		}
		done := make(chan int64, 1)
		go func() {
			n, _ := c.Call(CellCall{Op: opDefer}, wait)
			done <- n
		}()
		time.Sleep(50 * time.Millisecond) // the call is queued first
		if err := c.Cast(42); err != nil {
			return err
		}
		select {
		case n := <-done:
			if n != 42 {
				return fmt.Errorf("got %d", n)
			}
		case <-time.After(wait):
			return errors.New("no answer")
		}
		return c.Stop(troupe.ExitNormal{}, wait)
	}())

	check("server: Stop from a call answers, then ends", func() error {
		c, err := startCell("stopper")
		if err != nil {
			return err
		}
		m := troupe.Monitor(c.Pid)
		n, err := c.Call(CellCall{Op: opStopWithReply}, wait)
		if err != nil || n != 0 {
			return fmt.Errorf("reply %d %v", n, err)
		}
		ev, err := troupe.ReceiveDown(wait)
		if err != nil || ev.Monitor != m || ev.Reason != (troupe.ExitShutdown{}) {
			return fmt.Errorf("down %+v %v", ev, err)
		}
		return expectNote("terminate stopper shutdown")
	}())

	check("server: Info and InfoAfter reach HandleInfo", func() error {
		c, err := startCell("info")
		if err != nil {
			return err
		}
		if _, err := c.InfoAfter("later", 30*time.Millisecond); err != nil {
			return err
		}
		if err := c.Info("now"); err != nil {
			return err
		}
		if err := expectNote("info info now"); err != nil {
			return err
		}
		if err := expectNote("info info later"); err != nil {
			return err
		}
		return c.Stop(troupe.ExitNormal{}, wait)
	}())

	check("server: an exit signal from the parent stops it through Terminate", func() error {
		c, err := startCell("child")
		if err != nil {
			return err
		}
		if err := troupe.SendExit(c.Pid, troupe.ExitShutdown{}); err != nil {
			return err
		}
		return expectNote("terminate child shutdown")
	}())

	check("server: a DOWN goes to HandleInfo", func() error {
		c, err := startCell("watcher")
		if err != nil {
			return err
		}
		if _, err := troupe.SpawnSelf("caller", c.Pid); err != nil {
			return err
		}
		if err := expectNote("down watcher"); err != nil {
			return err
		}
		return c.Stop(troupe.ExitNormal{}, wait)
	}())
}

// caller calls the cell it is given with opMonitorMe, then ends.
func caller() {
	var p troupe.Pid
	if _, err := troupe.SpawnArg(&p); err != nil {
		panic(err)
	}
	c := CellRef{Pid: p}
	if _, err := c.Call(CellCall{Op: opMonitorMe}, wait); err != nil {
		panic(err)
	}
}

func cellChild(name string) troupe.ChildSpec {
	return troupe.ServerChild(name, "cell", CellArg{Name: name, Root: troupe.Self()})
}

func pids(s troupe.SupervisorRef) (map[string]troupe.Pid, error) {
	infos, err := s.WhichChildren()
	out := map[string]troupe.Pid{}
	for _, c := range infos {
		out[c.ID] = c.Pid
	}
	return out, err
}

// restarted waits until the child id runs with another pid than old.
func restarted(s troupe.SupervisorRef, id string, old troupe.Pid) (troupe.Pid, error) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		now, err := pids(s)
		if err != nil {
			return 0, err
		}
		if p := now[id]; p != 0 && p != old {
			return p, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s was not restarted", id)
}

// drainNotes drops the string messages that came (terminate notes).
func drainNotes() {
	for {
		var s string
		if _, err := troupe.TryReceive(&s); err != nil {
			return
		}
	}
}

func strategies() {
	for _, tc := range []struct {
		name     string
		strategy troupe.Strategy
		same     []string
		changed  []string
	}{
		{"one_for_one", troupe.OneForOne, []string{"a", "c"}, []string{"b"}},
		{"one_for_all", troupe.OneForAll, nil, []string{"a", "b", "c"}},
		{"rest_for_one", troupe.RestForOne, []string{"a"}, []string{"b", "c"}},
	} {
		check("supervisor: "+tc.name+" restarts what it should", func() error {
			sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
				Strategy: tc.strategy, Intensity: 5, Period: 10 * time.Second,
				Children: []troupe.ChildSpec{cellChild("a"), cellChild("b"), cellChild("c")},
			}) // not linked: it ends with shutdown, which would end the root
			if err != nil {
				return err
			}
			before, err := pids(sup)
			if err != nil {
				return err
			}
			if err := troupe.Kill(before["b"]); err != nil {
				return err
			}
			if _, err := restarted(sup, "b", before["b"]); err != nil {
				return err
			}
			for _, id := range tc.changed {
				if _, err := restarted(sup, id, before[id]); err != nil {
					return err
				}
			}
			after, _ := pids(sup)
			for _, id := range tc.same {
				if after[id] != before[id] {
					return fmt.Errorf("%s was restarted (%v -> %v)", id, before[id], after[id])
				}
			}
			infos, _ := sup.WhichChildren()
			if err := expect(len(infos) == 3 && infos[1].ID == "b" && infos[1].Restarts == 1,
				"children %+v", infos); err != nil {
				return err
			}
			err = sup.Stop(troupe.ExitShutdown{}, wait)
			drainNotes()
			return err
		}())
	}
}

func supervisors() {
	strategies()

	check("supervisor: children stop in reverse order on shutdown", func() error {
		sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
			Children: []troupe.ChildSpec{cellChild("x"), cellChild("y"), cellChild("z")},
		})
		if err != nil {
			return err
		}
		if err := sup.Stop(troupe.ExitShutdown{}, wait); err != nil {
			return err
		}
		for _, id := range []string{"z", "y", "x"} {
			if err := expectNote("terminate " + id + " shutdown"); err != nil {
				return err
			}
		}
		return nil
	}())

	check("supervisor: transient and temporary children", func() error {
		sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
			Intensity: 5, Period: 10 * time.Second,
			Children: []troupe.ChildSpec{
				troupe.WorkerChild("transient", "worker", "t").WithRestart(troupe.Transient),
				troupe.WorkerChild("temporary", "worker", "p").WithRestart(troupe.Temporary),
				troupe.WorkerChild("permanent", "worker", "q"),
			},
		})
		if err != nil {
			return err
		}
		before, _ := pids(sup)
		_ = before["transient"].Send("return") // a normal end: not restarted
		_ = before["temporary"].Send("crash")  // removed
		_ = before["permanent"].Send("return") // restarted even so
		if _, err := restarted(sup, "permanent", before["permanent"]); err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		for {
			now, _ := pids(sup)
			_, hasTemp := now["temporary"]
			if !hasTemp && now["transient"] == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("children %v", now)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// A transient child that crashes is restarted.
		if _, err := sup.RestartChild("transient"); err != nil {
			return err
		}
		now, _ := pids(sup)
		_ = now["transient"].Send("crash")
		if _, err := restarted(sup, "transient", now["transient"]); err != nil {
			return err
		}
		return sup.Stop(troupe.ExitShutdown{}, wait)
	}())

	check("supervisor: too many restarts end it with shutdown, children too", func() error {
		sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
			Intensity: 2, Period: 10 * time.Second,
			Children: []troupe.ChildSpec{troupe.WorkerChild("w", "worker", "w"), cellChild("bystander")},
		})
		if err != nil {
			return err
		}
		m := troupe.Monitor(sup.Pid)
		for i := 0; i < 3; i++ {
			now, err := pids(sup)
			if err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
			_ = troupe.Kill(now["w"])
			if i < 2 {
				if _, err := restarted(sup, "w", now["w"]); err != nil {
					return err
				}
			}
		}
		ev, err := troupe.ReceiveDown(wait)
		if err != nil || ev.Monitor != m || ev.Reason != (troupe.ExitShutdown{}) {
			return fmt.Errorf("down %+v %v", ev, err)
		}
		return expectNote("terminate bystander shutdown")
	}())

	check("supervisor: start, terminate, restart, delete and count children", func() error {
		sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{}, troupe.Named("the-sup"))
		if err != nil {
			return err
		}
		found, err := troupe.WhereisSupervisor("the-sup")
		if err != nil || found.Pid != sup.Pid {
			return fmt.Errorf("whereis %v %v", found, err)
		}
		p, err := sup.StartChild(cellChild("dyn").WithName("dyn-cell"))
		if err != nil {
			return err
		}
		if named, _ := troupe.Whereis("dyn-cell"); named != p {
			return fmt.Errorf("dyn-cell is %v, not %v", named, p)
		}
		if _, err := sup.StartChild(cellChild("dyn")); !errors.Is(err, troupe.ErrChildAlreadyStarted) {
			return fmt.Errorf("second start: %v", err)
		}
		if err := sup.DeleteChild("dyn"); !errors.Is(err, troupe.ErrChildRunning) {
			return fmt.Errorf("delete running: %v", err)
		}
		if err := sup.TerminateChild("dyn"); err != nil {
			return err
		}
		if err := expectNote("terminate dyn shutdown"); err != nil {
			return err
		}
		n, err := sup.CountChildren()
		if err != nil || n.Specs != 1 || n.Active != 0 || n.Workers != 1 {
			return fmt.Errorf("counts %+v %v", n, err)
		}
		if _, err := sup.RestartChild("dyn"); err != nil {
			return err
		}
		if err := sup.TerminateChild("dyn"); err != nil {
			return err
		}
		drainNotes()
		if err := sup.DeleteChild("dyn"); err != nil {
			return err
		}
		if err := sup.TerminateChild("dyn"); !errors.Is(err, troupe.ErrChildNotFound) {
			return fmt.Errorf("terminate deleted: %v", err)
		}
		return sup.Stop(troupe.ExitShutdown{}, wait)
	}())

	check("supervisor: a child that cannot start fails the start, the others stopped", func() error {
		_, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
			Children: []troupe.ChildSpec{
				cellChild("fine"),
				troupe.ServerChild("broken", "cell", CellArg{Name: "broken", Fail: "bad config"}),
			},
		}, troupe.Linked())
		var se *troupe.ServerError
		if !errors.As(err, &se) || !strings.Contains(fmt.Sprint(se), "did not start") {
			return fmt.Errorf("start: %v", err)
		}
		return expectNote("terminate fine shutdown")
	}())

	check("supervisor: a tree: a supervisor child restarts its own children", func() error {
		inner := troupe.SupervisorSpec{Children: []troupe.ChildSpec{cellChild("leaf")}}
		top, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
			Intensity: 3, Period: 10 * time.Second,
			Children: []troupe.ChildSpec{troupe.SupervisorChild("inner", "sup", inner).WithName("inner")},
		})
		if err != nil {
			return err
		}
		innerRef, err := troupe.WhereisSupervisor("inner")
		if err != nil {
			return err
		}
		leaves, err := pids(innerRef)
		if err != nil {
			return err
		}
		_ = troupe.Kill(leaves["leaf"])
		if _, err := restarted(innerRef, "leaf", leaves["leaf"]); err != nil {
			return err
		}
		n, _ := top.CountChildren()
		if err := expect(n.Supervisors == 1 && n.Restarts == 0, "top counts %+v", n); err != nil {
			return err
		}
		err = top.Stop(troupe.ExitShutdown{}, wait)
		drainNotes()
		return err
	}())
}

func main() {
	switch troupe.Role() {
	case "cell":
		troupe.Serve(newCell)
	case "sup":
		troupe.Supervise()
	case "worker":
		worker()
		return
	case "caller":
		caller()
		return
	}
	servers()
	supervisors()
	if len(failed) > 0 {
		fmt.Printf("otpcheck: FAILED: %s\n", strings.Join(failed, ", "))
		os.Exit(1)
	}
	fmt.Println("otpcheck: all ok")
}
