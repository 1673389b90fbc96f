package troupe

import (
	"errors"
	"fmt"
	"os"
	"time"

	"troupe.dev/troupe/bincode"
)

// Supervisors in the spirit of Erlang/OTP's supervisor, with the Rust
// SDK's semantics: a process that starts children, watches them, restarts
// them when they end (as their Restart policy and the Strategy say), gives
// up when they fail too often, and stops them in reverse order.
//
//	spec := troupe.SupervisorSpec{
//		Strategy: troupe.OneForOne, Intensity: 5, Period: 10 * time.Second,
//		Children: []troupe.ChildSpec{
//			troupe.ServerChild("kv", "kv", Config{}).WithName("kv"),
//			troupe.WorkerChild("ticker", "ticker", uint64(100)),
//		},
//	}
//	sup, err := troupe.StartSupervisor("sup", spec, troupe.Linked()) // all children run
//
//	// in main:
//	case "sup":
//		troupe.Supervise() // never returns
//
// A supervisor is a Server (as OTP's is a gen_server) in a role of its own,
// whose branch of main calls Supervise: it traps exits and is linked to
// each child, so a child that ends sends it an EXIT. Its requests
// (StartChild, WhichChildren...) are calls. Children are roles of this
// module too: a WorkerChild's main reads its argument with SpawnArg, a
// ServerChild's calls Serve, a SupervisorChild's calls Supervise.
//
// Semantics (OTP's):
//   - Children start in the order of the spec; each start waits until the
//     child runs (for a server or supervisor: until its init returned). A
//     child that fails to start makes the supervisor's own start fail,
//     after the children already started are stopped.
//   - Stopping a child (a restart of the others, a shutdown,
//     TerminateChild) follows its Shutdown: exit signal ExitShutdown, then
//     Kill if it has not ended within the time-out (BrutalKill: Kill at
//     once; ShutdownInfinity: wait forever). Children stop in reverse order.
//   - Permanent children are always restarted, Transient ones only after an
//     abnormal end (not ExitNormal nor ExitShutdown), Temporary ones never
//     (they are removed).
//   - More than Intensity restarts within Period make the supervisor stop
//     all its children and exit with ExitShutdown, which its own supervisor
//     sees (it also prints a report on stderr).
//   - An exit signal from the supervisor's parent stops its children (in
//     reverse order) and ends it with the same reason.
//
// Not implemented (as in the Rust SDK): simple_one_for_one (use StartChild),
// significant children and auto_shutdown, and ignore from a child's start.

// Strategy is which children a supervisor restarts when one ends and must
// be restarted.
type Strategy uint32

const (
	// OneForOne restarts the child alone.
	OneForOne Strategy = iota
	// OneForAll stops all the others, then restarts all.
	OneForAll
	// RestForOne stops the children started after it, then restarts it
	// and them.
	RestForOne
)

// Restart is when a child is restarted.
type Restart uint32

const (
	// Permanent: always.
	Permanent Restart = iota
	// Transient: after an abnormal end (not ExitNormal nor ExitShutdown).
	Transient
	// Temporary: never; it is removed when it ends.
	Temporary
)

// ChildKind is what a child is.
type ChildKind uint32

const (
	// Worker: a process that reads its argument with SpawnArg.
	Worker ChildKind = iota
	// ServerKind: a Server (its main calls Serve).
	ServerKind
	// SupervisorKind: a supervisor (its main calls Supervise).
	SupervisorKind
)

// How long a stopping child is given, as ChildSpec.Shutdown.
const (
	// BrutalKill kills the child at once.
	BrutalKill time.Duration = 0
	// ShutdownInfinity waits for the child however long it takes (the
	// default for supervisor children).
	ShutdownInfinity = Forever
	// DefaultShutdown is the default for workers and servers (OTP's 5 s).
	DefaultShutdown = 5 * time.Second
)

// ChildSpec says how a supervisor starts, restarts and stops one child.
// Build one with WorkerChild, ServerChild or SupervisorChild. Specs travel
// in messages (StartChild), so the argument is kept encoded.
type ChildSpec struct {
	// ID names the child within its supervisor.
	ID string
	// Role is the role of this module the child is spawned in.
	Role string
	// Arg is the child's argument, bincode-encoded.
	Arg      []byte
	Kind     ChildKind
	Restart  Restart
	Shutdown time.Duration
	// Name registers a server or supervisor child under it ("": none).
	Name string

	err error // the argument did not encode
}

