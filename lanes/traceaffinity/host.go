//go:build wasip1

package main

// The host calls of the proxy-wasm ABI 0.2.1 this module uses
// (https://github.com/proxy-wasm/spec/tree/main/abi-versions/v0.2.1).

import "unsafe"

const (
	statusOK          = 0
	statusNotFound    = 1
	statusCasMismatch = 8

	mapRequestHeaders    = 0
	bufferPluginConfig   = 7
	metricCounter        = 0
	metricGauge          = 1
	logInfo              = 2
	logWarn              = 3
	actionContinue       = 0
)

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(kind, start, max uint32, ret *uint32, retSize *uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, ret *uint32, retSize *uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(kind uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(key unsafe.Pointer, keySize uint32, ret *uint32, retSize *uint32, cas *uint32) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(kind uint32, name unsafe.Pointer, nameSize uint32, ret *uint32) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, offset int64) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxyGetCurrentTimeNanoseconds(ret *uint64) uint32

// allocations keeps the buffers handed to the host alive until the module has read them.
var allocations = map[uintptr][]byte{}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	buf := make([]byte, size+1)
	ptr := uintptr(unsafe.Pointer(&buf[0]))
	allocations[ptr] = buf
	return uint32(ptr)
}

// take copies out, and releases, what the host wrote into memory it allocated from us.
func take(ptr, size uint32) []byte {
	key := uintptr(ptr)
	buf, ok := allocations[key]
	if !ok {
		return nil
	}
	delete(allocations, key)
	out := make([]byte, size)
	copy(out, buf[:size])
	return out
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func log(level uint32, msg string) {
	b := []byte(msg)
	proxyLog(level, bytesPtr(b), uint32(len(b)))
}

func pluginConfig() []byte {
	var ptr, size uint32
	if proxyGetBufferBytes(bufferPluginConfig, 0, 1<<20, &ptr, &size) != statusOK {
		return nil
	}
	return take(ptr, size)
}

func requestHeader(name string) (string, bool) {
	key := []byte(name)
	var ptr, size uint32
	if proxyGetHeaderMapValue(mapRequestHeaders, bytesPtr(key), uint32(len(key)), &ptr, &size) != statusOK {
		return "", false
	}
	return string(take(ptr, size)), true
}

func setRequestHeader(name, value string) {
	key, val := []byte(name), []byte(value)
	proxyReplaceHeaderMapValue(mapRequestHeaders, bytesPtr(key), uint32(len(key)), bytesPtr(val), uint32(len(val)))
}

func sharedData(key string) ([]byte, uint32, bool) {
	k := []byte(key)
	var ptr, size, cas uint32
	switch proxyGetSharedData(bytesPtr(k), uint32(len(k)), &ptr, &size, &cas) {
	case statusOK:
		return take(ptr, size), cas, true
	default:
		return nil, cas, false
	}
}

// setSharedData stores value if nobody wrote the key since `cas` was read; false otherwise.
func setSharedData(key string, value []byte, cas uint32) bool {
	k := []byte(key)
	return proxySetSharedData(bytesPtr(k), uint32(len(k)), bytesPtr(value), uint32(len(value)), cas) == statusOK
}

func defineCounter(name string) uint32 {
	n := []byte(name)
	var id uint32
	proxyDefineMetric(metricCounter, bytesPtr(n), uint32(len(n)), &id)
	return id
}

func now() uint64 {
	var t uint64
	proxyGetCurrentTimeNanoseconds(&t)
	return t
}
