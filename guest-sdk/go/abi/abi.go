// Package abi holds the constants of Troupe's guest ABI, mirrored from the
// Rust crate troupe-abi (host-api/abi/src/lib.rs), where they are defined
// once. Their meaning is given in host-api/SPEC.md.
//
// Each constant is named after its Rust module and name: err::NO_PROCESS is
// ErrNoProcess, tag::SPAWN_ARG is TagSpawnArg, val::SDK_ENTRY is
// ValSdkEntry. A test parses the Rust file and fails if any constant is
// missing here or has another value, so the two cannot drift.
package abi

// Import module names, one per namespace (Rust: module).
const (
	// ModuleProcess: identity, errors, module loading, spawn configuration, spawn.
	ModuleProcess = "troupe_process"
	// ModuleMessage: send, selective receive, reading a held message.
	ModuleMessage = "troupe_message"
	// ModuleRegistry: the name registry.
	ModuleRegistry = "troupe_registry"
	// ModuleTimer: sleep, send_after, cancel_timer.
	ModuleTimer = "troupe_timer"
	// ModuleNet: TCP, UDP and name resolution (with permission).
	ModuleNet = "troupe_net"
)

// Error codes returned by host functions (Rust: err). OK is zero.
const (
	ErrOk                int32 = 0
	ErrNoProcess         int32 = 1
	ErrTimeout           int32 = 2
	ErrBufferTooSmall    int32 = 3
	ErrNoMessage         int32 = 4
	ErrInvalidModule     int32 = 5
	ErrNoSuchModule      int32 = 6
	ErrNoSuchExport      int32 = 7
	ErrResourceLimit     int32 = 8
	ErrPermissionDenied  int32 = 9
	ErrInvalidArgument   int32 = 10
	ErrSpawnFailed       int32 = 11
	ErrAlreadyRegistered int32 = 12
	ErrNotFound          int32 = 13
	// ErrBadHandle: not a socket the caller holds (unknown, closed, moved
	// to another process, or of the wrong kind for the call).
	ErrBadHandle int32 = 14
	// ErrConnectionRefused: tcp_connect found nobody listening.
	ErrConnectionRefused int32 = 15
	// ErrConnectionReset: the peer reset or aborted the connection.
	ErrConnectionReset int32 = 16
	// ErrAddrInUse: the address to listen on or bind is in use.
	ErrAddrInUse int32 = 17
	// ErrAddrNotAvailable: the address is not local, or not usable here.
	ErrAddrNotAvailable int32 = 18
	// ErrNotConnected: the socket is not connected.
	ErrNotConnected int32 = 19
	// ErrHostNotFound: a host name did not resolve.
	ErrHostNotFound int32 = 20
	// ErrIoError: any other I/O error (error_message has the system's text).
	ErrIoError int32 = 21
	// ErrUnsupported: the caller's module cannot do what was asked
	// (hibernate: see SPEC.md).
	ErrUnsupported int32 = 22
)

// ErrorName is the short stable name of an error code (Rust: err::name).
func ErrorName(code int32) string {
	switch code {
	case ErrOk:
		return "ok"
	case ErrNoProcess:
		return "no such process"
	case ErrTimeout:
		return "timed out"
	case ErrBufferTooSmall:
		return "buffer too small"
	case ErrNoMessage:
		return "no held message"
	case ErrInvalidModule:
		return "invalid module"
	case ErrNoSuchModule:
		return "no such module"
	case ErrNoSuchExport:
		return "no such export"
	case ErrResourceLimit:
		return "resource limit reached"
	case ErrPermissionDenied:
		return "permission denied"
	case ErrInvalidArgument:
		return "invalid argument"
	case ErrSpawnFailed:
		return "spawn failed"
	case ErrAlreadyRegistered:
		return "name already registered"
	case ErrNotFound:
		return "not found"
	case ErrBadHandle:
		return "bad socket handle"
	case ErrConnectionRefused:
		return "connection refused"
	case ErrConnectionReset:
		return "connection reset"
	case ErrAddrInUse:
		return "address in use"
	case ErrAddrNotAvailable:
		return "address not available"
	case ErrNotConnected:
		return "not connected"
	case ErrHostNotFound:
		return "host not found"
	case ErrIoError:
		return "I/O error"
	case ErrUnsupported:
		return "not supported by this module"
	}
	return "unknown error"
}