func childSpec(id, role string, kind ChildKind, arg any, shutdown time.Duration) ChildSpec {
	c := ChildSpec{ID: id, Role: role, Kind: kind, Shutdown: shutdown}
	if arg != nil {
		c.Arg, c.err = encodeWithoutSockets(arg)
	}
	return c
}

// WorkerChild is a worker: a process of this module in role role, linked
// to its supervisor, whose spawn argument (SpawnArg) is arg.
func WorkerChild(id, role string, arg any) ChildSpec {
	return childSpec(id, role, Worker, arg, DefaultShutdown)
}

// ServerChild is a server started in role role (whose main calls Serve)
// with arg as its init's argument.
func ServerChild(id, role string, arg any) ChildSpec {
	return childSpec(id, role, ServerKind, arg, DefaultShutdown)
}

// SupervisorChild is a supervisor started in role role (whose main calls
// Supervise) with spec: supervision trees.
func SupervisorChild(id, role string, spec SupervisorSpec) ChildSpec {
	c := childSpec(id, role, SupervisorKind, &spec, ShutdownInfinity)
	if c.err == nil {
		c.err = spec.check()
	}
	return c
}

// WithRestart sets when the child is restarted (default Permanent).
func (c ChildSpec) WithRestart(r Restart) ChildSpec { c.Restart = r; return c }

// WithShutdown sets how long the stopping child is given (BrutalKill,
// ShutdownInfinity, or a time-out).
func (c ChildSpec) WithShutdown(d time.Duration) ChildSpec { c.Shutdown = d; return c }

// WithName registers a server or supervisor child under name.
func (c ChildSpec) WithName(name string) ChildSpec { c.Name = name; return c }

// SupervisorSpec is a supervisor's strategy, restart intensity and
// children. Intensity 0 and Period 0 mean OTP's defaults: at most 1
// restart in 5 s.
type SupervisorSpec struct {
	Strategy  Strategy
	Intensity uint32
	Period    time.Duration
	Children  []ChildSpec
}

func (s *SupervisorSpec) check() error {
	for _, c := range s.Children {
		if c.err != nil {
			return fmt.Errorf("child %q: %w", c.ID, c.err)
		}
	}
	return nil
}

// ChildInfo is one child, as WhichChildren tells.
type ChildInfo struct {
	ID       string
	Pid      Pid // 0: not running
	Kind     ChildKind
	Restart  Restart
	Restarts uint32
}

// ChildCounts is what CountChildren tells.
type ChildCounts struct {
	Specs       uint64
	Active      uint64
	Supervisors uint64
	Workers     uint64
	Restarts    uint64
}

// The supervisor's requests and replies.
const (
	supStartChild uint32 = iota
	supTerminateChild
	supRestartChild
	supDeleteChild
	supWhichChildren
	supCountChildren
)

type supCall struct {
	Op   uint32
	ID   string
	Spec ChildSpec
}

type supReply struct {
	Pid      Pid
	Error    string // "": done
	Code     uint32 // what Error is (supErr...)
	Children []ChildInfo
	Counts   ChildCounts
}

const (
	supErrNone uint32 = iota
	supErrNotFound
	supErrRunning
	supErrAlreadyStarted
	supErrAlreadyPresent
	supErrStartFailed
)

// SupervisorError is a supervisor request that it refused or that failed.
type SupervisorError struct {
	Op      string
	Message string
	code    uint32
	Pid     Pid // ErrChildAlreadyStarted: the running child
}

func (e *SupervisorError) Error() string { return "troupe: " + e.Op + ": " + e.Message }

// Is matches the errors below.
func (e *SupervisorError) Is(target error) bool {
	switch target {
	case ErrChildNotFound:
		return e.code == supErrNotFound
	case ErrChildRunning:
		return e.code == supErrRunning
	case ErrChildAlreadyStarted:
		return e.code == supErrAlreadyStarted
	case ErrChildAlreadyPresent:
		return e.code == supErrAlreadyPresent
	case ErrChildStartFailed:
		return e.code == supErrStartFailed
	}
	return false
}

