package troupe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// Networking: TCP, UDP and name resolution over the host's troupe_net
// functions (host-api/SPEC.md). The VM allows them only when started with
// `troupe run --allow-net` (or --allow-net=HOST[:PORT],...); otherwise every
// call fails with an error that errors.Is(err, os.ErrPermission).
//
// A socket belongs to one process. It moves to another process inside a
// message: *TCPConn, *TCPListener and *UDPConn encode themselves (bincode)
// as their handle, a u64, and attach the socket to the message being sent,
// so that Send, SendNamed, Reply.Send, Request, SpawnSelf and SpawnStart
// hand it over. The receiver decodes it into a *TCPConn (…) that owns it.
//
// A socket is also a WASI descriptor of this process (SPEC.md, "WASI
// descriptors"), and the package hands it to Go's own net package
// (net.FileConn, net.FileListener) on first use: Accept, Read, Write and
// ReadFrom wait in Go's netpoller, parking only the calling goroutine,
// while the process's other goroutines run. DialTCP, WriteTo and
// LookupHost wait in the VM instead, suspending the whole process while
// they connect, send or resolve (short on a local network).

// sockState is what this process knows of a socket handle.
type sockState uint8

const (
	sockOpen   sockState = iota
	sockClosed           // closed by Close
	sockMoved            // moved to another process in a message
	sockLost             // attached to a message the VM did not deliver: closed by the VM
)

// socket is one socket handle of this process. A TCPConn (…) points to its
// socket, so that copies of the Go value share its state.
type socket struct {
	handle        uint64
	state         sockState
	network       string // "tcp" or "udp", for addresses
	readDeadline  time.Time
	writeDeadline time.Time
	local, remote net.Addr // cached
	// The socket in Go's net package, made from its descriptor on first
	// use (goConn, goListener): a *net.TCPConn or *net.UDPConn, or a
	// *net.TCPListener.
	conn net.Conn
	ln   *net.TCPListener
}

func newSocket(handle uint64, network string) *socket {
	return &socket{handle: handle, network: network}
}

// closedMessage is package net's text for net.ErrClosed.
const closedMessage = "use of closed network connection"

// use is the handle of a socket this process can use, or the error of op
// on a socket it cannot (errors.Is(err, net.ErrClosed)).
func (s *socket) use(op string) (int64, error) {
	if s == nil {
		return 0, &Error{Op: op, Code: ErrBadHandle, Message: "not a socket (a nil or zero value)"}
	}
	switch s.state {
	case sockOpen:
		return int64(s.handle), nil
	case sockMoved:
		return 0, &Error{Op: op, Code: ErrBadHandle, Message: "the socket was moved to another process"}
	case sockLost:
		return 0, &Error{Op: op, Code: ErrBadHandle,
			Message: "the socket was closed by the VM: the message it was moved with was not delivered"}
	}
	return 0, &Error{Op: op, Code: ErrBadHandle, Message: closedMessage}
}

// outFd receives troupe_net.descriptor's result.
var outFd uint32

// file is the socket's WASI descriptor as an *os.File, made non-blocking
// for Go's netpoller. The descriptor is blocking until then, so that
// os.NewFile leaves it out of the netpoller: net.FileConn (or
// FileListener) registers its own copy, once, and closing the file
// afterwards leaves the socket open (the copy holds it).
func (s *socket) file(op string) (*os.File, error) {
	h, err := s.use(op)
	if err != nil {
		return nil, err
	}
	if rc := sysNetDescriptor(h, unsafe.Pointer(&outFd)); rc != abi.ErrOk {
		return nil, hostError(op, rc)
	}
	fd := outFd
	f := os.NewFile(uintptr(fd), "troupe-socket")
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		panic(fmt.Sprintf("troupe: the VM refused to make socket descriptor %d non-blocking: %v", fd, err))
	}
	return f, nil
}

// goConn is the socket as a connection of Go's net package.
func (s *socket) goConn(op string) (net.Conn, error) {
	if _, err := s.use(op); err != nil {
		return nil, err
	}
	if s.conn == nil {
		f, err := s.file(op)
		if err != nil {
			return nil, err
		}
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, &Error{Op: op, Code: ErrIO, Message: err.Error(), Err: err}
		}
		s.conn = c
		if !s.readDeadline.IsZero() || !s.writeDeadline.IsZero() {
			c.SetReadDeadline(s.readDeadline)
			c.SetWriteDeadline(s.writeDeadline)
		}
	}
	return s.conn, nil
}

