package troupe

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// Links, monitors, exit signals, the name registry and timers: Erlang's
// fault-tolerance primitives (host-api/SPEC.md, "Links, monitors and exit
// signals"). Each function here is the only user of its host function, so a
// program that does not call it does not import it.

// ExitReason is why a process ended, as EXIT and DOWN events carry it and
// as SendExit and Exit take it: the Rust SDK's enum ExitReason, whose
// variants are, in order, ExitNormal, ExitTrap, ExitKilled, ExitLimit,
// ExitCode, ExitCustom, ExitNoProc and ExitShutdown.
type ExitReason interface {
	isExitReason()
	String() string
}

type (
	// ExitNormal: the process returned from main (or its function), or
	// exited with code 0. The only reason that does not end linked processes.
	ExitNormal struct{}
	// ExitTrap: it trapped; the trap's message.
	ExitTrap string
	// ExitKilled: it was killed (Kill).
	ExitKilled struct{}
	// ExitLimit: it exceeded a limit set at spawn.
	ExitLimit Limit
	// ExitCode: it exited with this non-zero code (a Go panic is code 2).
	ExitCode int32
	// ExitCustom: it exited with a reason of its own (bincode bytes, see
	// CustomReason).
	ExitCustom []byte
	// ExitNoProc: the monitored process did not exist (DOWN only).
	ExitNoProc struct{}
	// ExitShutdown: it was asked to shut down (by a supervisor).
	ExitShutdown struct{}
)

// Limit is which per-process limit a process exceeded.
type Limit uint32

// The limits, in the order of the Rust SDK's enum Limit.
const (
	LimitMemory Limit = Limit(abi.ReasonLimitMemory)
	LimitFuel   Limit = Limit(abi.ReasonLimitFuel)
)

func (ExitNormal) isExitReason()   {}
func (ExitTrap) isExitReason()     {}
func (ExitKilled) isExitReason()   {}
func (ExitLimit) isExitReason()    {}
func (ExitCode) isExitReason()     {}
func (ExitCustom) isExitReason()   {}
func (ExitNoProc) isExitReason()   {}
func (ExitShutdown) isExitReason() {}

func (ExitNormal) String() string { return "normal" }
func (t ExitTrap) String() string { return "trap: " + string(t) }
func (ExitKilled) String() string { return "killed" }
func (l ExitLimit) String() string {
	if Limit(l) == LimitFuel {
		return "fuel limit exceeded"
	}
	return "memory limit exceeded"
}
func (c ExitCode) String() string   { return fmt.Sprintf("exit code %d", int32(c)) }
func (c ExitCustom) String() string { return fmt.Sprintf("custom reason (%d bytes)", len(c)) }
func (ExitNoProc) String() string   { return "noproc" }
func (ExitShutdown) String() string { return "shutdown" }

func init() {
	bincode.RegisterEnum[ExitReason](ExitNormal{}, ExitTrap(""), ExitKilled{}, ExitLimit(0),
		ExitCode(0), ExitCustom(nil), ExitNoProc{}, ExitShutdown{})
}

// CustomReason is an ExitCustom reason carrying v (bincode).
func CustomReason(v any) (ExitCustom, error) {
	b, err := encodeWithoutSockets(v) // an exit reason does not move sockets
	return ExitCustom(b), err
}

// IsAbnormal reports whether OTP would call r abnormal: anything but
// ExitNormal and ExitShutdown.
func IsAbnormal(r ExitReason) bool {
	switch r.(type) {
	case ExitNormal, ExitShutdown:
		return false
	}
	return true
}

func pidError(op string, rc int32) error {
	if rc == abi.ErrOk {
		return nil
	}
	return hostError(op, rc)
}

// Link links this process and p: if either ends abnormally, the other ends
// with the same reason, or, if it traps exits, gets an EventExit instead.
// ErrNoProcess if p does not exist.
func Link(p Pid) error { return pidError("link", sysLink(int64(p))) }