// What a supervisor request can fail with (errors.Is).
var (
	ErrChildNotFound       = errors.New("no child with this id")
	ErrChildRunning        = errors.New("the child is running")
	ErrChildAlreadyStarted = errors.New("a child with this id is running")
	ErrChildAlreadyPresent = errors.New("a child with this id exists (not running)")
	ErrChildStartFailed    = errors.New("the child failed to start")
)

// SupervisorRef is a running supervisor. In messages it is its pid.
type SupervisorRef struct {
	ServerRef[supCall, supReply, struct{}, struct{}]
}

// StartSupervisor starts a supervisor in role role (whose main calls
// Supervise) and returns once all its children run. Options as for
// StartServer (Linked, Named...).
func StartSupervisor(role string, spec SupervisorSpec, opts ...StartOption) (SupervisorRef, error) {
	if err := spec.check(); err != nil {
		return SupervisorRef{}, invalid("start", "%v", err)
	}
	s, err := StartServer[supCall, supReply, struct{}, struct{}](role, &spec, opts...)
	return SupervisorRef{s}, err
}

// WhereisSupervisor is the supervisor registered under name.
func WhereisSupervisor(name string) (SupervisorRef, error) {
	p, err := Whereis(name)
	return SupervisorRef{ServerRef[supCall, supReply, struct{}, struct{}]{Pid: p}}, err
}

func (s SupervisorRef) call(op string, c supCall) (supReply, error) {
	// As OTP's supervisor calls, it waits for the answer without limit:
	// a request may stop a child, which that child's Shutdown bounds.
	r, err := s.Call(c, Forever)
	if err != nil {
		return r, err
	}
	if r.Code != supErrNone {
		return r, &SupervisorError{Op: op, Message: r.Error, code: r.Code, Pid: r.Pid}
	}
	return r, nil
}

// StartChild adds a child and starts it (supervisor:start_child/2).
func (s SupervisorRef) StartChild(spec ChildSpec) (Pid, error) {
	if spec.err != nil {
		return 0, invalid("start_child", "child %q: %v", spec.ID, spec.err)
	}
	r, err := s.call("start_child", supCall{Op: supStartChild, Spec: spec})
	return r.Pid, err
}

// TerminateChild stops the child with this id, keeping its spec (but a
// Temporary child's is removed).
func (s SupervisorRef) TerminateChild(id string) error {
	_, err := s.call("terminate_child", supCall{Op: supTerminateChild, ID: id})
	return err
}

// RestartChild starts again a child that TerminateChild stopped.
func (s SupervisorRef) RestartChild(id string) (Pid, error) {
	r, err := s.call("restart_child", supCall{Op: supRestartChild, ID: id})
	return r.Pid, err
}

// DeleteChild removes the spec of a stopped child.
func (s SupervisorRef) DeleteChild(id string) error {
	_, err := s.call("delete_child", supCall{Op: supDeleteChild, ID: id})
	return err
}

// WhichChildren lists the children, in start order.
func (s SupervisorRef) WhichChildren() ([]ChildInfo, error) {
	r, err := s.call("which_children", supCall{Op: supWhichChildren})
	return r.Children, err
}

// CountChildren counts the children.
func (s SupervisorRef) CountChildren() (ChildCounts, error) {
	r, err := s.call("count_children", supCall{Op: supCountChildren})
	return r.Counts, err
}

// Supervise runs this process as the supervisor that StartSupervisor (or a
// parent supervisor's SupervisorChild) started: call it from the role's
// branch of main. It never returns.
func Supervise() { Serve(newSupervisor) }

type child struct {
	spec     ChildSpec
	pid      Pid
	restarts uint32
}

type supervisor struct {
	strategy  Strategy
	intensity int
	period    time.Duration
	children  []child
	recent    []time.Time
	restarts  uint64
}

func newSupervisor(spec SupervisorSpec) (Server[supCall, supReply, struct{}, struct{}], ExitReason) {
	TrapExit(true)
	s := &supervisor{strategy: spec.Strategy, intensity: int(spec.Intensity), period: spec.Period}
	if spec.Intensity == 0 && spec.Period == 0 {
		s.intensity, s.period = 1, 5*time.Second
	}
	for _, c := range spec.Children {
		if s.find(c.ID) >= 0 {
			s.stopChildrenFrom(0)
			return nil, customReason(fmt.Sprintf("duplicate child id %q", c.ID))
		}
		s.children = append(s.children, child{spec: c})
		if err := s.startChildAt(len(s.children) - 1); err != nil {
			s.stopChildrenFrom(0)
			return nil, customReason(fmt.Sprintf("failed to start child %q: %v", c.ID, err))
		}
	}
	return s, nil
}

