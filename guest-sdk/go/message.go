package troupe

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// Pid identifies a process: unique for the whole life of the VM, never
// reused. The root process is pid 1. In messages it is a u64, as the Rust
// SDK's Pid.
type Pid uint64

// String shows the pid as <N>, as the Rust SDK does.
func (p Pid) String() string { return fmt.Sprintf("<%d>", uint64(p)) }

var selfPid atomic.Uint64

// Self is the calling process's pid (asked from the VM once).
func Self() Pid {
	p := selfPid.Load()
	if p == 0 {
		p = uint64(sysSelfPid())
		selfPid.Store(p)
	}
	return Pid(p)
}

// Forever, as a timeout, waits without limit.
const Forever time.Duration = -1

// timeoutNs is receive's timeout argument: negative waits forever, zero
// polls.
func timeoutNs(d time.Duration) int64 {
	if d < 0 {
		return abi.ValTimeoutForever
	}
	return int64(d)
}

// Buffers reused between calls. A buffer is taken out while in use, so
// that a concurrent use (two goroutines) allocates rather than shares.
var (
	recvBuf []byte
	sendBuf []byte
)

const (
	// initialBuffer is where the receive buffer starts: typical messages
	// fit, so a waiting message costs one host call.
	initialBuffer = 1024
	// keepBuffer: a buffer grown past this by one big message is left to
	// the garbage collector after use.
	keepBuffer = 1 << 20
)

// Send encodes v with bincode (see package bincode) and sends it with tag
// abi.TagData. It never blocks and is not acknowledged: nil means the
// message was queued, not that it will be handled. A dead target gives an
// error that errors.Is(err, ErrNoProcess); a target whose mailbox is full
// (the message would take it past its memory budget, which counts its
// queued messages) one that errors.Is(err, ErrResourceLimit).
//
// Sockets (*TCPConn, *TCPListener, *UDPConn) in v move to p with the
// message: this process can no longer use them (see TCPConn). If the
// message is not delivered, the VM closes them.
func (p Pid) Send(v any) error { return sendValue("send", p, abi.TagData, v) }

// SendTagged sends raw bytes with a tag of your choosing (the receiver
// selects on it with ReceiveTagged).
func (p Pid) SendTagged(tag uint64, data []byte) error {
	rc := sysSend(int64(p), int64(tag), unsafe.Pointer(unsafe.SliceData(data)), int32(len(data)))
	messageSent(rc)
	if rc != abi.ErrOk {
		return hostError("send", rc)
	}
	return nil
}

func sendValue(op string, p Pid, tag uint64, v any) error {
	buf := sendBuf
	sendBuf = nil
	buf, err := encodeMessage(buf[:0], v)
	if err != nil {
		sendBuf = buf
		return &Error{Op: op, Code: ErrInvalidArgument, Message: err.Error()}
	}
	err = p.SendTagged(tag, buf)
	if cap(buf) <= keepBuffer {
		sendBuf = buf
	}
	if e, ok := err.(*Error); ok {
		e.Op = op
	}
	return err
}

// Message is a message taken from the mailbox: its tag, its sender and its
// payload.
type Message struct {
	Tag  uint64
	From Pid // for abi.TagSpawnArg: the parent
	Data []byte
}

// Decode decodes the payload (bincode) into the value v points to.
func (m Message) Decode(v any) error {
	if err := bincode.Unmarshal(m.Data, v); err != nil {
		return &MalformedError{From: m.From, Tag: m.Tag, Err: err}
	}
	return nil
}

// The receive call's small arguments live in globals rather than on the
// stack: a pointer passed to a host function makes its target escape to
// the heap, and a Go process runs on one thread, with no goroutine switch
// between the host call and the reading of its results.
var (
	infoRecord [abi.InfoSize]byte
	oneTag     [1]uint64
)

// Preallocated time-out errors: polling with TryReceive should not
// allocate.
var (
	errReceiveTimeout = &Error{Op: "receive", Code: ErrTimeout}
	errRequestTimeout = &Error{Op: "request", Code: ErrTimeout}
)

