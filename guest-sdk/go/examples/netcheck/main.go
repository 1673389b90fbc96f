// Command netcheck exercises the SDK's networking (net.go) against the
// Troupe VM: TCP and UDP over the loopback, deadlines, EOF, moving sockets
// to other processes (in a message, as a spawn argument, to a dead process,
// with a message that fails to encode), WithNet, LookupHost, and that a
// goroutine waiting on a socket lets the others run. It prints
// "netcheck: NAME: ok" per check and ends with "netcheck: all ok" (exit 0),
// or names what failed (exit 1).
//
//	GOOS=wasip1 GOARCH=wasm go build -o netcheck.wasm ./examples/netcheck
//	troupe run --allow-net netcheck.wasm
//	troupe run netcheck.wasm --denied     # without --allow-net: every call refused
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"troupe.dev/troupe"
)

// Relay asks the relay child to talk through Conn and answer on Reply.
type Relay struct {
	Conn  *troupe.TCPConn
	Reply troupe.Reply
}

// Probe is the spawn argument of a probe child: the address to listen on.
type Probe struct{ Addr string }

// Move is a message with a socket and a field that cannot be encoded
// (Bad is nil): encoding it attaches Conn, then fails.
type Move struct {
	Conn *troupe.TCPConn
	Bad  *uint32
}

var failed bool

func check(name string, err error) {
	if err != nil {
		fmt.Printf("netcheck: %s: FAILED: %v\n", name, err)
		failed = true
		return
	}
	fmt.Printf("netcheck: %s: ok\n", name)
}

func must[T any](v T, err error) T {
	if err != nil {
		fmt.Printf("netcheck: FAILED: %v\n", err)
		os.Exit(1)
	}
	return v
}

func main() {
	switch troupe.Role() {
	case "echo":
		echoServer()
	case "relay":
		relay()
	case "probe":
		probe()
	case "source":
		source()
	case "quit":
	default:
		if len(os.Args) > 1 && os.Args[1] == "--denied" {
			denied()
		} else {
			root()
		}
		if failed {
			os.Exit(1)
		}
		fmt.Println("netcheck: all ok")
	}
}

// echoServer gets a listener from its parent and echoes every connection,
// one after the other, line by line.
func echoServer() {
	var ln *troupe.TCPListener
	must(troupe.SpawnArg(&ln))
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			panic(err)
		}
		in := bufio.NewReader(c)
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 0 {
				c.Write(line)
			}
			if err != nil {
				break
			}
		}
		c.Close()
	}
}

// relay talks through a connection it receives in a message.
func relay() {
	must(troupe.SpawnArg(&struct{}{}))
	var m Relay
	must(troupe.Receive(&m))
	fmt.Fprintf(m.Conn, "from relay %v\n", troupe.Self())
	line, err := bufio.NewReader(m.Conn).ReadString('\n')
	if err != nil {
		line = "error: " + err.Error()
	}
	m.Conn.Close()
	m.Reply.Send(line)
}

// bulk is what the source child sends: 4 MiB, more than the sockets'
// buffers hold.
func bulk() []byte {
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i * 7 / 3)
	}
	return b
}

// source connects to its parent and writes bulk in one Write.
func source() {
	var addr string
	must(troupe.SpawnArg(&addr))
	c := must(troupe.DialTCP(addr))
	if n, err := c.Write(bulk()); err != nil || n != 4<<20 {
		panic(fmt.Sprintf("source wrote %d: %v", n, err))
	}
	c.Close()
}

// probe tries to listen and tells its parent what happened.
func probe() {
	var p Probe
	parent := must(troupe.SpawnArg(&p))
	ln, err := troupe.ListenTCP(p.Addr)
	result := "ok"
	if err != nil {
		result = err.Error()
		if errors.Is(err, os.ErrPermission) {
			result = "denied: " + result
		}
	} else {
		ln.Close()
	}
	parent.Send(result)
}