// customReason is an ExitCustom carrying a string (bincode), as the Rust
// SDK's supervisor reports why it did not start.
func customReason(s string) ExitReason {
	r, err := CustomReason(s)
	if err != nil {
		return ExitTrap(s)
	}
	return r
}

func (s *supervisor) find(id string) int {
	for i := range s.children {
		if s.children[i].spec.ID == id {
			return i
		}
	}
	return -1
}

// rawArg is an already encoded argument, written as it is.
type rawArg []byte

func (r rawArg) MarshalBincode(e *bincode.Encoder) error { e.Raw(r); return nil }

func (s *supervisor) startChildAt(i int) error {
	c := &s.children[i].spec
	var pid Pid
	var err error
	switch c.Kind {
	case Worker:
		pid, err = SpawnSelf(c.Role, rawArg(c.Arg), WithLink())
	default:
		opts := []StartOption{Linked()}
		if c.Name != "" {
			opts = append(opts, Named(c.Name))
		}
		pid, err = startServer(c.Role, rawArg(c.Arg), opts)
	}
	if err != nil {
		return err
	}
	s.children[i].pid = pid
	return nil
}

func (s *supervisor) stopChildAt(i int) {
	pid := s.children[i].pid
	if pid == 0 {
		return
	}
	s.children[i].pid = 0
	m := Monitor(pid)
	Unlink(pid)
	forgetExitOf(pid)
	shutdown := s.children[i].spec.Shutdown
	wait := shutdown
	if shutdown == BrutalKill {
		_ = Kill(pid)
		wait = Forever
	} else {
		_ = SendExit(pid, ExitShutdown{})
	}
	got, ok := receiveMatching(wait, func(msg *Message) bool { return isDownOf(msg, m) })
	if !ok {
		_ = Kill(pid)
		got, _ = receiveMatching(Forever, func(msg *Message) bool { return isDownOf(msg, m) })
	}
	reason := downReason(got)
	expected := false
	switch reason.(type) {
	case ExitKilled:
		expected = shutdown == BrutalKill
	case ExitShutdown:
		expected = shutdown != BrutalKill
	case ExitNoProc, ExitNormal:
		expected = true
	}
	if !expected {
		fmt.Fprintf(os.Stderr, "troupe: supervisor %v: child %q (%v) did not stop cleanly: %v\n",
			Self(), s.children[i].spec.ID, pid, reason)
	}
}

func (s *supervisor) stopChildrenFrom(from int) {
	for i := len(s.children) - 1; i >= from; i-- {
		s.stopChildAt(i)
	}
	kept := s.children[:from]
	for _, c := range s.children[from:] {
		if c.spec.Restart != Temporary {
			kept = append(kept, c)
		}
	}
	s.children = kept
}

func (s *supervisor) addRestart() bool {
	now := time.Now()
	s.recent = append(s.recent, now)
	for len(s.recent) > 0 && now.Sub(s.recent[0]) > s.period {
		s.recent = s.recent[1:]
	}
	return len(s.recent) <= s.intensity
}

func (s *supervisor) restart(i int, reason ExitReason) Next {
	if !s.addRestart() {
		fmt.Fprintf(os.Stderr, "troupe: supervisor %v: child %q ended (%v): more than %d restarts in %v, shutting down\n",
			Self(), s.children[i].spec.ID, reason, s.intensity, s.period)
		return Stop(ExitShutdown{})
	}
	s.restarts++
	s.children[i].restarts++
	id := s.children[i].spec.ID
	var first int
	switch s.strategy {
	case OneForAll:
		first = 0
	case RestForOne:
		first = i
	default:
		return s.restartRange(i, i+1)
	}
	s.stopChildrenFrom(first)
	if s.strategy == RestForOne {
		if j := s.find(id); j >= 0 {
			first = j
		}
	}
	return s.restartRange(first, len(s.children))
}