// receive takes the oldest message whose tag is in tags (any tag if tags is
// empty), waiting up to timeout, into the receive buffer, which it takes:
// the caller gives it back with releaseBuffer once done with the payload
// buf[:n].
//
// It never waits in the VM: it looks without waiting, and if nothing
// matches, parks this goroutine until the mailbox's descriptor reports an
// arrival (see waitArrival) or the time-out passes, then looks again. So
// the process's other goroutines run while it waits.
func receive(tags []uint64, timeout time.Duration) (tag uint64, from Pid, buf []byte, n int, ok bool) {
	var timer *time.Timer
	for copied := false; ; {
		tag, from, buf, n, ok, waiting := tryReceive(tags)
		if !waiting || timeout == 0 {
			if timer != nil {
				timer.Stop()
			}
			return tag, from, buf, n, ok
		}
		if !copied {
			// The caller's tags may be a global that another goroutine
			// reuses while this one waits.
			tags, copied = append([]uint64(nil), tags...), true
		}
		if timeout > 0 && timer == nil {
			timer = time.NewTimer(timeout)
		}
		if !waitArrival(timer) {
			// Timed out: a last look, for a message that came just now.
			tag, from, buf, n, ok, _ := tryReceive(tags)
			return tag, from, buf, n, ok
		}
	}
}

// The stash: messages a selective receive on a condition (receiveMatching:
// a call waiting for its reply or its server's DOWN, a supervisor waiting
// for a child) took from the mailbox and did not want. They are older than
// anything still in the VM's mailbox, so every receive looks here first and
// the order of messages is kept (the Rust SDK's stash, Erlang's save queue).
var stash struct {
	mu   sync.Mutex
	msgs []Message
}

// takeStashed removes and returns the oldest stashed message that pick
// accepts.
func takeStashed(pick func(*Message) bool) (Message, bool) {
	stash.mu.Lock()
	defer stash.mu.Unlock()
	for i := range stash.msgs {
		if pick(&stash.msgs[i]) {
			m := stash.msgs[i]
			stash.msgs = append(stash.msgs[:i], stash.msgs[i+1:]...)
			return m, true
		}
	}
	return Message{}, false
}