// Unlink removes the link with p, if any.
func Unlink(p Pid) { sysUnlink(int64(p)) }

// MonitorRef identifies a monitor; its EventDown carries it.
type MonitorRef uint64

// Monitor starts monitoring p: when p ends, this process gets one EventDown
// (at once, with ExitNoProc, if p does not exist). A process holding
// abi.LimitMonitors monitors cannot start another: Monitor panics.
func Monitor(p Pid) MonitorRef {
	ref := sysMonitor(int64(p))
	if ref == 0 {
		panic(hostError("monitor", abi.ErrResourceLimit))
	}
	return MonitorRef(ref)
}

// Demonitor stops a monitor and removes its EventDown if one is already
// queued. False if this process held no such monitor.
func Demonitor(ref MonitorRef) bool {
	ok := sysDemonitor(int64(ref)) == abi.ErrOk
	// A DOWN a selective receive passed over is in the stash, not the VM:
	// it is flushed too, as a DOWN still queued in the VM is.
	_, stashed := takeStashed(func(m *Message) bool { return isDownOf(m, ref) })
	return ok || stashed
}

// isDownOf reports whether m is the DOWN of monitor ref.
func isDownOf(m *Message, ref MonitorRef) bool {
	return m.Tag == abi.TagDown && len(m.Data) >= 8 &&
		MonitorRef(binary.LittleEndian.Uint64(m.Data)) == ref
}

// TrapExit turns exit trapping on or off and returns the previous setting.
// A process that traps exits gets EventExit messages instead of ending with
// its links.
func TrapExit(on bool) bool {
	enable := int32(0)
	if on {
		enable = 1
	}
	return sysTrapExit(enable) != 0
}

// Kill ends p with ExitKilled; it cannot be trapped.
func Kill(p Pid) error { return pidError("kill", sysKill(int64(p))) }

// SendExit sends p the exit signal reason, as if a linked process had ended
// with it: a trapping p gets an EventExit; otherwise ExitNormal is ignored
// and any other reason ends p.
func SendExit(p Pid, reason ExitReason) error {
	b, err := bincode.Marshal(&reason)
	if err != nil {
		return invalid("send_exit", "cannot encode the reason: %v", err)
	}
	return pidError("send_exit", sysSendExit(int64(p), unsafe.Pointer(unsafe.SliceData(b)), int32(len(b))))
}

// Exit ends this process now with reason. It does not return.
func Exit(reason ExitReason) {
	b, err := bincode.Marshal(&reason)
	if err != nil {
		panic(fmt.Sprintf("troupe: cannot encode the exit reason: %v", err))
	}
	sysExit(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)))
	panic("troupe: exit returned")
}

// EventKind says what ReceiveEvent took.
type EventKind int

const (
	// EventMessage is an ordinary message (tag abi.TagData).
	EventMessage EventKind = iota
	// EventExit is an exit signal turned into a message: a linked process
	// ended, or one called SendExit (this process traps exits).
	EventExit
	// EventDown is a monitor that fired.
	EventDown
)

// Event is what ReceiveEvent takes from the mailbox.
type Event struct {
	Kind EventKind
	// The sender (EventMessage), the process that ended or sent the signal
	// (EventExit), the monitored process (EventDown).
	From    Pid
	Monitor MonitorRef // EventDown only
	Reason  ExitReason // EventExit and EventDown
}

var eventTags = [3]uint64{abi.TagData, abi.TagExit, abi.TagDown}

// ReceiveEvent waits at most timeout for the next ordinary message, exit
// signal or DOWN. A message is decoded into the value msg points to.
func ReceiveEvent(msg any, timeout time.Duration) (Event, error) {
	tag, from, buf, n, ok := receive(eventTags[:], timeout)
	if !ok {
		return Event{}, errReceiveTimeout
	}
	defer releaseBuffer(buf)
	data := buf[:n]
	if tag == abi.TagData {
		if err := bincode.Unmarshal(data, msg); err != nil {
			return Event{Kind: EventMessage, From: from}, &MalformedError{From: from, Tag: tag, Err: err}
		}
		return Event{Kind: EventMessage, From: from}, nil
	}
	return systemEvent(tag, from, data)
}