func (s *supervisor) restartRange(from, to int) Next {
	for i := from; i < to && i < len(s.children); i++ {
		if s.children[i].pid != 0 {
			continue
		}
		if err := s.startChildAt(i); err != nil {
			fmt.Fprintf(os.Stderr, "troupe: supervisor %v: restarting child %q failed: %v\n",
				Self(), s.children[i].spec.ID, err)
			// Tried again as another restart, so that a child that cannot
			// start makes the supervisor give up at its intensity.
			return s.restart(i, customReason("restart failed"))
		}
	}
	return Continue
}

func (s *supervisor) childEnded(pid Pid, reason ExitReason) Next {
	for i := range s.children {
		if s.children[i].pid != pid {
			continue
		}
		s.children[i].pid = 0
		switch s.children[i].spec.Restart {
		case Temporary:
			s.children = append(s.children[:i], s.children[i+1:]...)
			return Continue
		case Transient:
			if !IsAbnormal(reason) {
				return Continue
			}
		}
		return s.restart(i, reason)
	}
	return Continue // not (or no longer) a child
}

func (s *supervisor) HandleCall(req supCall, _ Caller[supReply]) (supReply, Next) {
	fail := func(code uint32, msg string) (supReply, Next) {
		return supReply{Code: code, Error: msg}, Continue
	}
	switch req.Op {
	case supStartChild:
		if i := s.find(req.Spec.ID); i >= 0 {
			if p := s.children[i].pid; p != 0 {
				return supReply{Code: supErrAlreadyStarted, Error: ErrChildAlreadyStarted.Error(), Pid: p}, Continue
			}
			return fail(supErrAlreadyPresent, ErrChildAlreadyPresent.Error())
		}
		s.children = append(s.children, child{spec: req.Spec})
		i := len(s.children) - 1
		if err := s.startChildAt(i); err != nil {
			s.children = s.children[:i]
			return fail(supErrStartFailed, err.Error())
		}
		return supReply{Pid: s.children[i].pid}, Continue
	case supTerminateChild:
		i := s.find(req.ID)
		if i < 0 {
			return fail(supErrNotFound, ErrChildNotFound.Error())
		}
		s.stopChildAt(i)
		if s.children[i].spec.Restart == Temporary {
			s.children = append(s.children[:i], s.children[i+1:]...)
		}
		return supReply{}, Continue
	case supRestartChild:
		i := s.find(req.ID)
		switch {
		case i < 0:
			return fail(supErrNotFound, ErrChildNotFound.Error())
		case s.children[i].pid != 0:
			return fail(supErrRunning, ErrChildRunning.Error())
		}
		if err := s.startChildAt(i); err != nil {
			return fail(supErrStartFailed, err.Error())
		}
		return supReply{Pid: s.children[i].pid}, Continue
	case supDeleteChild:
		i := s.find(req.ID)
		switch {
		case i < 0:
			return fail(supErrNotFound, ErrChildNotFound.Error())
		case s.children[i].pid != 0:
			return fail(supErrRunning, ErrChildRunning.Error())
		}
		s.children = append(s.children[:i], s.children[i+1:]...)
		return supReply{}, Continue
	case supWhichChildren:
		infos := make([]ChildInfo, len(s.children))
		for i, c := range s.children {
			infos[i] = ChildInfo{ID: c.spec.ID, Pid: c.pid, Kind: c.spec.Kind, Restart: c.spec.Restart, Restarts: c.restarts}
		}
		return supReply{Children: infos}, Continue
	case supCountChildren:
		var n ChildCounts
		n.Specs, n.Restarts = uint64(len(s.children)), s.restarts
		for _, c := range s.children {
			if c.pid != 0 {
				n.Active++
			}
			if c.spec.Kind == SupervisorKind {
				n.Supervisors++
			}
		}
		n.Workers = n.Specs - n.Supervisors
		return supReply{Counts: n}, Continue
	}
	return fail(supErrNotFound, fmt.Sprintf("unknown request %d", req.Op))
}

func (s *supervisor) HandleCast(struct{}) Next { return Continue }

func (s *supervisor) HandleInfo(ev Event, _ struct{}) Next {
	if ev.Kind == EventExit {
		return s.childEnded(ev.From, ev.Reason)
	}
	return Continue
}

func (s *supervisor) Terminate(ExitReason) { s.stopChildrenFrom(0) }
