package troupe

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// These tests make no host call (the native stand-ins panic): they check
// what the SDK decides on its own. examples/netcheck runs the rest against
// the VM.

func TestNetErrorsMatchTheStandardLibrary(t *testing.T) {
	perm := &Error{Op: "tcp_listen", Code: ErrPermissionDenied, Message: "no --allow-net"}
	if !errors.Is(perm, os.ErrPermission) || !errors.Is(perm, fs.ErrPermission) || !errors.Is(perm, ErrPermissionDenied) {
		t.Error("PERMISSION_DENIED should be os.ErrPermission")
	}
	timeout := &Error{Op: "read", Code: ErrTimeout}
	if !errors.Is(timeout, os.ErrDeadlineExceeded) || !errors.Is(timeout, ErrTimeout) {
		t.Error("TIMEOUT should be os.ErrDeadlineExceeded")
	}
	var ne net.Error
	if !errors.As(error(timeout), &ne) || !ne.Timeout() {
		t.Error("TIMEOUT should be a net.Error with Timeout()")
	}
	closed := &Error{Op: "read", Code: ErrBadHandle}
	if !errors.Is(closed, net.ErrClosed) || closed.Timeout() {
		t.Error("BAD_HANDLE should be net.ErrClosed")
	}
	other := &Error{Op: "tcp_connect", Code: ErrConnectionRefused}
	for _, target := range []error{os.ErrPermission, os.ErrDeadlineExceeded, net.ErrClosed, ErrTimeout} {
		if errors.Is(other, target) {
			t.Errorf("CONNECTION_REFUSED should not be %v", target)
		}
	}
	if got := other.Error(); got != "troupe: tcp_connect: connection refused" {
		t.Errorf("Error() = %q", got)
	}
	for code, name := range map[Code]string{
		ErrBadHandle: "bad socket handle", ErrConnectionReset: "connection reset",
		ErrAddrInUse: "address in use", ErrAddrNotAvailable: "address not available",
		ErrNotConnected: "not connected", ErrHostNotFound: "host not found", ErrIO: "I/O error",
	} {
		if code.Error() != name {
			t.Errorf("%d: %q, want %q", int32(code), code.Error(), name)
		}
	}
}

func TestDeadlinesBecomeTimeouts(t *testing.T) {
	if ns, err := deadlineTimeout("read", time.Time{}); err != nil || ns != abi.ValTimeoutForever {
		t.Errorf("no deadline: %d, %v", ns, err)
	}
	ns, err := deadlineTimeout("read", time.Now().Add(time.Hour))
	if err != nil || ns <= int64(59*time.Minute) || ns > int64(time.Hour) {
		t.Errorf("an hour ahead: %d, %v", ns, err)
	}
	_, err = deadlineTimeout("read", time.Now().Add(-time.Millisecond))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a passed deadline: %v", err)
	}
}

func TestAddressesAreParsed(t *testing.T) {
	a := parseAddr("tcp", "127.0.0.1:7007")
	if ta, ok := a.(*net.TCPAddr); !ok || ta.Port != 7007 || !ta.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("tcp: %#v", a)
	}
	a = parseAddr("udp", "[::1]:53")
	if ua, ok := a.(*net.UDPAddr); !ok || ua.Port != 53 || ua.String() != "[::1]:53" {
		t.Errorf("udp: %#v", a)
	}
	a = parseAddr("tcp", "not an address")
	if a.Network() != "tcp" || a.String() != "not an address" {
		t.Errorf("text: %#v", a)
	}
	got := splitLines("10.0.0.1\n::1\n")
	if len(got) != 2 || got[0] != "10.0.0.1" || got[1] != "::1" || splitLines("") != nil {
		t.Errorf("splitLines: %q", got)
	}
}

func TestClosedMovedAndNilSocketsAreRefusedWithoutAHostCall(t *testing.T) {
	closed := &TCPConn{newSocket(9, "tcp")}
	closed.s.state = sockClosed
	moved := &TCPConn{newSocket(10, "tcp")}
	moved.s.state = sockMoved
	var nilConn *TCPConn
	for name, c := range map[string]*TCPConn{"closed": closed, "moved": moved, "nil": nilConn, "zero": {}} {
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Read: %v", name, err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Write: %v", name, err)
		}
		if err := c.CloseWrite(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: CloseWrite: %v", name, err)
		}
		if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: SetDeadline: %v", name, err)
		}
		if c.LocalAddr() != nil || c.RemoteAddr() != nil {
			t.Errorf("%s: addresses", name)
		}
	}
	if err := moved.Close(); err != nil {
		t.Errorf("closing a moved connection: %v", err)
	}
	if err := closed.Close(); !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), closedMessage) {
		t.Errorf("closing twice: %v", err)
	}
	if _, err := moved.Read(nil); err == nil || !strings.Contains(err.Error(), "moved") {
		t.Errorf("reading a moved connection: %v", err)
	}
	var l *TCPListener
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("nil listener: %v", err)
	}
	u := &UDPConn{newSocket(11, "udp")}
	u.s.state = sockClosed
	if _, _, err := u.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed UDP: %v", err)
	}
	if _, err := u.WriteTo([]byte("x"), "127.0.0.1:9"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed UDP: %v", err)
	}
}

