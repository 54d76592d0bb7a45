package main

import "testing"

const sec = uint64(1e9)

func TestStoreAndLookup(t *testing.T) {
	tab := newTable("p", 16, 10*sec)
	b, changed, evicted, expired := tab.store(nil, "t1", "canary", 1*sec, sec)
	if !changed || evicted != 0 || expired != 0 {
		t.Fatalf("first store: changed=%v evicted=%d expired=%d", changed, evicted, expired)
	}
	decoded, err := decode(b.encode())
	if err != nil {
		t.Fatal(err)
	}
	if lane, ok := tab.lookup(decoded, "t1", 5*sec); !ok || lane != "canary" {
		t.Fatalf("lookup t1 = %q, %v", lane, ok)
	}
	if _, ok := tab.lookup(decoded, "t2", 5*sec); ok {
		t.Fatal("unknown trace found")
	}
	if _, ok := tab.lookup(decoded, "t1", 11*sec); ok {
		t.Fatal("entry older than the maximum age was used")
	}
}

func TestStoreSkipsAFreshSameLaneEntry(t *testing.T) {
	tab := newTable("p", 16, 10*sec)
	b, _, _, _ := tab.store(nil, "t1", "canary", 1*sec, sec)
	if _, changed, _, _ := tab.store(b, "t1", "canary", 1*sec+sec/2, sec); changed {
		t.Fatal("a fresh entry in the same lane was rewritten")
	}
	if out, changed, _, _ := tab.store(b, "t1", "blue", 1*sec+sec/2, sec); !changed || len(out) != 1 || out[0].lane != "blue" {
		t.Fatalf("lane change: %v %+v", changed, out)
	}
}

func TestFullBucketEvictsOldest(t *testing.T) {
	tab := newTable("p", 3, 100*sec)
	var b bucket
	evictions := 0
	for i, trace := range []string{"a", "b", "c", "d"} {
		var ev int
		b, _, ev, _ = tab.store(b, trace, "canary", uint64(i+1)*sec, sec)
		evictions += ev
	}
	if evictions != 1 || len(b) != 3 {
		t.Fatalf("evictions=%d len=%d", evictions, len(b))
	}
	if _, ok := tab.lookup(b, "a", 5*sec); ok {
		t.Fatal("the oldest entry was kept")
	}
}

func TestExpiredEntriesAreDropped(t *testing.T) {
	tab := newTable("p", 8, 2*sec)
	b, _, _, _ := tab.store(nil, "a", "canary", 1*sec, sec)
	b, _, evicted, expired := tab.store(b, "b", "canary", 10*sec, sec)
	if evicted != 0 || expired != 1 || len(b) != 1 {
		t.Fatalf("evicted=%d expired=%d len=%d", evicted, expired, len(b))
	}
}

func TestTableShape(t *testing.T) {
	for _, c := range []struct{ entries, buckets, ways int }{{1, 1, 1}, {8, 1, 8}, {9, 2, 8}, {10000, 1250, 8}} {
		tab := newTable("p", c.entries, sec)
		if int(tab.buckets) != c.buckets || tab.ways != c.ways {
			t.Errorf("%d entries: %d buckets of %d", c.entries, tab.buckets, tab.ways)
		}
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	b := bucket{{at: 1, trace: "trace", lane: "lane"}}.encode()
	if _, err := decode(b[:len(b)-1]); err == nil {
		t.Fatal("truncated bucket decoded")
	}
}

func TestSettings(t *testing.T) {
	s, err := parseSettings(nil)
	if err != nil || s.MaxEntries != defaultMaxEntries || s.MaxAgeSeconds != defaultMaxAgeSeconds || !s.restores() {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	s, err = parseSettings([]byte(`{"routeHeader":"X-Lane","traceHeader":"X-Trace","maxEntries":5,"restore":false}`))
	if err != nil || s.RouteHeader != "x-lane" || s.MaxEntries != 5 || s.restores() {
		t.Fatalf("parsed: %+v %v", s, err)
	}
	for _, bad := range []string{`{"maxEntries":0}`, `{"maxAgeSeconds":-1}`, `{"traceHeader":"x-asm-prefer-tag"}`, `{"routeHeader":""}`, `{"size":1}`, `[`} {
		if _, err := parseSettings([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
