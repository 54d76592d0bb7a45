package main

// The trace -> lane memory, kept in the proxy's shared data so every worker sees it.
//
// Shared data has no delete, so the memory is a fixed table: a trace hashes to one of
// `buckets` keys, and each key holds at most `ways` entries (trace, lane, when). A full bucket
// drops its oldest entry (an eviction); an entry older than the maximum age is not used and is
// dropped at the next write to its bucket. Entries are therefore at most buckets x ways.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

const defaultWays = 8

type entry struct {
	at    uint64 // nanoseconds, the proxy's clock
	trace string
	lane  string
}

type bucket []entry

// table is the shape of the memory: how many keys, how many entries each, how long one lives.
type table struct {
	prefix   string
	buckets  uint32
	ways     int
	maxAgeNs uint64
}

func newTable(prefix string, maxEntries int, maxAgeNs uint64) table {
	ways := defaultWays
	if maxEntries < ways {
		ways = maxEntries
	}
	buckets := (maxEntries + ways - 1) / ways
	return table{prefix: prefix, buckets: uint32(buckets), ways: ways, maxAgeNs: maxAgeNs}
}

// key is the shared-data key of the bucket that holds `trace`.
func (t table) key(trace string) string {
	h := fnv.New64a()
	h.Write([]byte(trace))
	return t.bucketKey(uint32(h.Sum64() % uint64(t.buckets)))
}

func (t table) bucketKey(i uint32) string {
	return fmt.Sprintf("%s/%d", t.prefix, i)
}

func (t table) fresh(e entry, now uint64) bool {
	return now < e.at+t.maxAgeNs
}

// lookup returns the lane remembered for `trace`, if it is younger than the maximum age.
func (t table) lookup(b bucket, trace string, now uint64) (string, bool) {
	for _, e := range b {
		if e.trace == trace && t.fresh(e, now) {
			return e.lane, true
		}
	}
	return "", false
}

// store returns `b` with trace -> lane at `now`, whether it changed, and how many live
// entries were evicted and expired ones dropped to make it fit.
func (t table) store(b bucket, trace, lane string, now uint64, refreshNs uint64) (out bucket, changed bool, evicted, expired int) {
	out = make(bucket, 0, t.ways)
	for _, e := range b {
		switch {
		case e.trace == trace:
			if e.lane == lane && now < e.at+refreshNs && t.fresh(e, now) {
				return b, false, 0, 0
			}
		case !t.fresh(e, now):
			expired++
		default:
			out = append(out, e)
		}
	}
	for len(out) >= t.ways {
		oldest := 0
		for i, e := range out {
			if e.at < out[oldest].at {
				oldest = i
			}
		}
		out = append(out[:oldest], out[oldest+1:]...)
		evicted++
	}
	return append(out, entry{at: now, trace: trace, lane: lane}), true, evicted, expired
}

// encode lays a bucket out as, per entry, 8 bytes of time and two length-prefixed strings.
func (b bucket) encode() []byte {
	var out []byte
	for _, e := range b {
		out = binary.LittleEndian.AppendUint64(out, e.at)
		out = appendString(out, e.trace)
		out = appendString(out, e.lane)
	}
	return out
}

func appendString(out []byte, s string) []byte {
	out = binary.LittleEndian.AppendUint16(out, uint16(len(s)))
	return append(out, s...)
}

var errCorrupt = errors.New("corrupt bucket")

func decode(data []byte) (bucket, error) {
	var b bucket
	for len(data) > 0 {
		if len(data) < 8 {
			return nil, errCorrupt
		}
		at := binary.LittleEndian.Uint64(data)
		data = data[8:]
		trace, rest, err := readString(data)
		if err != nil {
			return nil, err
		}
		lane, rest, err := readString(rest)
		if err != nil {
			return nil, err
		}
		data = rest
		b = append(b, entry{at: at, trace: trace, lane: lane})
	}
	return b, nil
}

func readString(data []byte) (string, []byte, error) {
	if len(data) < 2 {
		return "", nil, errCorrupt
	}
	n := int(binary.LittleEndian.Uint16(data))
	if len(data) < 2+n {
		return "", nil, errCorrupt
	}
	return string(data[2 : 2+n]), data[2+n:], nil
}