func expect(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func echoLine(c net.Conn, text string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s\n", text); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func root() {
	// A listener on a free port, moved to the echo child.
	ln := must(troupe.ListenTCP("127.0.0.1:0"))
	addr, ok := ln.Addr().(*net.TCPAddr)
	check("listen on a free port", expect(ok && addr.Port != 0, "Addr() = %#v", ln.Addr()))
	_, err := troupe.ListenTCP(addr.String())
	check("address in use", expect(errors.Is(err, troupe.ErrAddrInUse), "second listen: %v", err))
	must(troupe.SpawnSelf("echo", ln))
	check("a moved listener is closed here", func() error {
		if err := ln.Close(); err != nil {
			return fmt.Errorf("Close after the move: %v", err)
		}
		_, err := ln.Accept()
		return expect(errors.Is(err, net.ErrClosed), "Accept after the move: %v", err)
	}())

	check("echo, then EOF after CloseWrite", func() error {
		c, err := troupe.DialTCP(addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		if la, ok := c.LocalAddr().(*net.TCPAddr); !ok || la.Port == 0 {
			return fmt.Errorf("LocalAddr %v", c.LocalAddr())
		}
		if c.RemoteAddr().String() != addr.String() {
			return fmt.Errorf("RemoteAddr %v, want %v", c.RemoteAddr(), addr)
		}
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return err
		}
		if err := c.CloseWrite(); err != nil {
			return err
		}
		all, err := io.ReadAll(c) // to EOF: the server closes after our EOF
		if err != nil || string(all) != "hello\n" {
			return fmt.Errorf("read %q, %v", all, err)
		}
		n, err := c.Read(make([]byte, 8))
		return expect(n == 0 && err == io.EOF, "read after EOF: %d, %v", n, err)
	}())

	check("read deadline, and the other goroutines run meanwhile", func() error {
		c, err := troupe.DialTCP(addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		ticks := 0
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(5 * time.Millisecond)
				ticks++
			}
		}()
		time.Sleep(20 * time.Millisecond) // let the ticker start
		before := ticks
		start := time.Now()
		c.SetReadDeadline(start.Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 8))
		took, during := time.Since(start), ticks-before
		close(stop)
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			return fmt.Errorf("read: %v", err)
		}
		if took < 180*time.Millisecond || took > 2*time.Second {
			return fmt.Errorf("timed out after %v", took)
		}
		if during < 5 { // 40 ticks of 5 ms fit in 200 ms
			return fmt.Errorf("another goroutine ticked %d times during the read: the read stopped the process", during)
		}
		start = time.Now()
		_, err = c.Read(make([]byte, 8)) // the deadline has passed: at once
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 50*time.Millisecond {
			return fmt.Errorf("read after the deadline: %v after %v", err, time.Since(start))
		}
		c.SetDeadline(time.Time{})
		got, err := echoLine(c, "after the deadline")
		return expect(err == nil && got == "after the deadline\n", "echo %q, %v", got, err)
	}())

	check("accept deadline", func() error {
		l := must(troupe.ListenTCP("127.0.0.1:0"))
		defer l.Close()
		l.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := l.Accept()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("accept: %v", err)
		}
		if err := l.Close(); err != nil {
			return err
		}
		err = l.Close()
		return expect(errors.Is(err, net.ErrClosed), "second Close: %v", err)
	}())

	check("a large transfer", func() error {
		l := must(troupe.ListenTCP("127.0.0.1:0"))
		defer l.Close()
		if _, err := troupe.SpawnSelf("source", l.Addr().String()); err != nil {
			return err
		}
		c, err := l.AcceptTCP()
		if err != nil {
			return err
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		return expect(err == nil && string(got) == string(bulk()), "read %d bytes, %v", len(got), err)
	}())

	check("connection refused", func() error {
		l := must(troupe.ListenTCP("127.0.0.1:0"))
		free := l.Addr().String()
		l.Close()
		_, err := troupe.DialTCPTimeout(free, 5*time.Second)
		return expect(errors.Is(err, troupe.ErrConnectionRefused), "dial a closed port: %v", err)
	}())

	check("a connection moves in a message", func() error {
		c, err := troupe.DialTCP(addr.String())
		if err != nil {
			return err
		}
		r, err := troupe.SpawnSelf("relay", struct{}{})
		if err != nil {
			return err
		}
		var got string
		if err := troupe.RequestTimeout(r, func(rep troupe.Reply) any { return Relay{c, rep} }, &got, 5*time.Second); err != nil {
			return err
		}
		if got != fmt.Sprintf("from relay %v\n", r) {
			return fmt.Errorf("relay says %q", got)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("write after the move: %v", err)
		}
		return expect(c.Close() == nil, "Close after the move should do nothing")
	}())

	check("a message that fails to encode gives its socket back", func() error {
		c, err := troupe.DialTCP(addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := troupe.Self().Send(Move{Conn: c}); err == nil {
			return errors.New("a nil field encoded")
		}
		if _, err := troupe.SendAfter(troupe.Self(), Move{Conn: c}, time.Hour); err == nil {
			return errors.New("SendAfter took a socket")
		}
		if _, err := troupe.TryReceive(&struct{}{}); !errors.Is(err, troupe.ErrTimeout) {
			return fmt.Errorf("something was left in the mailbox: %v", err)
		}
		got, err := echoLine(c, "still mine")
		return expect(err == nil && got == "still mine\n", "echo %q, %v", got, err)
	}())

	check("a connection sent to a dead process is closed", func() error {
		c, err := troupe.DialTCP(addr.String())
		if err != nil {
			return err
		}
		dead := must(troupe.SpawnSelf("quit", struct{}{}))
		troupe.Monitor(dead)
		if _, err := troupe.ReceiveDown(5 * time.Second); err != nil {
			return err
		}
		if err := dead.Send(c); !errors.Is(err, troupe.ErrNoProcess) {
			return fmt.Errorf("send to a dead process: %v", err)
		}
		if _, err := c.Write([]byte("x\n")); !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("write: %v", err)
		}
		return expect(c.Close() == nil, "Close should do nothing")
	}())

	check("UDP", func() error {
		a := must(troupe.ListenUDP("127.0.0.1:0"))
		defer a.Close()
		b := must(troupe.ListenUDP("127.0.0.1:0"))
		defer b.Close()
		if _, err := a.WriteTo([]byte("ping"), b.LocalAddr().String()); err != nil {
			return err
		}
		buf := make([]byte, 64)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := b.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "ping" || from.String() != a.LocalAddr().String() {
			return fmt.Errorf("b read %q from %v, %v", buf[:n], from, err)
		}
		if _, ok := from.(*net.UDPAddr); !ok {
			return fmt.Errorf("from is a %T", from)
		}
		if _, err := b.WriteTo([]byte("pong"), from.String()); err != nil {
			return err
		}
		n, _, err = a.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "pong" {
			return fmt.Errorf("a read %q, %v", buf[:n], err)
		}
		a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _, err = a.ReadFrom(buf)
		return expect(errors.Is(err, os.ErrDeadlineExceeded), "read with nothing sent: %v", err)
	}())

	check("LookupHost", func() error {
		ips, err := troupe.LookupHost("localhost")
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("localhost: %q, %v", ips, err)
		}
		for _, ip := range ips {
			if net.ParseIP(ip) == nil {
				return fmt.Errorf("localhost: %q is not an IP", ip)
			}
		}
		ips, err = troupe.LookupHost("127.0.0.1")
		if err != nil || len(ips) != 1 || ips[0] != "127.0.0.1" {
			return fmt.Errorf("127.0.0.1: %q, %v", ips, err)
		}
		// A name no rule names is not looked up at all (no DNS query
		// leaves the VM for it): permission denied.
		_, err = troupe.LookupHost("no-such-host.invalid")
		return expect(errors.Is(err, os.ErrPermission), "no-such-host.invalid: %v", err)
	}())

	check("WithNet narrows a child's permission", func() error {
		probeWith := func(addr string, opts ...troupe.SpawnOption) (string, error) {
			if _, err := troupe.SpawnSelf("probe", Probe{addr}, opts...); err != nil {
				return "", err
			}
			var result string
			_, err := troupe.ReceiveTimeout(&result, 5*time.Second)
			return result, err
		}
		for _, c := range []struct {
			addr   string
			rules  []string
			denied bool
		}{
			{"127.0.0.1:0", nil, true},
			{"127.0.0.1:0", []string{"127.0.0.1"}, false},
			{"0.0.0.0:0", []string{"127.0.0.1"}, true},
		} {
			got, err := probeWith(c.addr, troupe.WithNet(c.rules...))
			if err != nil {
				return err
			}
			if strings.HasPrefix(got, "denied: ") != c.denied || (!c.denied && got != "ok") {
				return fmt.Errorf("listen on %s with rules %q: %s", c.addr, c.rules, got)
			}
			fmt.Printf("netcheck:   listen on %s with WithNet(%q): %s\n", c.addr, c.rules, got)
		}
		got, err := probeWith("127.0.0.1:0") // inherited
		return expect(err == nil && got == "ok", "inherited permission: %q, %v", got, err)
	}())
}

// denied runs without --allow-net: every call is refused.
func denied() {
	_, err := troupe.ListenTCP("127.0.0.1:0")
	fmt.Printf("netcheck: ListenTCP: %v\n", err)
	check("listen refused", expect(errors.Is(err, os.ErrPermission), "%v", err))
	_, err = troupe.DialTCP("127.0.0.1:9")
	check("dial refused", expect(errors.Is(err, os.ErrPermission), "%v", err))
	_, err = troupe.ListenUDP("127.0.0.1:0")
	check("UDP refused", expect(errors.Is(err, os.ErrPermission), "%v", err))
	_, err = troupe.LookupHost("localhost")
	check("resolve refused", expect(errors.Is(err, os.ErrPermission), "%v", err))
	_, err = troupe.SpawnSelf("probe", Probe{"127.0.0.1:0"}, troupe.WithNet("127.0.0.1"))
	check("WithNet cannot widen", expect(errors.Is(err, troupe.ErrPermissionDenied), "%v", err))
}