// systemEvent decodes an EXIT (u64 pid, reason) or DOWN (u64 monitor,
// u64 pid, reason) payload.
func systemEvent(tag uint64, from Pid, data []byte) (Event, error) {
	e := Event{Kind: EventExit}
	head := 8
	if tag == abi.TagDown {
		e.Kind, head = EventDown, 16
	}
	if len(data) < head {
		return e, &MalformedError{From: from, Tag: tag, Err: fmt.Errorf("%d bytes", len(data))}
	}
	if tag == abi.TagDown {
		e.Monitor = MonitorRef(binary.LittleEndian.Uint64(data))
	}
	e.From = Pid(binary.LittleEndian.Uint64(data[head-8:]))
	if err := bincode.Unmarshal(data[head:], &e.Reason); err != nil {
		return e, &MalformedError{From: from, Tag: tag, Err: err}
	}
	return e, nil
}

var downTag = [1]uint64{abi.TagDown}

// ReceiveDown waits at most timeout for the next DOWN (other messages stay
// queued).
func ReceiveDown(timeout time.Duration) (Event, error) {
	tag, from, buf, n, ok := receive(downTag[:], timeout)
	if !ok {
		return Event{}, errReceiveTimeout
	}
	defer releaseBuffer(buf)
	return systemEvent(tag, from, buf[:n])
}

// Register names p: Send by name with SendNamed, find with Whereis. A name
// names one process; it is freed when the process ends.
// ErrAlreadyRegistered if the name is taken, ErrNoProcess if p does not
// exist.
func Register(name string, p Pid) error {
	b := []byte(name)
	return pidError("register", sysRegister(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)), int64(p)))
}

// Unregister frees a name (ErrNotFound if it is not registered).
func Unregister(name string) error {
	b := []byte(name)
	return pidError("unregister", sysUnregister(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b))))
}

// Whereis is the process registered under name (ErrNotFound if none).
func Whereis(name string) (Pid, error) {
	b := []byte(name)
	var pid uint64
	if rc := sysWhereis(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)), unsafe.Pointer(&pid)); rc != abi.ErrOk {
		return 0, hostError("whereis", rc)
	}
	return Pid(pid), nil
}

// SendNamed sends v (bincode, tag abi.TagData) to the process registered
// under name (ErrNotFound if none). Sockets in v move, as with Send.
func SendNamed(name string, v any) error {
	data, err := encodeMessage(nil, v)
	if err != nil {
		return invalid("send", "%v", err)
	}
	b := []byte(name)
	rc := sysSendNamed(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)),
		int64(abi.TagData), unsafe.Pointer(unsafe.SliceData(data)), int32(len(data)))
	messageSent(rc)
	return pidError("send", rc)
}

// TimerRef identifies a timer of SendAfter.
type TimerRef uint64

// SendAfter sends v (bincode, tag abi.TagData) to p after d, from this
// process; the message is dropped if p no longer exists then. Unlike a
// goroutine with time.Sleep, the timer runs in the VM: it fires while this
// process waits in Receive. A timer's message cannot carry sockets.
func SendAfter(p Pid, v any, d time.Duration) (TimerRef, error) {
	data, err := encodeWithoutSockets(v) // send_after does not move sockets
	if err != nil {
		return 0, invalid("send_after", "%v", err)
	}
	var ref uint64
	rc := sysSendAfter(int64(p), int64(abi.TagData), unsafe.Pointer(unsafe.SliceData(data)), int32(len(data)),
		int64(d), unsafe.Pointer(&ref))
	if rc != abi.ErrOk {
		return 0, hostError("send_after", rc)
	}
	return TimerRef(ref), nil
}

// CancelTimer cancels a timer: true if it had not fired yet.
func CancelTimer(ref TimerRef) bool { return sysCancelTimer(int64(ref)) == abi.ValTimerCancelled }
