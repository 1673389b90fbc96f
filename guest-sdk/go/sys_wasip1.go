//go:build wasip1

package troupe

import "unsafe"

// The host functions of host-api/SPEC.md, one declaration each. Pointers are
// offsets into this instance's linear memory: Go passes an unsafe.Pointer as
// an i32, and its garbage collector does not move objects, so a pointer to a
// Go value stays valid for the call. Only imports that a program reaches are
// linked into its module, so a program that does not use the registry does
// not import it.

// Namespace troupe_process.

//go:wasmimport troupe_process self_pid
func sysSelfPid() int64

//go:wasmimport troupe_process error_message
func sysErrorMessage(buf unsafe.Pointer, bufLen int32) int32

//go:wasmimport troupe_process module_load
func sysModuleLoad(bytes unsafe.Pointer, bytesLen int32, outModule unsafe.Pointer) int32

//go:wasmimport troupe_process module_self
func sysModuleSelf() int64

//go:wasmimport troupe_process config_new
func sysConfigNew() int64

//go:wasmimport troupe_process config_drop
func sysConfigDrop(config int64) int32

//go:wasmimport troupe_process config_set_args
func sysConfigSetArgs(config int64, ptr unsafe.Pointer, length int32) int32

//go:wasmimport troupe_process config_set_envs
func sysConfigSetEnvs(config int64, ptr unsafe.Pointer, length int32) int32

//go:wasmimport troupe_process config_preopens_only
func sysConfigPreopensOnly(config int64, ptr unsafe.Pointer, length int32) int32

//go:wasmimport troupe_process config_link
func sysConfigLink(config int64) int32

//go:wasmimport troupe_process config_set_max_memory
func sysConfigSetMaxMemory(config int64, bytes int64) int32

//go:wasmimport troupe_process config_set_fuel
func sysConfigSetFuel(config int64, units int64) int32

//go:wasmimport troupe_process config_set_can_spawn
func sysConfigSetCanSpawn(config int64, allowed int32) int32

//go:wasmimport troupe_process config_set_net
func sysConfigSetNet(config int64, ptr unsafe.Pointer, length int32) int32

//go:wasmimport troupe_process spawn
func sysSpawn(module int64, config int64, entry unsafe.Pointer, entryLen int32,
	params unsafe.Pointer, paramsCount int32, arg unsafe.Pointer, argLen int32,
	outPid unsafe.Pointer) int32

//go:wasmimport troupe_process link
func sysLink(pid int64) int32

//go:wasmimport troupe_process unlink
func sysUnlink(pid int64) int32

//go:wasmimport troupe_process monitor
func sysMonitor(pid int64) int64

//go:wasmimport troupe_process demonitor
func sysDemonitor(ref int64) int32

//go:wasmimport troupe_process trap_exit
func sysTrapExit(enable int32) int32

//go:wasmimport troupe_process kill
func sysKill(pid int64) int32

//go:wasmimport troupe_process send_exit
func sysSendExit(pid int64, reason unsafe.Pointer, reasonLen int32) int32

//go:wasmimport troupe_process exit
func sysExit(reason unsafe.Pointer, reasonLen int32)

// Bound for completeness: the VM cannot hibernate a Go module (Go keeps its
// stacks and registers in several globals, and Go 1.23 cannot export a
// function to wake in), so it answers UNSUPPORTED. See README.md.
//
//go:wasmimport troupe_process hibernate
func sysHibernate(entry unsafe.Pointer, entryLen int32, params unsafe.Pointer, paramsCount int32) int32

// Namespace troupe_message.

//go:wasmimport troupe_message send
func sysSend(pid int64, tag int64, data unsafe.Pointer, dataLen int32) int32

//go:wasmimport troupe_message receive
func sysReceive(tags unsafe.Pointer, tagsCount int32, timeoutNs int64,
	buf unsafe.Pointer, bufCap int32, info unsafe.Pointer) int32

//go:wasmimport troupe_message read
func sysRead(buf unsafe.Pointer, bufLen int32) int32

// Namespace troupe_registry.

//go:wasmimport troupe_registry register
func sysRegister(name unsafe.Pointer, nameLen int32, pid int64) int32

//go:wasmimport troupe_registry unregister
func sysUnregister(name unsafe.Pointer, nameLen int32) int32

//go:wasmimport troupe_registry whereis
func sysWhereis(name unsafe.Pointer, nameLen int32, outPid unsafe.Pointer) int32

//go:wasmimport troupe_registry send
func sysSendNamed(name unsafe.Pointer, nameLen int32, tag int64, data unsafe.Pointer, dataLen int32) int32

// Namespace troupe_timer.

//go:wasmimport troupe_timer sleep
func sysSleep(ns int64)

//go:wasmimport troupe_timer send_after
func sysSendAfter(pid int64, tag int64, data unsafe.Pointer, dataLen int32, delayNs int64, outRef unsafe.Pointer) int32

//go:wasmimport troupe_timer cancel_timer
func sysCancelTimer(ref int64) int32

// Namespace troupe_net.

//go:wasmimport troupe_net tcp_listen
func sysNetTCPListen(addr unsafe.Pointer, addrLen int32, outHandle unsafe.Pointer) int32

//go:wasmimport troupe_net tcp_accept
func sysNetTCPAccept(listener int64, timeoutNs int64, outHandle unsafe.Pointer) int32

//go:wasmimport troupe_net tcp_connect
func sysNetTCPConnect(addr unsafe.Pointer, addrLen int32, timeoutNs int64, outHandle unsafe.Pointer) int32

//go:wasmimport troupe_net read
func sysNetRead(stream int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer) int32

//go:wasmimport troupe_net write
func sysNetWrite(stream int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer) int32

//go:wasmimport troupe_net shutdown
func sysNetShutdown(stream int64, how int32) int32

//go:wasmimport troupe_net close
func sysNetClose(handle int64) int32

//go:wasmimport troupe_net local_addr
func sysNetLocalAddr(handle int64, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32

//go:wasmimport troupe_net peer_addr
func sysNetPeerAddr(handle int64, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32

//go:wasmimport troupe_net udp_bind
func sysNetUDPBind(addr unsafe.Pointer, addrLen int32, outHandle unsafe.Pointer) int32

//go:wasmimport troupe_net udp_send_to
func sysNetUDPSendTo(socket int64, buf unsafe.Pointer, bufLen int32, addr unsafe.Pointer, addrLen int32,
	timeoutNs int64, outN unsafe.Pointer) int32

//go:wasmimport troupe_net udp_recv_from
func sysNetUDPRecvFrom(socket int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer,
	addr unsafe.Pointer, addrCap int32, outAddrLen unsafe.Pointer) int32

//go:wasmimport troupe_net resolve
func sysNetResolve(name unsafe.Pointer, nameLen int32, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32

//go:wasmimport troupe_net attach
func sysNetAttach(handle int64) int32

//go:wasmimport troupe_net descriptor
func sysNetDescriptor(handle int64, outFd unsafe.Pointer) int32

//go:wasmimport troupe_net handle_of
func sysNetHandleOf(fd int32, outHandle unsafe.Pointer) int32