func hasTag(tags []uint64, tag uint64) bool {
	if len(tags) == 0 {
		return true
	}
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// receiveMatching takes the oldest message that pick accepts, waiting at
// most timeout (Forever: no limit); the messages it passes over are
// stashed, in order, for the receives that want them. Like receive, it
// parks only the calling goroutine.
func receiveMatching(timeout time.Duration, pick func(*Message) bool) (Message, bool) {
	if m, ok := takeStashed(pick); ok {
		return m, true
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// Everything the VM holds, oldest first, until one is wanted.
		for {
			tag, from, buf, n, ok, _ := tryReceiveVM(nil)
			if !ok {
				break
			}
			m := Message{Tag: tag, From: from, Data: append([]byte(nil), buf[:n]...)}
			releaseBuffer(buf)
			if pick(&m) {
				return m, true
			}
			stash.mu.Lock()
			stash.msgs = append(stash.msgs, m)
			stash.mu.Unlock()
		}
		if timeout == 0 {
			return Message{}, false
		}
		if timeout > 0 && timer == nil {
			timer = time.NewTimer(timeout)
		}
		if !waitArrival(timer) {
			timeout = 0 // a last look, for a message that came just now
		}
	}
}

// tryReceive is receive without waiting; waiting is set if nothing
// matched (the VM then arms the mailbox's descriptor).
func tryReceive(tags []uint64) (tag uint64, from Pid, buf []byte, n int, ok, waiting bool) {
	// Unlocked: a Go process runs on one thread and nothing between here
	// and the VM's receive lets another goroutine run (takeStashed locks).
	if len(stash.msgs) > 0 {
		if m, found := takeStashed(func(m *Message) bool { return hasTag(tags, m.Tag) }); found {
			return m.Tag, m.From, m.Data, len(m.Data), true, false
		}
	}
	return tryReceiveVM(tags)
}

// tryReceiveVM is tryReceive from the VM's mailbox alone.
func tryReceiveVM(tags []uint64) (tag uint64, from Pid, buf []byte, n int, ok, waiting bool) {
	buf = recvBuf
	recvBuf = nil
	if len(buf) < initialBuffer {
		buf = make([]byte, initialBuffer)
	}
	rc := sysReceive(unsafe.Pointer(unsafe.SliceData(tags)), int32(len(tags)), 0,
		unsafe.Pointer(&buf[0]), int32(len(buf)), unsafe.Pointer(&infoRecord[0]))
	tag, from, n = parseInfo(&infoRecord)
	switch rc {
	case abi.ErrOk:
	case abi.ErrBufferTooSmall:
		buf = make([]byte, n)
		if rc := sysRead(unsafe.Pointer(unsafe.SliceData(buf)), int32(n)); rc != abi.ErrOk {
			unexpected("read", rc)
		}
	case abi.ErrTimeout:
		recvBuf = buf
		return 0, 0, nil, 0, false, true
	default:
		unexpected("receive", rc)
	}
	return tag, from, buf, n, true, false
}

func releaseBuffer(buf []byte) {
	if len(buf) <= keepBuffer {
		recvBuf = buf
	}
}

// parseInfo reads the record receive writes: tag, sender, payload length.
func parseInfo(info *[abi.InfoSize]byte) (uint64, Pid, int) {
	tag := binary.LittleEndian.Uint64(info[abi.InfoTag:])
	from := binary.LittleEndian.Uint64(info[abi.InfoSender:])
	n := binary.LittleEndian.Uint32(info[abi.InfoLen:])
	return tag, Pid(from), int(n)
}

// ReceiveTagged takes the oldest message whose tag is one of tags (any tag
// if tags is empty; messages with other tags stay queued, in order),
// waiting at most timeout (Forever: no limit, 0: do not wait). This is
// Erlang's selective receive on tags. The only error is a time-out
// (errors.Is(err, ErrTimeout)).
func ReceiveTagged(tags []uint64, timeout time.Duration) (Message, error) {
	tag, from, buf, n, ok := receive(tags, timeout)
	if !ok {
		return Message{}, errReceiveTimeout
	}
	m := Message{Tag: tag, From: from, Data: append([]byte(nil), buf[:n]...)}
	releaseBuffer(buf)
	return m, nil
}

// receiveDecoded takes the oldest message with tag and decodes it into v;
// timedOut is the error for a time-out.
func receiveDecoded(tag uint64, timeout time.Duration, v any, timedOut error) (Pid, error) {
	oneTag[0] = tag
	tag, from, buf, n, ok := receive(oneTag[:], timeout)
	if !ok {
		return 0, timedOut
	}
	err := bincode.Unmarshal(buf[:n], v)
	releaseBuffer(buf)
	if err != nil {
		return from, &MalformedError{From: from, Tag: tag, Err: err}
	}
	return from, nil
}

// Receive waits for the next ordinary message (tag abi.TagData) and decodes
// it into the value v points to; it returns the sender. Replies to
// requests, the spawn argument and VM messages stay queued for the code
// that waits for them.
//
// While it waits, only the calling goroutine waits: the process's other
// goroutines run on (see the package documentation).
//
// A payload that does not decode as v's type gives a *MalformedError (the
// message is consumed).
func Receive(v any) (from Pid, err error) {
	return receiveDecoded(abi.TagData, Forever, v, errReceiveTimeout)
}

// ReceiveTimeout is Receive waiting at most d; a time-out gives an error
// that errors.Is(err, ErrTimeout).
func ReceiveTimeout(v any, d time.Duration) (from Pid, err error) {
	return receiveDecoded(abi.TagData, d, v, errReceiveTimeout)
}

// TryReceive takes the next ordinary message if one is waiting, without
// waiting (ErrTimeout if none is).
func TryReceive(v any) (from Pid, err error) {
	return receiveDecoded(abi.TagData, 0, v, errReceiveTimeout)
}
