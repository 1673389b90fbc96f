//go:build !wasip1

package troupe

import "unsafe"

// Stand-ins for the host functions outside wasip1, so that the package
// builds natively and its pure parts (encodings, errors, lists) can be
// tested with `go test`. They panic if called.

func notWasm() {
	panic("troupe: host functions exist only in a Troupe process (build with GOOS=wasip1 GOARCH=wasm)")
}

func sysSelfPid() int64 {
	notWasm()
	return 0
}

func sysErrorMessage(buf unsafe.Pointer, bufLen int32) int32 {
	notWasm()
	return 0
}

func sysModuleLoad(bytes unsafe.Pointer, bytesLen int32, outModule unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysModuleSelf() int64 {
	notWasm()
	return 0
}

func sysConfigNew() int64 {
	notWasm()
	return 0
}

func sysConfigDrop(config int64) int32 {
	notWasm()
	return 0
}

func sysConfigSetArgs(config int64, ptr unsafe.Pointer, length int32) int32 {
	notWasm()
	return 0
}

func sysConfigSetEnvs(config int64, ptr unsafe.Pointer, length int32) int32 {
	notWasm()
	return 0
}

func sysConfigPreopensOnly(config int64, ptr unsafe.Pointer, length int32) int32 {
	notWasm()
	return 0
}

func sysConfigLink(config int64) int32 {
	notWasm()
	return 0
}

func sysConfigSetMaxMemory(config int64, bytes int64) int32 {
	notWasm()
	return 0
}

func sysConfigSetFuel(config int64, units int64) int32 {
	notWasm()
	return 0
}

func sysConfigSetCanSpawn(config int64, allowed int32) int32 {
	notWasm()
	return 0
}

func sysConfigSetNet(config int64, ptr unsafe.Pointer, length int32) int32 {
	notWasm()
	return 0
}

func sysSpawn(module int64, config int64, entry unsafe.Pointer, entryLen int32,
	params unsafe.Pointer, paramsCount int32, arg unsafe.Pointer, argLen int32,
	outPid unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysLink(pid int64) int32 {
	notWasm()
	return 0
}

func sysUnlink(pid int64) int32 {
	notWasm()
	return 0
}

func sysMonitor(pid int64) int64 {
	notWasm()
	return 0
}

func sysDemonitor(ref int64) int32 {
	notWasm()
	return 0
}

func sysTrapExit(enable int32) int32 {
	notWasm()
	return 0
}

func sysKill(pid int64) int32 {
	notWasm()
	return 0
}

func sysSendExit(pid int64, reason unsafe.Pointer, reasonLen int32) int32 {
	notWasm()
	return 0
}

func sysExit(reason unsafe.Pointer, reasonLen int32) {
	notWasm()
}

func sysHibernate(entry unsafe.Pointer, entryLen int32, params unsafe.Pointer, paramsCount int32) int32 {
	notWasm()
	return 0
}

func sysSend(pid int64, tag int64, data unsafe.Pointer, dataLen int32) int32 {
	notWasm()
	return 0
}

func sysReceive(tags unsafe.Pointer, tagsCount int32, timeoutNs int64,
	buf unsafe.Pointer, bufCap int32, info unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysRead(buf unsafe.Pointer, bufLen int32) int32 {
	notWasm()
	return 0
}

func sysRegister(name unsafe.Pointer, nameLen int32, pid int64) int32 {
	notWasm()
	return 0
}

func sysUnregister(name unsafe.Pointer, nameLen int32) int32 {
	notWasm()
	return 0
}

func sysWhereis(name unsafe.Pointer, nameLen int32, outPid unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysSendNamed(name unsafe.Pointer, nameLen int32, tag int64, data unsafe.Pointer, dataLen int32) int32 {
	notWasm()
	return 0
}

func sysSleep(ns int64) {
	notWasm()
}

func sysSendAfter(pid int64, tag int64, data unsafe.Pointer, dataLen int32, delayNs int64, outRef unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysCancelTimer(ref int64) int32 {
	notWasm()
	return 0
}

func sysNetTCPListen(addr unsafe.Pointer, addrLen int32, outHandle unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetTCPAccept(listener int64, timeoutNs int64, outHandle unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetTCPConnect(addr unsafe.Pointer, addrLen int32, timeoutNs int64, outHandle unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetRead(stream int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetWrite(stream int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetShutdown(stream int64, how int32) int32 {
	notWasm()
	return 0
}

func sysNetClose(handle int64) int32 {
	notWasm()
	return 0
}

func sysNetLocalAddr(handle int64, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetPeerAddr(handle int64, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetUDPBind(addr unsafe.Pointer, addrLen int32, outHandle unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetUDPSendTo(socket int64, buf unsafe.Pointer, bufLen int32, addr unsafe.Pointer, addrLen int32,
	timeoutNs int64, outN unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetUDPRecvFrom(socket int64, buf unsafe.Pointer, bufLen int32, timeoutNs int64, outN unsafe.Pointer,
	addr unsafe.Pointer, addrCap int32, outAddrLen unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetResolve(name unsafe.Pointer, nameLen int32, buf unsafe.Pointer, bufLen int32, outLen unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetAttach(handle int64) int32 {
	notWasm()
	return 0
}

func sysNetDescriptor(handle int64, outFd unsafe.Pointer) int32 {
	notWasm()
	return 0
}

func sysNetHandleOf(fd int32, outHandle unsafe.Pointer) int32 {
	notWasm()
	return 0
}
