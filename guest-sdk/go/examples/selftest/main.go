// Command selftest exercises the Go SDK against the Troupe VM: every public
// function, the errors the host reports, and what blocks what. It prints
// "selftest: NAME: ok" per check and ends with "selftest: all ok" (exit 0),
// or names what failed (exit 1). vm/tests/all/go.rs runs it.
//
//	GOOS=wasip1 GOARCH=wasm go build -o selftest.wasm ./examples/selftest
//	troupe run --dir /tmp::/data selftest.wasm one two
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"troupe.dev/troupe"
	"troupe.dev/troupe/bincode"
)

// Msg is what the echo child's mailbox takes.
type Msg interface{ isMsg() }

type (
	// Describe asks the child for what it sees.
	Describe troupe.Reply
	// Twice asks to double a number.
	Twice struct {
		N     int64
		Reply troupe.Reply
	}
	// Quit ends the child.
	Quit struct{}
)

func (Describe) isMsg() {}
func (Twice) isMsg()    {}
func (Quit) isMsg()     {}

func init() { bincode.RegisterEnum[Msg](Describe{}, Twice{}, Quit{}) }

// Description is what a child sees of itself.
type Description struct {
	Pid    troupe.Pid
	Parent troupe.Pid
	Role   string
	Arg    string
	Args   []string
	Env    []string
	Data   bool // whether it can see /data
}

func echo() {
	var arg string
	parent, err := troupe.SpawnArg(&arg)
	if err != nil {
		panic(err)
	}
	_, statErr := os.Stat("/data")
	d := Description{troupe.Self(), parent, troupe.Role(), arg, os.Args, os.Environ(), statErr == nil}
	for {
		var m Msg
		if _, err := troupe.Receive(&m); err != nil {
			panic(err)
		}
		switch m := m.(type) {
		case Describe:
			troupe.Reply(m).Send(d)
		case Twice:
			m.Reply.Send(2 * m.N)
		case Quit:
			return
		}
	}
}

var failed []string

func check(name string, err error) {
	if err != nil {
		failed = append(failed, name)
		fmt.Printf("selftest: %s: FAILED: %v\n", name, err)
		return
	}
	fmt.Printf("selftest: %s: ok\n", name)
}

