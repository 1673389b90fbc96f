package troupe

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// Servers in the spirit of Erlang/OTP's gen_server, with the Rust SDK's
// semantics and wire format: a process that holds a state and handles
// calls (a request and its reply, with a time-out), casts (requests
// without a reply) and everything else that arrives (plain messages, EXIT
// and DOWN events), and cleans up in Terminate.
//
//	type Counter struct{ n uint64 }
//
//	func (c *Counter) HandleCall(_ struct{}, _ troupe.Caller[uint64]) (uint64, troupe.Next) {
//		return c.n, troupe.Continue
//	}
//	func (c *Counter) HandleCast(add uint64) troupe.Next { c.n += add; return troupe.Continue }
//	func (c *Counter) HandleInfo(troupe.Event, struct{}) troupe.Next { return troupe.Continue }
//	func (c *Counter) Terminate(troupe.ExitReason) {}
//
//	type CounterRef = troupe.ServerRef[struct{}, uint64, uint64, struct{}]
//
//	func newCounter(start uint64) (troupe.Server[struct{}, uint64, uint64, struct{}], troupe.ExitReason) {
//		return &Counter{n: start}, nil
//	}
//
//	func main() {
//		switch troupe.Role() {
//		case "counter":
//			troupe.Serve(newCounter) // never returns
//		default:
//			c, _ := troupe.StartServer[struct{}, uint64, uint64, struct{}]("counter", uint64(10), troupe.Linked())
//			c.Cast(5)
//			n, _ := c.Call(struct{}{}, 5*time.Second) // 15
//		}
//	}
//
// A Go process starts in main, so a server is a role: StartServer spawns
// this module in that role (SpawnSelf) with the init argument, and the
// role's branch of main calls Serve with the function that builds the
// state. StartServer returns once that function has.
//
// | gen_server                                  | here                                   |
// |---------------------------------------------|----------------------------------------|
// | start_link(Mod, Args, [])                   | StartServer(role, arg, Linked())       |
// | start_link({local, Name}, ...)              | StartServer(role, arg, Linked(), Named(name)) |
// | init/1 → {ok, S} / {error, R}               | Serve's init returning (s, nil) / (nil, r) |
// | call(S, Req, Timeout)                       | ServerRef.Call                          |
// | cast(S, Req)                                | ServerRef.Cast                          |
// | Pid ! Msg, erlang:send_after                | ServerRef.Info, ServerRef.InfoAfter     |
// | {reply, R, S}, {noreply, S}, {stop, ...}    | HandleCall's (reply, Continue / NoReply / Stop / StopNoReply) |
// | reply(From, R)                              | Caller.Reply                            |
// | handle_info({'EXIT', ...}), ({'DOWN', ...}) | HandleInfo with EventExit / EventDown   |
// | terminate/2                                 | Terminate                               |
// | stop(S, Reason, Timeout)                    | ServerRef.Stop                          |
//
// As in OTP, a server that traps exits (TrapExit(true) in its init) stops
// with the same reason when its parent (the process that started it: for a
// supervised server, its supervisor) sends it an exit signal, calling
// Terminate first; other EXITs go to HandleInfo.
//
// Differences from OTP and from the Rust SDK: no code_change,
// format_status, {continue, ...} or timeout returns (use InfoAfter), and no
// hibernation (a Go process cannot hibernate). A panic in a callback ends
// the process with exit code 2, without Terminate.

// Server is a server's behaviour: the state is the value implementing it,
// built by the init function given to Serve. Call requests are answered
// with Reply, Cast requests have none, Info messages are the plain
// messages sent with ServerRef.Info (struct{} for a kind the server does
// not have). All are bincode-encoded, so a Go server and a Rust caller (or
// the other way round) talk when their types mirror each other.
type Server[Call, Reply, Cast, Info any] interface {
	// HandleCall handles a request sent with ServerRef.Call: the reply and
	// what next (Continue: answer and go on; NoReply: do not answer now,
	// keep from and answer later with from.Reply; Stop: answer, then
	// terminate; StopNoReply: terminate without answering).
	HandleCall(req Call, from Caller[Reply]) (Reply, Next)
	// HandleCast handles a request sent with ServerRef.Cast.
	HandleCast(req Cast) Next
	// HandleInfo handles everything else: a plain message (ev.Kind ==
	// EventMessage, msg is it), an EXIT of a linked process other than the
	// parent (the server traps exits), a DOWN of a monitor it set.
	HandleInfo(ev Event, msg Info) Next
	// Terminate runs before the server ends by Stop, a stop request or an
	// exit signal from its parent, with that reason.
	Terminate(reason ExitReason)
}