func TestAFailedSendClosesTheAttachedSockets(t *testing.T) {
	s := newSocket(12, "tcp")
	s.state = sockMoved
	attached = append(attached, s)
	messageSent(abi.ErrNoProcess)
	if s.state != sockLost || len(attached) != 0 {
		t.Fatalf("state %d, %d attached", s.state, len(attached))
	}
	c := &TCPConn{s}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "not delivered") {
		t.Errorf("Write: %v", err)
	}
}

// The bincode package finds the hooks of the pointer types, in a field or
// as the value itself, and decodes a handle into a socket of this process.
func TestSocketsDecodeFromTheirHandle(t *testing.T) {
	handle := binary.LittleEndian.AppendUint64(nil, 42)
	var c *TCPConn
	if err := bincode.Unmarshal(handle, &c); err != nil || c.s.handle != 42 || c.s.state != sockOpen || c.s.network != "tcp" {
		t.Fatalf("*TCPConn: %+v, %v", c, err)
	}
	var v TCPConn
	if err := bincode.Unmarshal(handle, &v); err != nil || v.s.handle != 42 {
		t.Fatalf("TCPConn: %+v, %v", v, err)
	}
	type msg struct {
		Name string
		Conn *TCPConn
		UDP  *UDPConn
		L    *TCPListener
	}
	b, _ := bincode.Marshal("job")
	b = append(b, handle...)
	b = binary.LittleEndian.AppendUint64(b, 43)
	b = binary.LittleEndian.AppendUint64(b, 44)
	var m msg
	if err := bincode.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "job" || m.Conn.s.handle != 42 || m.UDP.s.handle != 43 || m.UDP.s.network != "udp" || m.L.s.handle != 44 {
		t.Fatalf("decoded %+v", m)
	}
	if err := bincode.Unmarshal(handle[:4], &c); err == nil {
		t.Fatal("a short handle should not decode")
	}
}

func TestSocketsEncodeThroughTheirHooks(t *testing.T) {
	// A closed socket cannot be moved: the hook refuses before any host call.
	closed := &TCPConn{newSocket(5, "tcp")}
	closed.s.state = sockClosed
	if _, err := bincode.Marshal(closed); !errors.Is(err, net.ErrClosed) {
		t.Errorf("*TCPConn: %v", err)
	}
	if _, err := bincode.Marshal(struct{ C TCPConn }{*closed}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("TCPConn field: %v", err)
	}
	// A socket already attached to this message encodes its handle again.
	s := newSocket(6, "udp")
	s.state = sockMoved
	attached = append(attached, s)
	b, err := bincode.Marshal(&UDPConn{s})
	clearAttached()
	if err != nil || binary.LittleEndian.Uint64(b) != 6 || len(b) != 8 {
		t.Errorf("twice in one message: %x, %v", b, err)
	}
	// Messages that cannot move sockets refuse them.
	open := &TCPConn{newSocket(7, "tcp")}
	if _, err := encodeWithoutSockets([]*TCPConn{open}); !errors.Is(err, errNoSockets) {
		t.Errorf("encodeWithoutSockets: %v", err)
	}
	if _, err := CustomReason(open); !errors.Is(err, errNoSockets) {
		t.Errorf("CustomReason: %v", err)
	}
	if open.s.state != sockOpen || noSockets {
		t.Error("a refused socket must stay open")
	}
}

func TestWithNetNeedsAConfiguration(t *testing.T) {
	for _, rules := range [][]string{nil, {"127.0.0.1:80", "*:53"}} {
		if options([]SpawnOption{WithNet(rules...)}).inheritsAll() {
			t.Errorf("WithNet(%q) should need a configuration", rules)
		}
	}
	o := options([]SpawnOption{WithNet("a\x00b")})
	if _, err := newConfig(o); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a rule with a NUL: %v", err)
	}
}
