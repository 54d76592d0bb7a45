//go:build wasip1

// Command traceaffinity is a proxy-wasm HTTP filter that gives plain Istio ASM's trace-ID
// lane affinity: a request carrying the lane header and a trace value teaches the proxy
// trace -> lane; a request carrying a trace value and no lane header gets the lane header
// the proxy remembers for it. Unknown traces keep no lane, so the fallback lane serves them.
package main

import "fmt"

// refreshNs: a trace seen again in the same lane is rewritten at most this often, so a chain's
// every hop does not take the shared-data lock.
const refreshNs = uint64(1e9)

const casAttempts = 16

type plugin struct {
	settings settings
	table    table
	hits, misses, evictions, expired, remembered uint32
}

var (
	plugins = map[uint32]*plugin{} // root context -> its configuration
	streams = map[uint32]uint32{}  // stream context -> root context
)

func main() {}

//go:wasmexport proxy_abi_version_0_2_1
func proxyAbiVersion() {}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(context, parent uint32) {
	if parent == 0 {
		plugins[context] = nil
		return
	}
	streams[context] = parent
}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(root, size uint32) bool { return true }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(root, size uint32) bool {
	s, err := parseSettings(pluginConfig())
	if err != nil {
		log(logWarn, "lanes trace affinity: "+err.Error())
		return false
	}
	prefix := fmt.Sprintf("lanes.trace/%s/%s/%d", s.RouteHeader, s.TraceHeader, s.MaxEntries)
	p := &plugin{settings: s, table: newTable(prefix, s.MaxEntries, uint64(s.MaxAgeSeconds)*1e9)}
	p.hits = defineCounter("lanes_trace_affinity.hits")
	p.misses = defineCounter("lanes_trace_affinity.misses")
	p.evictions = defineCounter("lanes_trace_affinity.evictions")
	p.expired = defineCounter("lanes_trace_affinity.expired")
	p.remembered = defineCounter("lanes_trace_affinity.remembered")
	p.table.prepare()
	plugins[root] = p
	return true
}

// prepare makes every bucket exist, so each later write is a compare-and-swap: a write to a
// key that does not exist yet cannot be checked against a concurrent one.
func (t table) prepare() {
	for i := uint32(0); i < t.buckets; i++ {
		key := t.bucketKey(i)
		if _, _, ok := sharedData(key); !ok {
			setSharedData(key, nil, 0)
		}
	}
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(context, headers, endOfStream uint32) uint32 {
	p := plugins[streams[context]]
	if p == nil {
		return actionContinue
	}
	trace, hasTrace := requestHeader(p.settings.TraceHeader)
	lane, hasLane := requestHeader(p.settings.RouteHeader)
	switch {
	case hasLane && lane != "":
		if hasTrace && trace != "" && len(trace) <= maxHeaderValue && len(lane) <= maxHeaderValue {
			p.remember(trace, lane)
		}
	case !p.settings.restores():
	case hasTrace && trace != "":
		if remembered, ok := p.recall(trace); ok {
			setRequestHeader(p.settings.RouteHeader, remembered)
			proxyIncrementMetric(p.hits, 1)
		} else {
			proxyIncrementMetric(p.misses, 1)
		}
	default:
		proxyIncrementMetric(p.misses, 1)
	}
	return actionContinue
}

func (p *plugin) recall(trace string) (string, bool) {
	data, _, ok := sharedData(p.table.key(trace))
	if !ok {
		return "", false
	}
	b, err := decode(data)
	if err != nil {
		return "", false
	}
	return p.table.lookup(b, trace, now())
}

func (p *plugin) remember(trace, lane string) {
	key := p.table.key(trace)
	for attempt := 0; attempt < casAttempts; attempt++ {
		data, cas, _ := sharedData(key)
		b, err := decode(data)
		if err != nil {
			b = nil
		}
		out, changed, evicted, expired := p.table.store(b, trace, lane, now(), refreshNs)
		if !changed {
			return
		}
		if setSharedData(key, out.encode(), cas) {
			proxyIncrementMetric(p.remembered, 1)
			if evicted > 0 {
				proxyIncrementMetric(p.evictions, int64(evicted))
			}
			if expired > 0 {
				proxyIncrementMetric(p.expired, int64(expired))
			}
			return
		}
	}
	log(logWarn, "lanes trace affinity: shared data kept changing; a trace was not remembered")
}

//go:wasmexport proxy_on_done
func proxyOnDone(context uint32) bool { return true }

//go:wasmexport proxy_on_log
func proxyOnLog(context uint32) {}

//go:wasmexport proxy_on_delete
func proxyOnDelete(context uint32) {
	delete(streams, context)
	delete(plugins, context)
}