// Message tags (Rust: tag). Tags with the top bit set are reserved for the VM.
const (
	// TagData is the tag of ordinary typed messages.
	TagData uint64 = 0
	// TagReplyBase is the first tag of the reply range TagReplyBase..TagSystemBase.
	TagReplyBase uint64 = 1 << 62
	// TagSystemBase is the first tag reserved for messages the VM sends.
	TagSystemBase uint64 = 1 << 63
	// TagSpawnArg is the spawn argument, the first message of every spawned process.
	TagSpawnArg uint64 = TagSystemBase
	// TagExit is an exit signal turned into a message (the receiver traps exits).
	TagExit uint64 = TagSystemBase + 1
	// TagDown is the message a monitor gets when the monitored process ends.
	TagDown uint64 = TagSystemBase + 2
)

// Exit reasons as they cross the ABI (Rust: reason): a u32 kind, then data.
const (
	ReasonNormal      uint32 = 0
	ReasonTrap        uint32 = 1
	ReasonKilled      uint32 = 2
	ReasonLimit       uint32 = 3
	ReasonExitCode    uint32 = 4
	ReasonCustom      uint32 = 5
	ReasonNoproc      uint32 = 6
	ReasonShutdown    uint32 = 7
	ReasonLimitMemory uint32 = 0
	ReasonLimitFuel   uint32 = 1
)

// Special values of parameters (Rust: val).
const (
	// ValModuleSelf is spawn's module handle meaning "the caller's own module".
	ValModuleSelf uint64 = 0
	// ValConfigInherit is spawn's config handle meaning "inherit everything".
	ValConfigInherit uint64 = 0
	// ValTimeoutForever is a receive timeout that waits forever (0 polls).
	ValTimeoutForever int64 = -1
	// ValMaxSpawnParams is the most entry parameters spawn passes.
	ValMaxSpawnParams uint32 = 16
	// ValSdkEntry is the export the Rust SDK provides for spawning functions.
	ValSdkEntry = "__troupe_entry"
	// ValStart is the export every command module has.
	ValStart = "_start"
	// ValTimerCancelled is cancel_timer's result when the timer was cancelled.
	ValTimerCancelled int32 = 1
	// ValTimerNotPending is cancel_timer's result when it had already fired.
	ValTimerNotPending int32 = 0
	// ValShutdownRead is troupe_net.shutdown's how: shut the reading half.
	ValShutdownRead int32 = 0
	// ValShutdownWrite is troupe_net.shutdown's how: shut the writing half
	// (the peer reads the end of the stream).
	ValShutdownWrite int32 = 1
	// ValShutdownBoth is troupe_net.shutdown's how: shut both halves.
	ValShutdownBoth int32 = 2
	// ValFdBase is the lowest WASI file descriptor of a socket (2^30).
	ValFdBase uint32 = 1073741824
	// ValMailboxFd is the WASI file descriptor of the caller's mailbox
	// (2^30 - 1): readable in poll_oneoff when a message has arrived since a
	// receive last found none.
	ValMailboxFd uint32 = 1073741823
)

// What one process may hold at once (Rust: limit); going over fails the
// call with ErrResourceLimit (ErrInvalidArgument for a name too long or too
// many tags).
const (
	// LimitTimers is the most timers (send_after) pending at once, per process.
	LimitTimers uint32 = 10_000
	// LimitMonitors is the most monitors a process holds on others at once.
	LimitMonitors uint32 = 100_000
	// LimitLinks is the most links of one process.
	LimitLinks uint32 = 100_000
	// LimitNames is the most names registered for one process.
	LimitNames uint32 = 64
	// LimitNameLen is the most bytes of one registered name.
	LimitNameLen uint32 = 1024
	// LimitConfigs is the most spawn configurations alive at once, per process.
	LimitConfigs uint32 = 1024
	// LimitReceiveTags is the most tags one receive may select on.
	LimitReceiveTags uint32 = 1024
	// LimitSockets is the most sockets a process may hold and still open more.
	LimitSockets uint32 = 1024
	// LimitWasiHandles is the most WASI handles (files, directories,
	// streams) of one process.
	LimitWasiHandles uint32 = 1024
	// LimitReasonLen is the most bytes of an exit reason's text or data.
	LimitReasonLen uint32 = 4096
)

// Offsets in the 24-byte record receive writes (Rust: info).
const (
	InfoTag    = 0
	InfoSender = 8
	InfoLen    = 16
	InfoSize   = 24
)

// Exit codes of the troupe CLI itself (Rust: exit).
const (
	ExitTrap      int32 = 134
	ExitLoadError int32 = 1
	ExitKilled    int32 = 137
)