func expect(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// expectCode checks that err is a *troupe.Error with code and a message
// containing text.
func expectCode(err error, code troupe.Code, text string) error {
	var e *troupe.Error
	if !errors.Is(err, code) || !errors.As(err, &e) || !strings.Contains(e.Message, text) {
		return fmt.Errorf("got %v, want %v with %q", err, code, text)
	}
	return nil
}

func main() {
	switch troupe.Role() {
	case "echo":
		echo()
		return
	case "panic":
		panic("this child panics on purpose")
	case "exit-custom":
		reason, _ := troupe.CustomReason("boom")
		troupe.Exit(reason)
	}
	me := troupe.Self()

	check("identity", func() error {
		var arg string
		_, err := troupe.SpawnArg(&arg)
		return errors.Join(
			expect(me == 1, "root pid %v", me),
			expect(troupe.Role() == "", "root role %q", troupe.Role()),
			expect(troupe.ThisModule() != 0, "no module handle"),
			expectCode(err, troupe.ErrNoMessage, "root process has no spawn argument"))
	}())

	check("typed send and receive", func() error {
		type Point struct{ X, Y int32 }
		if err := me.Send(Point{3, -4}); err != nil {
			return err
		}
		var p Point
		from, err := troupe.Receive(&p)
		return errors.Join(err, expect(from == me && p == Point{3, -4}, "got %v from %v", p, from))
	}())

	check("selective receive", func() error {
		for _, tag := range []uint64{5, 6, 5} {
			if err := me.SendTagged(tag, []byte{byte(tag)}); err != nil {
				return err
			}
		}
		m, err := troupe.ReceiveTagged([]uint64{6}, 0)
		if err != nil || m.Tag != 6 || m.From != me || !bytes.Equal(m.Data, []byte{6}) {
			return fmt.Errorf("tag 6: %+v %v", m, err)
		}
		a, err1 := troupe.ReceiveTagged(nil, 0)
		b, err2 := troupe.ReceiveTagged([]uint64{5, 7}, 0)
		_, err3 := troupe.ReceiveTagged(nil, 0)
		return errors.Join(err1, err2,
			expect(a.Tag == 5 && b.Tag == 5, "order %d %d", a.Tag, b.Tag),
			expect(errors.Is(err3, troupe.ErrTimeout), "empty mailbox: %v", err3))
	}())

	check("timeouts", func() error {
		var x uint64
		start := time.Now()
		_, err := troupe.ReceiveTimeout(&x, 30*time.Millisecond)
		waited := time.Since(start)
		_, err2 := troupe.TryReceive(&x)
		return errors.Join(
			expect(errors.Is(err, troupe.ErrTimeout), "ReceiveTimeout: %v", err),
			expect(waited >= 30*time.Millisecond, "waited only %v", waited),
			expect(errors.Is(err2, troupe.ErrTimeout), "TryReceive: %v", err2))
	}())

	check("large message", func() error {
		big := bytes.Repeat([]byte("troupe"), 500_000)
		if err := me.Send(big); err != nil {
			return err
		}
		var back []byte
		_, err := troupe.Receive(&back)
		raw := bytes.Repeat([]byte{7}, 5000)
		err2 := me.SendTagged(9, raw)
		m, err3 := troupe.ReceiveTagged([]uint64{9}, 0)
		return errors.Join(err, err2, err3,
			expect(bytes.Equal(back, big), "typed: %d bytes back", len(back)),
			expect(bytes.Equal(m.Data, raw), "raw: %d bytes back", len(m.Data)))
	}())

	check("malformed message", func() error {
		me.Send("not a number")
		me.Send(uint64(42))
		var n uint64
		from, err := troupe.Receive(&n)
		var bad *troupe.MalformedError
		_, err2 := troupe.Receive(&n)
		return errors.Join(err2,
			expect(errors.As(err, &bad) && bad.From == me && from == me, "got %v", err),
			expect(n == 42, "next message %d", n))
	}())

	var child troupe.Pid
	check("spawn self with role, options and request/reply", func() error {
		var err error
		child, err = troupe.SpawnSelf("echo", "the argument",
			troupe.WithEnv("A=1", "TROUPE_ROLE=ignored"), troupe.WithArgs("child", "x"), troupe.WithPreopens())
		if err != nil {
			return err
		}
		var d Description
		describe := func(r troupe.Reply) any { return Describe(r) }
		if err := troupe.RequestTimeout(child, describe, &d, 10*time.Second); err != nil {
			return err
		}
		var n int64
		twice := func(r troupe.Reply) any { return Twice{21, r} }
		err = troupe.Request(child, twice, &n)
		return errors.Join(err,
			expect(d.Pid == child && d.Parent == me, "pids %v %v", d.Pid, d.Parent),
			expect(d.Role == "echo" && d.Arg == "the argument", "role %q arg %q", d.Role, d.Arg),
			expect(strings.Join(d.Args, " ") == "child x", "args %q", d.Args),
			expect(strings.Join(d.Env, " ") == "A=1 TROUPE_ROLE=echo", "env %q", d.Env),
			expect(!d.Data, "the child sees /data"),
			expect(n == 42, "twice 21 = %d", n))
	}())

	check("spawn inherits args, env and directories", func() error {
		c, err := troupe.SpawnSelf("echo", "")
		if err != nil {
			return err
		}
		var d Description
		describe := func(r troupe.Reply) any { return Describe(r) }
		if err := troupe.RequestTimeout(c, describe, &d, 10*time.Second); err != nil {
			return err
		}
		c.Send(Quit{})
		_, dataErr := os.Stat("/data")
		env := append(os.Environ(), "TROUPE_ROLE=echo")
		return errors.Join(
			expect(strings.Join(d.Args, " ") == strings.Join(os.Args, " "), "args %q", d.Args),
			expect(strings.Join(d.Env, " ") == strings.Join(env, " "), "env %q", d.Env),
			expect(d.Data == (dataErr == nil), "/data %v", d.Data))
	}())

	check("send to a dead process", func() error {
		if err := child.Send(Quit{}); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			err := child.Send(Quit{})
			if err != nil {
				return expectCode(err, troupe.ErrNoProcess, "")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return errors.New("the child never ended")
	}())

	check("request to a dead process", func() error {
		var n int64
		twice := func(r troupe.Reply) any { return Twice{1, r} }
		err := troupe.RequestTimeout(child, twice, &n, time.Second)
		return expect(errors.Is(err, troupe.ErrNoProcess), "got %v", err)
	}())

	check("request timeout", func() error {
		// A reply handle nobody answers.
		var n int64
		err := troupe.NewReply().WaitTimeout(&n, 20*time.Millisecond)
		return expect(errors.Is(err, troupe.ErrTimeout) && strings.Contains(err.Error(), "request"), "got %v", err)
	}())

	check("host errors reach the guest with their reason", func() error {
		_, e1 := troupe.ThisModule().SpawnExport("no_such_function", nil, nil)
		_, e2 := troupe.LoadModule([]byte("not wasm"))
		_, e3 := troupe.Module(987654).SpawnStart(struct{}{})
		_, e4 := troupe.SpawnSelf("echo", "", troupe.WithPreopens("/not-held"))
		_, e5 := troupe.SpawnSelf("echo", "", troupe.WithEnv("NOVALUE"))
		_, e6 := troupe.LoadModuleFile("/no/such/file.wasm")
		_, e7 := troupe.SpawnSelf("echo", make(chan int))
		return errors.Join(
			expectCode(e1, troupe.ErrNoSuchExport, "no_such_function"),
			expectCode(e2, troupe.ErrInvalidModule, "not a valid WebAssembly module"),
			expectCode(e3, troupe.ErrNoSuchModule, "987654"),
			expectCode(e4, troupe.ErrPermissionDenied, "/not-held"),
			expectCode(e5, troupe.ErrInvalidArgument, "NOVALUE"),
			expect(e6 != nil && strings.Contains(e6.Error(), "cannot read module"), "missing file: %v", e6),
			expectCode(e7, troupe.ErrInvalidArgument, "spawn argument"))
	}())

	check("a panicking child dies alone", func() error {
		if _, err := troupe.SpawnSelf("panic", struct{}{}); err != nil {
			return err
		}
		c, err := troupe.SpawnSelf("echo", "")
		if err != nil {
			return err
		}
		var n int64
		twice := func(r troupe.Reply) any { return Twice{5, r} }
		err = troupe.RequestTimeout(c, twice, &n, 10*time.Second)
		c.Send(Quit{})
		return errors.Join(err, expect(n == 10, "twice 5 = %d", n))
	}())

	check("goroutines run while a goroutine waits in Receive", func() error {
		ticks := 0
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					ticks++
					time.Sleep(time.Millisecond)
				}
			}
		}()
		time.Sleep(20 * time.Millisecond) // the ticker runs during Go's own sleep
		before := ticks
		start := time.Now()
		var x uint64
		_, err := troupe.ReceiveTimeout(&x, 100*time.Millisecond) // ... and during this
		took, during := time.Since(start), ticks-before
		close(stop)
		if !errors.Is(err, troupe.ErrTimeout) || took < 90*time.Millisecond {
			return fmt.Errorf("ReceiveTimeout(100ms): %v after %v", err, took)
		}
		return expect(before > 0 && during >= 10, "ticks before %d, during the receive %d", before, during)
	}())

	check("a goroutine in Receive gets a message another goroutine sends", func() error {
		got := make(chan uint64, 1)
		go func() {
			var x uint64
			troupe.ReceiveTimeout(&x, 5*time.Second)
			got <- x
		}()
		time.Sleep(10 * time.Millisecond) // the receiver waits
		if err := troupe.Self().Send(uint64(42)); err != nil {
			return err
		}
		select {
		case x := <-got:
			return expect(x == 42, "received %d", x)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("the receiving goroutine did not wake")
		}
	}())

	check("other processes run while this one sleeps", func() error {
		c, err := troupe.SpawnSelf("echo", "")
		if err != nil {
			return err
		}
		defer c.Send(Quit{})
		r := troupe.NewReply()
		if err := c.Send(Twice{4, r}); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // WASI poll_oneoff: only this process waits
		var n int64
		err = r.WaitTimeout(&n, 0) // the answer is already there
		return errors.Join(err, expect(n == 8, "twice 4 = %d", n))
	}())

	check("monitors: normal end, exit code, kill, no such process", func() error {
		c, err := troupe.SpawnSelf("echo", "")
		if err != nil {
			return err
		}
		ref := troupe.Monitor(c)
		c.Send(Quit{})
		e1, err1 := troupe.ReceiveDown(10 * time.Second)
		p, _ := troupe.SpawnSelf("panic", struct{}{})
		ref2 := troupe.Monitor(p)
		e2, err2 := troupe.ReceiveDown(10 * time.Second)
		k, _ := troupe.SpawnSelf("echo", "")
		troupe.Monitor(k)
		err3 := troupe.Kill(k)
		e3, err4 := troupe.ReceiveDown(10 * time.Second)
		troupe.Monitor(999999)
		e4, err5 := troupe.ReceiveDown(time.Second)
		return errors.Join(err1, err2, err3, err4, err5,
			expect(e1 == troupe.Event{Kind: troupe.EventDown, From: c, Monitor: ref, Reason: troupe.ExitNormal{}}, "quit: %+v", e1),
			expect(e2.Monitor == ref2 && e2.Reason == troupe.ExitCode(2), "panic: %+v", e2),
			expect(e3.From == k && e3.Reason == troupe.ExitKilled{}, "kill: %+v", e3),
			expect(e4.From == 999999 && e4.Reason == troupe.ExitNoProc{}, "no process: %+v", e4))
	}())

	check("links and trapped exits", func() error {
		was := troupe.TrapExit(true)
		defer troupe.TrapExit(was)
		c, err := troupe.SpawnSelf("exit-custom", struct{}{}, troupe.WithLink())
		if err != nil {
			return err
		}
		var m uint64
		e, err := troupe.ReceiveEvent(&m, 10*time.Second)
		var why string
		custom, _ := e.Reason.(troupe.ExitCustom)
		errDecode := bincode.Unmarshal(custom, &why)
		err2 := troupe.Link(999999)
		return errors.Join(err, errDecode,
			expect(e.Kind == troupe.EventExit && e.From == c && why == "boom", "event %+v (%q)", e, why),
			expectCode(err2, troupe.ErrNoProcess, ""))
	}())

	check("registry", func() error {
		c, err := troupe.SpawnSelf("echo", "")
		if err != nil {
			return err
		}
		defer c.Send(Quit{})
		err1 := troupe.Register("selftest.echo", c)
		found, err2 := troupe.Whereis("selftest.echo")
		r := troupe.NewReply()
		err3 := troupe.SendNamed("selftest.echo", Twice{8, r})
		var n int64
		err4 := r.WaitTimeout(&n, 10*time.Second)
		err5 := troupe.Register("selftest.echo", me)
		err6 := troupe.Unregister("selftest.echo")
		_, err7 := troupe.Whereis("selftest.echo")
		err8 := troupe.SendNamed("selftest.echo", Quit{})
		return errors.Join(err1, err2, err3, err4, err6,
			expect(found == c && n == 16, "whereis %v, twice 8 = %d", found, n),
			expectCode(err5, troupe.ErrAlreadyRegistered, ""),
			expectCode(err7, troupe.ErrNotFound, ""),
			expectCode(err8, troupe.ErrNotFound, ""))
	}())

	check("timers fire while the process waits in Receive", func() error {
		start := time.Now()
		if _, err := troupe.SendAfter(me, uint64(5), 30*time.Millisecond); err != nil {
			return err
		}
		cancelled, err := troupe.SendAfter(me, uint64(6), 40*time.Millisecond)
		if err != nil {
			return err
		}
		ok := troupe.CancelTimer(cancelled)
		var n uint64
		_, err1 := troupe.ReceiveTimeout(&n, 10*time.Second)
		waited := time.Since(start)
		_, err2 := troupe.ReceiveTimeout(&n, 60*time.Millisecond)
		return errors.Join(err1,
			expect(ok && n == 5 && waited >= 30*time.Millisecond, "cancelled %v, got %d after %v", ok, n, waited),
			expect(errors.Is(err2, troupe.ErrTimeout), "the cancelled timer fired: %v", err2))
	}())

	if len(failed) > 0 {
		fmt.Printf("selftest: %d FAILED: %s\n", len(failed), strings.Join(failed, ", "))
		os.Exit(1)
	}
	fmt.Println("selftest: all ok")
}