// Next is what a server's handler decided.
type Next struct {
	stop    ExitReason // nil: go on
	noReply bool
}

var (
	// Continue: go on (HandleCall: after answering).
	Continue = Next{}
	// NoReply (HandleCall only): go on without answering now; the handler
	// kept the Caller to answer later.
	NoReply = Next{noReply: true}
)

// Stop: terminate with reason (HandleCall: after answering).
func Stop(reason ExitReason) Next { return Next{stop: orNormal(reason)} }

// StopNoReply (HandleCall only): terminate with reason without answering.
func StopNoReply(reason ExitReason) Next { return Next{stop: orNormal(reason), noReply: true} }

func orNormal(r ExitReason) ExitReason {
	if r == nil {
		return ExitNormal{}
	}
	return r
}

// Caller is the process that made a call and the tag it waits on: what
// gen_server calls From. On the wire it is two u64 (pid, tag), as the Rust
// SDK's Caller<R> and as Reply.
type Caller[R any] struct {
	Pid Pid
	Tag uint64
}

// Reply answers the call (gen_server:reply/2). A caller that has gone, or
// gave up waiting, never sees it.
func (c Caller[R]) Reply(v R) error { return sendValue("reply", c.Pid, c.Tag, v) }

// The variants of a server's messages: the Rust SDK's enum Msg<C, R, K, I>
// { Call(C, Caller<R>), Cast(K), Info(I), Stop(ExitReason) }.
const (
	msgCall uint32 = iota
	msgCast
	msgInfo
	msgStop
)

// serverMsg is one message of a server's mailbox.
type serverMsg[C, R, K, I any] struct {
	kind uint32
	call C
	from Caller[R]
	cast K
	info I
	stop ExitReason
}

func (m *serverMsg[C, R, K, I]) MarshalBincode(e *bincode.Encoder) error {
	e.Variant(m.kind)
	switch m.kind {
	case msgCall:
		if err := e.Encode(&m.call); err != nil {
			return err
		}
		return e.Encode(&m.from)
	case msgCast:
		return e.Encode(&m.cast)
	case msgInfo:
		return e.Encode(&m.info)
	case msgStop:
		return e.Encode(&m.stop)
	}
	return fmt.Errorf("troupe: server message variant %d", m.kind)
}

func (m *serverMsg[C, R, K, I]) UnmarshalBincode(d *bincode.Decoder) error {
	kind, err := d.Variant()
	if err != nil {
		return err
	}
	m.kind = kind
	switch kind {
	case msgCall:
		if err := d.Decode(&m.call); err != nil {
			return err
		}
		return d.Decode(&m.from)
	case msgCast:
		return d.Decode(&m.cast)
	case msgInfo:
		return d.Decode(&m.info)
	case msgStop:
		return d.Decode(&m.stop)
	}
	return fmt.Errorf("not a server message (variant %d)", kind)
}

// ServerRef is a running server: its pid, typed by its messages. Give it a
// name with a type alias (type KvRef = troupe.ServerRef[Get, Value, Put,
// struct{}]). In messages it is the pid alone (a u64).
type ServerRef[Call, Reply, Cast, Info any] struct {
	Pid Pid
}

func (s ServerRef[C, R, K, I]) MarshalBincode(e *bincode.Encoder) error {
	e.U64(uint64(s.Pid))
	return nil
}

func (s *ServerRef[C, R, K, I]) UnmarshalBincode(d *bincode.Decoder) error {
	p, err := d.U64()
	s.Pid = Pid(p)
	return err
}

// WhereisServer is the server registered under name (looked up now, so a
// restarted server is found under its name).
func WhereisServer[C, R, K, I any](name string) (ServerRef[C, R, K, I], error) {
	p, err := Whereis(name)
	return ServerRef[C, R, K, I]{Pid: p}, err
}

// ServerError is a call, a stop or a start that failed because the server
// ended (or did not start) with Reason. errors.Is(err, ErrNoProcess) when
// the server was not there (ExitNoProc).
type ServerError struct {
	Op     string // "call", "stop", "start"
	Reason ExitReason
}

func (e *ServerError) Error() string {
	switch e.Op {
	case "start":
		return fmt.Sprintf("troupe: the server did not start: %v", e.Reason)
	default:
		return fmt.Sprintf("troupe: %s: the server ended: %v", e.Op, e.Reason)
	}
}

// Is makes errors.Is(err, ErrNoProcess) hold for a server that was not
// there.
func (e *ServerError) Is(target error) bool {
	_, noProc := e.Reason.(ExitNoProc)
	return noProc && target == ErrNoProcess
}