// goListener is the socket as a listener of Go's net package.
func (s *socket) goListener(op string) (*net.TCPListener, error) {
	if _, err := s.use(op); err != nil {
		return nil, err
	}
	if s.ln == nil {
		f, err := s.file(op)
		if err != nil {
			return nil, err
		}
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, &Error{Op: op, Code: ErrIO, Message: err.Error(), Err: err}
		}
		s.ln = l.(*net.TCPListener)
		if !s.readDeadline.IsZero() {
			s.ln.SetDeadline(s.readDeadline)
		}
	}
	return s.ln, nil
}

// forgetGo drops Go's side of a socket that left this process (moved, or
// closed by the VM): closing it closes a descriptor that is no longer the
// socket's (the VM does not give its number to another socket soon), and
// takes it out of Go's netpoller, waking any goroutine that waits on it.
func (s *socket) forgetGo() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// netError is the error of op from Go's net package, as an *Error with the
// host's code (that unwraps to Go's error too). io.EOF stays io.EOF.
func netError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	code := ErrIO
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		code = ErrTimeout
	case errors.Is(err, net.ErrClosed):
		code = ErrBadHandle
	case errors.As(err, &errno):
		switch errno {
		case syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED:
			code = ErrConnectionReset
		case syscall.ENOTCONN:
			code = ErrNotConnected
		case syscall.EBADF:
			code = ErrBadHandle
		}
	}
	return &Error{Op: op, Code: code, Message: err.Error(), Err: err}
}

// close closes the socket; closing a socket that was moved away does
// nothing (it is the receiver's now).
func (s *socket) close() error {
	if s != nil && (s.state == sockMoved || s.state == sockLost) {
		return nil
	}
	h, err := s.use("close")
	if err != nil {
		return err
	}
	s.state = sockClosed
	if s.conn != nil || s.ln != nil {
		// Go's side closes the descriptor, which closes the socket.
		var err error
		if s.conn != nil {
			err = s.conn.Close()
		} else {
			err = s.ln.Close()
		}
		s.conn, s.ln = nil, nil
		return netError("close", err)
	}
	if rc := sysNetClose(h); rc != abi.ErrOk {
		return hostError("close", rc)
	}
	return nil
}

// The results of the host calls below. A Go process runs on one thread and
// does not switch goroutines during a host call, so globals are safe here
// (and spare an allocation per call).
var (
	outHandle uint64
	outCount  uint32
	outLen    uint32
)

// maxIO bounds the bytes given to one read or write call (an i32 length).
const maxIO = 1 << 30

// deadlineTimeout is the timeout_ns of a call with deadline d: negative
// (forever) for none, else the time left; a deadline already passed is a
// time-out error at once, as in package net.
func deadlineTimeout(op string, d time.Time) (int64, error) {
	if d.IsZero() {
		return abi.ValTimeoutForever, nil
	}
	left := time.Until(d)
	if left <= 0 {
		return 0, &Error{Op: op, Code: ErrTimeout, Message: "deadline exceeded"}
	}
	return int64(left), nil
}

func stringPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// parseAddr turns an address the VM wrote ("IP:PORT") into a *net.TCPAddr
// or *net.UDPAddr (or, if it is not one, a net.Addr with the text).
func parseAddr(network, text string) net.Addr {
	ap, err := netip.ParseAddrPort(text)
	if err != nil {
		return textAddr{network, text}
	}
	if network == "udp" {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// textAddr is an address as text.
type textAddr struct{ network, text string }

func (a textAddr) Network() string { return a.network }
func (a textAddr) String() string  { return a.text }

// addrOf asks the VM for a socket's local or peer address.
func addrOf(op string, h int64, call func(int64, unsafe.Pointer, int32, unsafe.Pointer) int32) (string, error) {
	buf := make([]byte, 64)
	for {
		outLen = 0
		rc := call(h, bytesPtr(buf), int32(len(buf)), unsafe.Pointer(&outLen))
		n := int(outLen)
		switch {
		case rc == abi.ErrOk:
			return string(buf[:min(n, len(buf))]), nil
		case rc == abi.ErrBufferTooSmall && n > len(buf):
			buf = make([]byte, n)
		default:
			return "", hostError(op, rc)
		}
	}
}

func (s *socket) localAddr() net.Addr {
	if s == nil {
		return nil
	}
	if s.local == nil {
		h, err := s.use("local_addr")
		if err != nil {
			return nil
		}
		text, err := addrOf("local_addr", h, sysNetLocalAddr)
		if err != nil {
			return nil
		}
		s.local = parseAddr(s.network, text)
	}
	return s.local
}

func (s *socket) remoteAddr() net.Addr {
	if s == nil {
		return nil
	}
	if s.remote == nil {
		h, err := s.use("peer_addr")
		if err != nil {
			return nil
		}
		text, err := addrOf("peer_addr", h, sysNetPeerAddr)
		if err != nil {
			return nil
		}
		s.remote = parseAddr(s.network, text)
	}
	return s.remote
}

func (s *socket) setDeadlines(op string, read, write bool, t time.Time) error {
	if _, err := s.use(op); err != nil {
		return err
	}
	if read {
		s.readDeadline = t
	}
	if write {
		s.writeDeadline = t
	}
	var err error
	switch {
	case s.ln != nil:
		err = s.ln.SetDeadline(t)
	case s.conn != nil && read && write:
		err = s.conn.SetDeadline(t)
	case s.conn != nil && read:
		err = s.conn.SetReadDeadline(t)
	case s.conn != nil && write:
		err = s.conn.SetWriteDeadline(t)
	}
	return netError(op, err)
}

// Moving sockets in messages.

var (
	// attached holds the sockets attached while encoding the message being
	// sent (see encodeMessage and messageSent).
	attached []*socket
	// noSockets is set while encoding a message that cannot carry sockets.
	noSockets bool
)

var errNoSockets = errors.New("troupe: this message cannot carry a socket (only Send, SendNamed, Reply.Send, Request and spawn arguments move sockets)")

// marshal attaches the socket to this process's next message and encodes
// its handle (a u64). The socket is then moved: this process can no longer
// use it, and Close does nothing.
func (s *socket) marshal(e *bincode.Encoder) error {
	if noSockets {
		return errNoSockets
	}
	if s != nil && s.state == sockMoved {
		for _, a := range attached {
			if a == s { // twice in the same message
				e.U64(s.handle)
				return nil
			}
		}
	}
	h, err := s.use("attach")
	if err != nil {
		return err
	}
	if rc := sysNetAttach(h); rc != abi.ErrOk {
		return hostError("attach", rc)
	}
	s.state = sockMoved
	attached = append(attached, s)
	e.U64(s.handle)
	return nil
}

func unmarshalSocket(d *bincode.Decoder, network string) (*socket, error) {
	h, err := d.U64()
	if err != nil {
		return nil, err
	}
	return newSocket(h, network), nil
}

// encodeMessage encodes v for a message that moves the sockets in it (the
// host call that sends it must be followed by messageSent). If encoding
// fails after some sockets were attached, they are taken back.
func encodeMessage(dst []byte, v any) ([]byte, error) {
	clearAttached()
	b, err := bincode.Append(dst, v)
	if err != nil {
		takeBackAttached()
	}
	return b, err
}

// encodeWithoutSockets encodes v for a message that does not move
// sockets: a socket in v is an encoding error.
func encodeWithoutSockets(v any) ([]byte, error) {
	noSockets = true
	defer func() { noSockets = false }()
	return bincode.Marshal(v)
}

// messageSent records the result of a host call that took the attached
// sockets: moved if it succeeded, closed by the VM if it failed.
func messageSent(rc int32) {
	for _, s := range attached {
		if rc != abi.ErrOk && s.state == sockMoved {
			s.state = sockLost
		}
		// Moved or lost, the socket left this process's table (and its
		// descriptor): Go's side of it goes too.
		s.forgetGo()
	}
	clearAttached()
}

func clearAttached() {
	clear(attached)
	attached = attached[:0]
}

// takeBackAttached gives this process back the sockets it attached to a
// message it will not send: it sends itself an empty message, which takes
// them (a socket keeps its handle when it moves), and removes it from its
// mailbox at once.
func takeBackAttached() {
	if len(attached) == 0 {
		return
	}
	tag := nextReplyTag() // a tag nobody else waits on
	rc := sysSend(int64(Self()), int64(tag), nil, 0)
	if rc == abi.ErrOk {
		if _, err := ReceiveTagged([]uint64{tag}, 0); err != nil {
			panic("troupe: the message that took back sockets did not arrive: " + err.Error())
		}
		for _, s := range attached {
			s.state = sockOpen
			// Back in the table under the same handle, with a new
			// descriptor: Go's side is made again on next use.
			s.forgetGo()
		}
		clearAttached()
		return
	}
	messageSent(rc)
}

// TCP.

// TCPListener is a TCP listening socket of this process, a net.Listener.
// Its handle can move to another process in a message (see TCPConn).
type TCPListener struct {
	s *socket
}

// ListenTCP listens on addr, "HOST:PORT" (port 0 picks a free port: see
// Addr). HOST is an IP address, a bracketed IPv6 address or a host name
// that the VM resolves. The VM must allow the address (troupe run
// --allow-net...), else errors.Is(err, os.ErrPermission); an address in
// use is ErrAddrInUse.
func ListenTCP(addr string) (*TCPListener, error) {
	rc := sysNetTCPListen(stringPtr(addr), int32(len(addr)), unsafe.Pointer(&outHandle))
	if rc != abi.ErrOk {
		return nil, hostError("tcp_listen", rc)
	}
	return &TCPListener{newSocket(outHandle, "tcp")}, nil
}

// Listen is ListenTCP as net.Listen: network "tcp" ("tcp4", "tcp6": the
// same).
func Listen(network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	l, err := ListenTCP(address)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *TCPListener) sock() *socket {
	if l == nil {
		return nil
	}
	return l.s
}

// AcceptTCP waits for the next connection (until the deadline set with
// SetDeadline, if any). It parks only the calling goroutine (in Go's
// netpoller) while it waits.
func (l *TCPListener) AcceptTCP() (*TCPConn, error) {
	s := l.sock()
	ln, err := s.goListener("accept")
	if err != nil {
		return nil, err
	}
	c, err := ln.AcceptTCP()
	if err != nil {
		return nil, netError("accept", err)
	}
	// The connection came in through sock_accept: a new descriptor, and a
	// new handle, of this process.
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, netError("accept", err)
	}
	var rc int32
	raw.Control(func(fd uintptr) { rc = sysNetHandleOf(int32(fd), unsafe.Pointer(&outHandle)) })
	if rc != abi.ErrOk {
		c.Close()
		return nil, hostError("handle_of", rc)
	}
	conn := &TCPConn{newSocket(outHandle, "tcp")}
	conn.s.conn = c
	return conn, nil
}

// Accept is AcceptTCP as a net.Listener.
func (l *TCPListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the listener. Closing it again is an error that
// errors.Is(err, net.ErrClosed); closing a listener that was moved to
// another process does nothing.
func (l *TCPListener) Close() error { return l.sock().close() }

// Addr is the address the listener is bound to, a *net.TCPAddr (nil if
// the socket was closed or moved before it was asked for).
func (l *TCPListener) Addr() net.Addr { return l.sock().localAddr() }

// SetDeadline sets the deadline of AcceptTCP (the zero time: none).
func (l *TCPListener) SetDeadline(t time.Time) error {
	return l.sock().setDeadlines("set_deadline", true, true, t)
}

// MarshalBincode moves the listener into the message being encoded (see
// TCPConn.MarshalBincode).
func (l *TCPListener) MarshalBincode(e *bincode.Encoder) error { return l.sock().marshal(e) }

// UnmarshalBincode makes l the listener whose handle a received message
// carries.
func (l *TCPListener) UnmarshalBincode(d *bincode.Decoder) error {
	s, err := unmarshalSocket(d, "tcp")
	if err == nil {
		l.s = s
	}
	return err
}

// TCPConn is a TCP connection of this process, a net.Conn.
//
// It can move to another process: put it in a message (Send, SendNamed,
// Reply.Send, Request) or pass it as a spawn argument (SpawnSelf,
// SpawnStart). Encoding it (MarshalBincode) attaches the socket to the
// message and writes its handle, a u64; from then on this process cannot
// use it and Close does nothing. The receiver decodes the message into a
// value holding a *TCPConn (UnmarshalBincode), which owns the connection:
//
//	// in the listener's process
//	c, _ := ln.AcceptTCP()
//	troupe.SpawnSelf("handler", c)
//	// in the handler's process
//	var c *troupe.TCPConn
//	troupe.SpawnArg(&c)
//	defer c.Close()
//
// A Rust process receives the same handle as a u64. If the message is not
// delivered (the target is gone, the spawn fails), the VM closes the
// connection. A message that fails to encode gives its sockets back.
type TCPConn struct {
	s *socket
}

// DialTCP connects to addr, "HOST:PORT" (a host name is resolved by the
// VM, which tries each of its addresses), waiting as long as it takes.
// The VM must allow the address, else errors.Is(err, os.ErrPermission);
// nobody listening is ErrConnectionRefused.
func DialTCP(addr string) (*TCPConn, error) { return DialTCPTimeout(addr, 0) }

// DialTCPTimeout is DialTCP giving up after d, name resolution included
// (errors.Is(err, os.ErrDeadlineExceeded)). d <= 0 waits without limit, as
// net.DialTimeout's zero.
func DialTCPTimeout(addr string, d time.Duration) (*TCPConn, error) {
	timeout := int64(d)
	if d <= 0 {
		timeout = abi.ValTimeoutForever
	}
	rc := sysNetTCPConnect(stringPtr(addr), int32(len(addr)), timeout, unsafe.Pointer(&outHandle))
	if rc != abi.ErrOk {
		return nil, hostError("tcp_connect", rc)
	}
	return &TCPConn{newSocket(outHandle, "tcp")}, nil
}

// Dialer dials TCP through the VM, for libraries that take a dial
// function or a dialer: net/http's Transport.DialContext, lib/pq's
// DialOpen and Connector.Dialer, redigo's DialNetDial and
// DialContextFunc:
//
//	client := &http.Client{Transport: &http.Transport{DialContext: troupe.Dialer{}.DialContext}}
//	db, _ := pq.DialOpen(troupe.Dialer{}, "host=127.0.0.1 port=5432 user=app dbname=app sslmode=disable")
//	rc, _ := redis.Dial("tcp", "127.0.0.1:6379", redis.DialNetDial(troupe.Dialer{}.Dial))
//
// Its connections are *TCPConn. Connecting waits in the VM (the whole
// process waits, as DialTCP), at most Timeout (0: no limit) and at most
// until the context's deadline; a context cancelled while connecting is
// seen once the connection is made or fails.
type Dialer struct {
	Timeout time.Duration
}

// Dial connects to address on network "tcp" ("tcp4", "tcp6": the same).
func (d Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout is Dial giving up after timeout.
func (d Dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	d.Timeout = timeout
	return d.DialContext(context.Background(), network, address)
}

// DialContext is Dial within ctx's deadline.
func (d Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	timeout := d.Timeout
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &Error{Op: "tcp_connect", Code: ErrTimeout, Message: "deadline exceeded"}
		}
		if timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	c, err := DialTCPTimeout(address, timeout)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return c, nil
}

func (c *TCPConn) sock() *socket {
	if c == nil {
		return nil
	}
	return c.s
}

// Read reads up to len(b) bytes, waiting until some arrive or the read
// deadline passes (then errors.Is(err, os.ErrDeadlineExceeded), and the
// error is a net.Error whose Timeout is true). At the end of the stream
// (the peer closed or shut its writing half) it returns 0, io.EOF. It
// parks only the calling goroutine while it waits.
func (c *TCPConn) Read(b []byte) (int, error) {
	gc, err := c.sock().goConn("read")
	if err != nil {
		return 0, err
	}
	n, err := gc.Read(b)
	return n, netError("read", err)
}

// Write writes all of b, waiting while the connection's buffer is full,
// until the write deadline (then a time-out error, with the count of bytes
// written before it). A peer that closed the connection gives
// ErrConnectionReset. It parks only the calling goroutine while it waits.
func (c *TCPConn) Write(b []byte) (int, error) {
	gc, err := c.sock().goConn("write")
	if err != nil {
		return 0, err
	}
	n, err := gc.Write(b)
	return n, netError("write", err)
}

// Close closes the connection. Closing it again is an error that
// errors.Is(err, net.ErrClosed); closing a connection that was moved to
// another process does nothing.
func (c *TCPConn) Close() error { return c.sock().close() }

// CloseWrite shuts the writing half: the peer reads the end of the
// stream, and this side can still read.
func (c *TCPConn) CloseWrite() error { return c.shutdown(abi.ValShutdownWrite) }

// CloseRead shuts the reading half.
func (c *TCPConn) CloseRead() error { return c.shutdown(abi.ValShutdownRead) }

func (c *TCPConn) shutdown(how int32) error {
	s := c.sock()
	h, err := s.use("shutdown")
	if err != nil {
		return err
	}
	if tc, ok := s.conn.(*net.TCPConn); ok {
		if how == abi.ValShutdownWrite {
			err = tc.CloseWrite()
		} else {
			err = tc.CloseRead()
		}
		return netError("shutdown", err)
	}
	if rc := sysNetShutdown(h, how); rc != abi.ErrOk {
		return hostError("shutdown", rc)
	}
	return nil
}

// LocalAddr is the connection's local address, a *net.TCPAddr (nil if the
// connection was closed or moved before it was asked for).
func (c *TCPConn) LocalAddr() net.Addr { return c.sock().localAddr() }

// RemoteAddr is the peer's address, a *net.TCPAddr (nil if the connection
// was closed or moved before it was asked for).
func (c *TCPConn) RemoteAddr() net.Addr { return c.sock().remoteAddr() }

// SetDeadline sets the read and write deadlines (the zero time: none). A
// deadline is a point in time: each call waits at most until then.
func (c *TCPConn) SetDeadline(t time.Time) error {
	return c.sock().setDeadlines("set_deadline", true, true, t)
}

// SetReadDeadline sets the deadline of Read.
func (c *TCPConn) SetReadDeadline(t time.Time) error {
	return c.sock().setDeadlines("set_deadline", true, false, t)
}

// SetWriteDeadline sets the deadline of Write.
func (c *TCPConn) SetWriteDeadline(t time.Time) error {
	return c.sock().setDeadlines("set_deadline", false, true, t)
}

// MarshalBincode moves the connection into the message being encoded: it
// attaches the socket to this process's next message (troupe_net.attach)
// and writes its handle (u64). From then on this process cannot use it
// (errors.Is(err, net.ErrClosed)) and Close does nothing.
//
// The package's send functions send the message at once. A program that
// encodes a connection itself (bincode.Marshal) must send the bytes with
// the very next message it sends (SendTagged, SpawnExport...): an attached
// socket goes with whatever message comes next.
func (c *TCPConn) MarshalBincode(e *bincode.Encoder) error { return c.sock().marshal(e) }

// UnmarshalBincode makes c the connection whose handle a received message
// carries: c owns it.
func (c *TCPConn) UnmarshalBincode(d *bincode.Decoder) error {
	s, err := unmarshalSocket(d, "tcp")
	if err == nil {
		c.s = s
	}
	return err
}

// UDP.

// UDPConn is a UDP socket of this process. Its handle can move to another
// process in a message (see TCPConn).
type UDPConn struct {
	s *socket
}

// ListenUDP binds a UDP socket to addr, "HOST:PORT" (port 0 picks a free
// port: see LocalAddr). The VM must allow the address.
func ListenUDP(addr string) (*UDPConn, error) {
	rc := sysNetUDPBind(stringPtr(addr), int32(len(addr)), unsafe.Pointer(&outHandle))
	if rc != abi.ErrOk {
		return nil, hostError("udp_bind", rc)
	}
	return &UDPConn{newSocket(outHandle, "udp")}, nil
}

func (u *UDPConn) sock() *socket {
	if u == nil {
		return nil
	}
	return u.s
}

// ReadFrom waits for one datagram (until the read deadline) and copies up
// to len(b) bytes of it into b (the rest of a longer datagram is lost); it
// returns the count and the sender's address, a *net.UDPAddr. It parks
// only the calling goroutine while it waits.
func (u *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	s := u.sock()
	h, err := s.use("udp_recv_from")
	if err != nil {
		return 0, nil, err
	}
	if len(b) > maxIO {
		b = b[:maxIO]
	}
	// Go's net package cannot read a datagram's sender on wasip1, so the
	// VM's call reads, without waiting; Go's netpoller waits.
	gc, err := s.goConn("udp_recv_from")
	if err != nil {
		return 0, nil, err
	}
	raw, err := gc.(*net.UDPConn).SyscallConn()
	if err != nil {
		return 0, nil, netError("udp_recv_from", err)
	}
	var rc int32
	var n uint32
	var from [128]byte
	var fromLen uint32
	err = raw.Read(func(uintptr) bool {
		rc = sysNetUDPRecvFrom(h, bytesPtr(b), int32(len(b)), 0, unsafe.Pointer(&n),
			unsafe.Pointer(&from[0]), int32(len(from)), unsafe.Pointer(&fromLen))
		return rc != abi.ErrTimeout
	})
	if err != nil {
		return 0, nil, netError("udp_recv_from", err)
	}
	if rc != abi.ErrOk {
		return 0, nil, hostError("udp_recv_from", rc)
	}
	text := string(from[:min(int(fromLen), len(from))])
	return int(n), parseAddr("udp", text), nil
}

// WriteTo sends b as one datagram to addr, "HOST:PORT" (a host name is
// resolved by the VM, which must allow the address). To answer a datagram,
// write to the address ReadFrom returned: WriteTo(b, from.String()).
func (u *UDPConn) WriteTo(b []byte, addr string) (int, error) {
	s := u.sock()
	h, err := s.use("udp_send_to")
	if err != nil {
		return 0, err
	}
	timeout, err := deadlineTimeout("udp_send_to", s.writeDeadline)
	if err != nil {
		return 0, err
	}
	if len(b) > maxIO {
		return 0, invalid("udp_send_to", "a datagram of %d bytes", len(b))
	}
	rc := sysNetUDPSendTo(h, bytesPtr(b), int32(len(b)), stringPtr(addr), int32(len(addr)),
		timeout, unsafe.Pointer(&outCount))
	if rc != abi.ErrOk {
		return 0, hostError("udp_send_to", rc)
	}
	return int(outCount), nil
}

// Close closes the socket (see TCPConn.Close).
func (u *UDPConn) Close() error { return u.sock().close() }

// LocalAddr is the address the socket is bound to, a *net.UDPAddr.
func (u *UDPConn) LocalAddr() net.Addr { return u.sock().localAddr() }

// SetDeadline sets the deadlines of ReadFrom and WriteTo (the zero time:
// none).
func (u *UDPConn) SetDeadline(t time.Time) error {
	return u.sock().setDeadlines("set_deadline", true, true, t)
}

// SetReadDeadline sets the deadline of ReadFrom.
func (u *UDPConn) SetReadDeadline(t time.Time) error {
	return u.sock().setDeadlines("set_deadline", true, false, t)
}

// SetWriteDeadline sets the deadline of WriteTo.
func (u *UDPConn) SetWriteDeadline(t time.Time) error {
	return u.sock().setDeadlines("set_deadline", false, true, t)
}

// MarshalBincode moves the socket into the message being encoded (see
// TCPConn.MarshalBincode).
func (u *UDPConn) MarshalBincode(e *bincode.Encoder) error { return u.sock().marshal(e) }

// UnmarshalBincode makes u the socket whose handle a received message
// carries.
func (u *UDPConn) UnmarshalBincode(d *bincode.Decoder) error {
	s, err := unmarshalSocket(d, "udp")
	if err == nil {
		u.s = s
	}
	return err
}

// Name resolution.

// LookupHost resolves a host name to its IP addresses, as text (an IP
// address gives itself). The VM must allow some network (any --allow-net
// rule); a name that does not resolve is ErrHostNotFound.
func LookupHost(name string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		outLen = 0
		rc := sysNetResolve(stringPtr(name), int32(len(name)), bytesPtr(buf), int32(len(buf)), unsafe.Pointer(&outLen))
		n := int(outLen)
		switch {
		case rc == abi.ErrOk:
			return splitLines(string(buf[:min(n, len(buf))])), nil
		case rc == abi.ErrBufferTooSmall && n > len(buf):
			buf = make([]byte, n)
		default:
			return nil, hostError("resolve", rc)
		}
	}
}

// splitLines splits resolve's list: each address followed by "\n".
func splitLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// The types of this file are what they say.
var (
	_ net.Conn            = (*TCPConn)(nil)
	_ net.Listener        = (*TCPListener)(nil)
	_ net.Error           = (*Error)(nil)
	_ bincode.Marshaler   = (*TCPConn)(nil)
	_ bincode.Marshaler   = (*TCPListener)(nil)
	_ bincode.Marshaler   = (*UDPConn)(nil)
	_ bincode.Unmarshaler = (*TCPConn)(nil)
	_ bincode.Unmarshaler = (*TCPListener)(nil)
	_ bincode.Unmarshaler = (*UDPConn)(nil)
)
