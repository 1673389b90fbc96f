package troupe

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
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
// Every call that waits (Accept, Dial, Read, Write, ReadFrom, WriteTo)
// suspends this whole process, with all its goroutines, until it returns,
// as Receive does; other processes run on.

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
	return nil
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
	if rc != abi.ErrOk {
		for _, s := range attached {
			if s.state == sockMoved {
				s.state = sockLost
			}
		}
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
		}
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

func (l *TCPListener) sock() *socket {
	if l == nil {
		return nil
	}
	return l.s
}

// AcceptTCP waits for the next connection (until the deadline set with
// SetDeadline, if any). It suspends the whole process while it waits.
func (l *TCPListener) AcceptTCP() (*TCPConn, error) {
	s := l.sock()
	h, err := s.use("tcp_accept")
	if err != nil {
		return nil, err
	}
	timeout, err := deadlineTimeout("tcp_accept", s.readDeadline)
	if err != nil {
		return nil, err
	}
	if rc := sysNetTCPAccept(h, timeout, unsafe.Pointer(&outHandle)); rc != abi.ErrOk {
		return nil, hostError("tcp_accept", rc)
	}
	return &TCPConn{newSocket(outHandle, "tcp")}, nil
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
// suspends the whole process while it waits.
func (c *TCPConn) Read(b []byte) (int, error) {
	s := c.sock()
	h, err := s.use("read")
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	timeout, err := deadlineTimeout("read", s.readDeadline)
	if err != nil {
		return 0, err
	}
	if len(b) > maxIO {
		b = b[:maxIO]
	}
	if rc := sysNetRead(h, bytesPtr(b), int32(len(b)), timeout, unsafe.Pointer(&outCount)); rc != abi.ErrOk {
		return 0, hostError("read", rc)
	}
	if outCount == 0 {
		return 0, io.EOF
	}
	return int(outCount), nil
}

// Write writes all of b, waiting while the connection's buffer is full,
// until the write deadline (then a time-out error, with the count of bytes
// written before it). A peer that closed the connection gives
// ErrConnectionReset. It suspends the whole process while it waits.
func (c *TCPConn) Write(b []byte) (int, error) {
	s := c.sock()
	h, err := s.use("write")
	if err != nil {
		return 0, err
	}
	written := 0
	for len(b) > 0 {
		timeout, err := deadlineTimeout("write", s.writeDeadline)
		if err != nil {
			return written, err
		}
		chunk := b[:min(len(b), maxIO)]
		outCount = 0 // out_n: written before an error, too
		rc := sysNetWrite(h, bytesPtr(chunk), int32(len(chunk)), timeout, unsafe.Pointer(&outCount))
		written += int(outCount)
		if rc != abi.ErrOk {
			return written, hostError("write", rc)
		}
		b = b[len(chunk):]
	}
	return written, nil
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
	h, err := c.sock().use("shutdown")
	if err != nil {
		return err
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

// addrBuf receives the sender's address of a datagram (47 bytes suffice).
var addrBuf [128]byte

// ReadFrom waits for one datagram (until the read deadline) and copies up
// to len(b) bytes of it into b (the rest of a longer datagram is lost); it
// returns the count and the sender's address, a *net.UDPAddr. It
// suspends the whole process while it waits.
func (u *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	s := u.sock()
	h, err := s.use("udp_recv_from")
	if err != nil {
		return 0, nil, err
	}
	timeout, err := deadlineTimeout("udp_recv_from", s.readDeadline)
	if err != nil {
		return 0, nil, err
	}
	if len(b) > maxIO {
		b = b[:maxIO]
	}
	rc := sysNetUDPRecvFrom(h, bytesPtr(b), int32(len(b)), timeout, unsafe.Pointer(&outCount),
		unsafe.Pointer(&addrBuf[0]), int32(len(addrBuf)), unsafe.Pointer(&outLen))
	if rc != abi.ErrOk {
		return 0, nil, hostError("udp_recv_from", rc)
	}
	text := string(addrBuf[:min(int(outLen), len(addrBuf))])
	return int(outCount), parseAddr("udp", text), nil
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