// AlreadyStartedError: the name given to StartServer (Named) is held by
// Pid (OTP's {already_started, Pid}).
type AlreadyStartedError struct {
	Name string
	Pid  Pid
}

func (e *AlreadyStartedError) Error() string {
	return fmt.Sprintf("troupe: start: %q is already registered by %v", e.Name, e.Pid)
}

// Is makes errors.Is(err, ErrAlreadyRegistered) hold.
func (e *AlreadyStartedError) Is(target error) bool { return target == ErrAlreadyRegistered }

var noProcess = &Error{Op: "call", Code: ErrNoProcess, Message: "no such server"}

// Call sends req to the server and waits at most timeout (Forever: no
// limit) for its reply (gen_server:call/3).
//
// The caller monitors the server while it waits, so a server that ends
// before replying gives a *ServerError with its reason at once (one that
// was not there: errors.Is(err, ErrNoProcess)), not a time-out; a
// time-out gives errors.Is(err, ErrTimeout), and the late reply, if any,
// stays in the mailbox, unread. Other messages that arrive meanwhile stay
// queued, in order. Only the calling goroutine waits.
func (s ServerRef[C, R, K, I]) Call(req C, timeout time.Duration) (R, error) {
	var reply R
	me := Self()
	if s.Pid == me {
		return reply, &Error{Op: "call", Code: ErrInvalidArgument, Message: "a server cannot call itself"}
	}
	m := Monitor(s.Pid)
	tag := nextReplyTag()
	msg := serverMsg[C, R, K, I]{kind: msgCall, call: req, from: Caller[R]{Pid: me, Tag: tag}}
	if err := sendValue("call", s.Pid, abi.TagData, &msg); err != nil {
		Demonitor(m)
		return reply, err
	}
	got, ok := receiveMatching(timeout, func(msg *Message) bool {
		return msg.Tag == tag || isDownOf(msg, m)
	})
	if !ok {
		Demonitor(m)
		return reply, &Error{Op: "call", Code: ErrTimeout}
	}
	if got.Tag == tag {
		Demonitor(m)
		if err := bincode.Unmarshal(got.Data, &reply); err != nil {
			return reply, &MalformedError{From: got.From, Tag: got.Tag, Err: err}
		}
		return reply, nil
	}
	return reply, &ServerError{Op: "call", Reason: downReason(got)}
}

// downReason is the reason a DOWN message carries (ExitNoProc if it does
// not decode).
func downReason(m Message) ExitReason {
	ev, err := systemEvent(m.Tag, m.From, m.Data)
	if err != nil || ev.Reason == nil {
		return ExitNoProc{}
	}
	return ev.Reason
}

// Cast sends req without waiting (gen_server:cast/2). nil means it was
// queued, not handled; the only error is that the server does not exist.
func (s ServerRef[C, R, K, I]) Cast(req K) error {
	msg := serverMsg[C, R, K, I]{kind: msgCast, cast: req}
	return sendValue("cast", s.Pid, abi.TagData, &msg)
}

// Info sends a plain message, which the server gets in HandleInfo.
func (s ServerRef[C, R, K, I]) Info(v I) error {
	msg := serverMsg[C, R, K, I]{kind: msgInfo, info: v}
	return sendValue("info", s.Pid, abi.TagData, &msg)
}

// InfoAfter has v sent to the server's HandleInfo after d
// (erlang:send_after/3); cancel with CancelTimer.
func (s ServerRef[C, R, K, I]) InfoAfter(v I, d time.Duration) (TimerRef, error) {
	return SendAfter(s.Pid, &serverMsg[C, R, K, I]{kind: msgInfo, info: v}, d)
}

// Stop asks the server to terminate with reason (calling its Terminate)
// and waits at most timeout until it has ended (gen_server:stop/3). A
// *ServerError if it ended with another reason; errors.Is(err,
// ErrTimeout) if it is still running.
func (s ServerRef[C, R, K, I]) Stop(reason ExitReason, timeout time.Duration) error {
	reason = orNormal(reason)
	m := Monitor(s.Pid)
	msg := serverMsg[C, R, K, I]{kind: msgStop, stop: reason}
	if err := sendValue("stop", s.Pid, abi.TagData, &msg); err != nil {
		Demonitor(m)
		return err
	}
	got, ok := receiveMatching(timeout, func(msg *Message) bool { return isDownOf(msg, m) })
	if !ok {
		Demonitor(m)
		return &Error{Op: "stop", Code: ErrTimeout}
	}
	r := downReason(got)
	if sameReason(r, reason) {
		return nil
	}
	return &ServerError{Op: "stop", Reason: r}
}

