package troupe

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"unsafe"

	"troupe.dev/troupe/abi"
)

// Code is an error code of the host (one of abi.Err*). Each non-zero code
// is also an error value, so that any error of this package can be tested
// with errors.Is:
//
//	if errors.Is(err, troupe.ErrNoProcess) { … }
type Code int32

// Error is the code's short name, as the Rust SDK prints it.
func (c Code) Error() string { return abi.ErrorName(int32(c)) }

// The host's error codes as error values, for errors.Is.
const (
	ErrNoProcess         = Code(abi.ErrNoProcess)
	ErrTimeout           = Code(abi.ErrTimeout)
	ErrBufferTooSmall    = Code(abi.ErrBufferTooSmall)
	ErrNoMessage         = Code(abi.ErrNoMessage)
	ErrInvalidModule     = Code(abi.ErrInvalidModule)
	ErrNoSuchModule      = Code(abi.ErrNoSuchModule)
	ErrNoSuchExport      = Code(abi.ErrNoSuchExport)
	ErrResourceLimit     = Code(abi.ErrResourceLimit)
	ErrPermissionDenied  = Code(abi.ErrPermissionDenied)
	ErrInvalidArgument   = Code(abi.ErrInvalidArgument)
	ErrSpawnFailed       = Code(abi.ErrSpawnFailed)
	ErrAlreadyRegistered = Code(abi.ErrAlreadyRegistered)
	ErrNotFound          = Code(abi.ErrNotFound)
	// Networking (namespace troupe_net).
	ErrBadHandle         = Code(abi.ErrBadHandle)
	ErrConnectionRefused = Code(abi.ErrConnectionRefused)
	ErrConnectionReset   = Code(abi.ErrConnectionReset)
	ErrAddrInUse         = Code(abi.ErrAddrInUse)
	ErrAddrNotAvailable  = Code(abi.ErrAddrNotAvailable)
	ErrNotConnected      = Code(abi.ErrNotConnected)
	ErrHostNotFound      = Code(abi.ErrHostNotFound)
	ErrIO                = Code(abi.ErrIoError)
	// ErrUnsupported: the module cannot do what was asked.
	ErrUnsupported = Code(abi.ErrUnsupported)
)

// Is makes some codes match the standard library's error values too, so
// that code written for package os or net understands them:
//
//	ErrPermissionDenied  errors.Is(err, os.ErrPermission)  (fs.ErrPermission)
//	ErrTimeout           errors.Is(err, os.ErrDeadlineExceeded)
//	ErrBadHandle         errors.Is(err, net.ErrClosed)
//
// BAD_HANDLE is what the VM says of a socket that was closed or moved to
// another process (from this process's point of view it is closed), and
// what this package returns for a closed or moved TCPConn, TCPListener or
// UDPConn, as package net does with net.ErrClosed. A TIMEOUT is any
// time-out: a socket call's deadline or time-out, and also Receive's.
func (c Code) Is(target error) bool {
	switch target {
	case fs.ErrPermission:
		return c == ErrPermissionDenied
	case os.ErrDeadlineExceeded:
		return c == ErrTimeout
	case net.ErrClosed:
		return c == ErrBadHandle
	}
	return false
}

// Error is a failed host call: the operation, the host's code and its
// explanation (troupe_process::error_message). It unwraps to its Code.
type Error struct {
	Op      string // "send", "spawn", "module_load", "read", …
	Code    Code
	Message string // the host's sentence, or the SDK's when it refused itself
	// Err is the standard library's error this one stands for, if any: a
	// socket's Read, Write and Accept run on Go's own net package, whose
	// error (a *net.OpError) is kept here.
	Err error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("troupe: %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("troupe: %s: %s: %s", e.Op, e.Code, e.Message)
}

// Unwrap gives the code, so that errors.Is(err, ErrNoProcess) works (and
// errors.Is(err, os.ErrPermission)..., see Code.Is), and the standard
// library's error it stands for, if any (errors.As(err, &opErr) for a
// *net.OpError, errors.Is(err, syscall.ECONNRESET)).
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Code, e.Err}
	}
	return []error{e.Code}
}

// Timeout reports whether the call timed out (ErrTimeout). With Temporary,
// it makes *Error a net.Error, as package net's deadline errors are.
func (e *Error) Timeout() bool { return e.Code == ErrTimeout }

// Temporary is Timeout (net.Error's deprecated method, kept for the
// interface).
func (e *Error) Temporary() bool { return e.Code == ErrTimeout }

// MalformedError is a message whose payload does not decode as the type
// asked for. The message has been taken out of the mailbox.
type MalformedError struct {
	From Pid    // the sender
	Tag  uint64 // the message's tag
	Err  error  // what the decoder said
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("troupe: malformed message from %v (tag %#x): %v", e.From, e.Tag, e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// hostError builds the Error of code, which the host just returned, with
// its explanation.
func hostError(op string, code int32) error {
	return &Error{Op: op, Code: Code(code), Message: lastErrorMessage()}
}

// invalid is an INVALID_ARGUMENT refused by the SDK before any host call.
func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Code: ErrInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// lastErrorMessage is the host's explanation of this process's last error.
func lastErrorMessage() string {
	buf := make([]byte, 256)
	for {
		full := int(sysErrorMessage(unsafe.Pointer(&buf[0]), int32(len(buf))))
		if full <= len(buf) {
			if full < 0 {
				full = 0
			}
			return string(buf[:full])
		}
		buf = make([]byte, full)
	}
}

// unexpected panics on a code the SDK never expects from a call (the host
// broke its contract, or the SDK has a bug).
func unexpected(op string, code int32) {
	panic(fmt.Sprintf("troupe: %s returned unexpected error %d (%s): %s",
		op, code, abi.ErrorName(code), lastErrorMessage()))
}