// sameReason compares two reasons by their encoding.
func sameReason(a, b ExitReason) bool {
	x, err1 := bincode.Marshal(&a)
	y, err2 := bincode.Marshal(&b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// StartOption says how StartServer starts a server.
type StartOption func(*startOptions)

type startOptions struct {
	link  bool
	name  string
	spawn []SpawnOption
}

// Linked links the server to the caller (gen_server:start_link).
func Linked() StartOption { return func(o *startOptions) { o.link = true } }

// Named registers the server under name before its init runs.
func Named(name string) StartOption { return func(o *startOptions) { o.name = name } }

// WithSpawnOptions spawns the server with these options (limits, args...).
func WithSpawnOptions(opts ...SpawnOption) StartOption {
	return func(o *startOptions) { o.spawn = append(o.spawn, opts...) }
}

// serverAck is a starting server's acknowledgement, the Rust SDK's
// Result<(), NotStarted> with enum NotStarted { Name(Pid), Init(ExitReason) }.
type serverAck struct {
	ok     bool
	owner  Pid        // the name's owner
	reason ExitReason // init's error
}

func (a *serverAck) MarshalBincode(e *bincode.Encoder) error {
	if a.ok {
		e.Variant(0)
		return nil
	}
	e.Variant(1)
	if a.reason == nil {
		e.Variant(0)
		e.U64(uint64(a.owner))
		return nil
	}
	e.Variant(1)
	return e.Encode(&a.reason)
}

func (a *serverAck) UnmarshalBincode(d *bincode.Decoder) error {
	v, err := d.Variant()
	if err != nil || v == 0 {
		a.ok = v == 0
		return err
	}
	why, err := d.Variant()
	if err != nil {
		return err
	}
	switch why {
	case 0:
		p, err := d.U64()
		a.owner = Pid(p)
		return err
	case 1:
		return d.Decode(&a.reason)
	}
	return fmt.Errorf("start acknowledgement variant %d", why)
}

// serverStart is a server's spawn argument: the acknowledgement handle and
// the name, then init's argument (the Rust SDK's ServerStart<A>).
type serverStart[A any] struct {
	Ack  Caller[serverAck]
	Name bincode.Option[string]
	Arg  A
}

// serverStartOut is serverStart as the starter encodes it, with init's
// argument of any type.
type serverStartOut struct {
	Ack  Caller[serverAck]
	Name bincode.Option[string]
	Arg  any
}

func (s *serverStartOut) MarshalBincode(e *bincode.Encoder) error {
	if err := e.Encode(&s.Ack); err != nil {
		return err
	}
	if err := e.Encode(&s.Name); err != nil {
		return err
	}
	if s.Arg == nil {
		return nil // struct{}: nothing
	}
	return e.Encode(s.Arg)
}

// StartServer starts a server: a process of this module in role role
// (SpawnSelf), whose main calls Serve, with arg as its init's argument;
// it returns once init has returned. The type arguments are the server's
// message types (those of its Server implementation):
//
//	kv, err := troupe.StartServer[Get, Value, Put, struct{}]("kv", cfg, troupe.Linked(), troupe.Named("kv"))
//
// Errors: a *ServerError with init's error (the process ended normally,
// so a linked caller lives on) or with the reason the process ended before
// init returned; an *AlreadyStartedError; a spawn error.
func StartServer[C, R, K, I any](role string, arg any, opts ...StartOption) (ServerRef[C, R, K, I], error) {
	pid, err := startServer(role, arg, opts)
	return ServerRef[C, R, K, I]{Pid: pid}, err
}

func startServer(role string, arg any, opts []StartOption) (Pid, error) {
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	spawn := o.spawn
	if o.link {
		spawn = append(spawn[:len(spawn):len(spawn)], WithLink())
	}
	ack := Caller[serverAck]{Pid: Self(), Tag: nextReplyTag()}
	start := serverStartOut{Ack: ack, Arg: arg}
	if o.name != "" {
		start.Name = bincode.Some(o.name)
	}
	pid, err := SpawnSelf(role, &start, spawn...)
	if err != nil {
		return 0, err
	}
	return pid, waitStarted(pid, ack.Tag, o.name)
}

// waitStarted waits until the server just spawned as pid acknowledges its
// start (on tag) or ends. Other messages stay queued.
func waitStarted(pid Pid, tag uint64, name string) error {
	m := Monitor(pid)
	got, _ := receiveMatching(Forever, func(msg *Message) bool {
		return msg.Tag == tag || isDownOf(msg, m)
	})
	if got.Tag == tag {
		var ack serverAck
		if err := bincode.Unmarshal(got.Data, &ack); err != nil {
			ack.reason = ExitTrap(fmt.Sprintf("malformed start acknowledgement: %v", err))
		}
		if ack.ok {
			Demonitor(m)
			return nil
		}
		// It ends at once, normally: wait for that, and drop its EXIT.
		receiveMatching(Forever, func(msg *Message) bool { return isDownOf(msg, m) })
		forgetExitOf(pid)
		if ack.reason == nil {
			return &AlreadyStartedError{Name: name, Pid: ack.owner}
		}
		return &ServerError{Op: "start", Reason: ack.reason}
	}
	forgetExitOf(pid)
	return &ServerError{Op: "start", Reason: downReason(got)}
}

// forgetExitOf drops the EXIT message of pid if there is one (a linked
// process that ended while this one traps exits). A process's EXIT is
// queued before its DOWN, so after its DOWN it is already here.
func forgetExitOf(pid Pid) {
	receiveMatching(0, func(msg *Message) bool {
		return msg.Tag == abi.TagExit && len(msg.Data) >= 8 &&
			Pid(binary.LittleEndian.Uint64(msg.Data)) == pid
	})
}

// Serve runs this process as a server: it reads the start argument that
// StartServer sent, registers the name it was given, builds the state
// with init (which may call TrapExit(true)), acknowledges the start, and
// handles messages until the server stops; then the process exits with
// the stop's reason. It never returns. init returning a non-nil reason
// fails the start with it (the process ends normally, OTP 26's {error,
// Reason}).
//
// Its type arguments are inferred from init:
//
//	func newKv(cfg Config) (troupe.Server[Get, Value, Put, struct{}], troupe.ExitReason)
//	…
//	case "kv":
//		troupe.Serve(newKv)
func Serve[A, C, R, K, I any](init func(A) (Server[C, R, K, I], ExitReason)) {
	var start serverStart[A]
	parent, err := SpawnArg(&start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "troupe: Serve: this process was not started by StartServer: %v\n", err)
		Exit(ExitTrap("Serve: not started by StartServer: " + err.Error()))
	}
	if start.Name.Valid {
		if err := Register(start.Name.Value, Self()); err != nil {
			owner, _ := Whereis(start.Name.Value)
			_ = start.Ack.Reply(serverAck{owner: owner})
			os.Exit(0)
		}
	}
	state, why := init(start.Arg)
	if why != nil {
		_ = start.Ack.Reply(serverAck{reason: why})
		os.Exit(0)
	}
	_ = start.Ack.Reply(serverAck{ok: true})
	serve(state, parent)
}

// serve is a started server's loop.
func serve[C, R, K, I any](state Server[C, R, K, I], parent Pid) {
	for {
		next := handleOne(state, parent)
		if next.stop != nil {
			state.Terminate(next.stop)
			Exit(next.stop)
		}
	}
}

// handleOne waits for the next message, EXIT or DOWN and hands it to its
// handler.
func handleOne[C, R, K, I any](state Server[C, R, K, I], parent Pid) Next {
	tag, from, buf, n, _ := receive(eventTags[:], Forever)
	data := append([]byte(nil), buf[:n]...)
	releaseBuffer(buf)
	if tag != abi.TagData {
		ev, err := systemEvent(tag, from, data)
		if err != nil {
			fmt.Fprintf(os.Stderr, "troupe: server %v dropped a malformed event: %v\n", Self(), err)
			return Continue
		}
		if ev.Kind == EventExit && ev.From == parent {
			// OTP: an exit signal from the parent stops a trapping server.
			return Stop(ev.Reason)
		}
		var none I
		return state.HandleInfo(ev, none)
	}
	var msg serverMsg[C, R, K, I]
	if err := bincode.Unmarshal(data, &msg); err != nil {
		fmt.Fprintf(os.Stderr, "troupe: server %v dropped a message from %v that is not one of its messages: %v\n",
			Self(), from, err)
		return Continue
	}
	switch msg.kind {
	case msgCall:
		reply, next := state.HandleCall(msg.call, msg.from)
		if !next.noReply {
			_ = msg.from.Reply(reply)
		}
		return Next{stop: next.stop}
	case msgCast:
		return state.HandleCast(msg.cast)
	case msgInfo:
		return state.HandleInfo(Event{Kind: EventMessage, From: from}, msg.info)
	default:
		return Stop(msg.stop)
	}
}
