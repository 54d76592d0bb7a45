package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// settings is the plugin configuration (Istio's WasmPlugin `pluginConfig`, as JSON).
type settings struct {
	RouteHeader   string `json:"routeHeader"`
	TraceHeader   string `json:"traceHeader"`
	MaxEntries    int    `json:"maxEntries"`
	MaxAgeSeconds int    `json:"maxAgeSeconds"`
	// Restore false makes a filter that only remembers, for a proxy that sets the lane
	// header in its own routes (the local mesh's upstream filter).
	Restore *bool `json:"restore"`
}

const (
	defaultMaxEntries    = 10000
	defaultMaxAgeSeconds = 60
	maxHeaderValue       = 0xffff
)

// parseSettings reads the configuration, naming the field that is wrong.
func parseSettings(data []byte) (settings, error) {
	s := settings{RouteHeader: "x-asm-prefer-tag", TraceHeader: "my-request-id",
		MaxEntries: defaultMaxEntries, MaxAgeSeconds: defaultMaxAgeSeconds}
	if len(strings.TrimSpace(string(data))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return s, fmt.Errorf("plugin configuration: %v", err)
		}
	}
	s.RouteHeader = strings.ToLower(strings.TrimSpace(s.RouteHeader))
	s.TraceHeader = strings.ToLower(strings.TrimSpace(s.TraceHeader))
	switch {
	case s.RouteHeader == "":
		return s, fmt.Errorf("plugin configuration: routeHeader is empty")
	case s.TraceHeader == "":
		return s, fmt.Errorf("plugin configuration: traceHeader is empty")
	case s.TraceHeader == s.RouteHeader:
		return s, fmt.Errorf("plugin configuration: traceHeader %q is the routeHeader; trace affinity needs a header of its own", s.TraceHeader)
	case s.MaxEntries < 1 || s.MaxEntries > 1_000_000:
		return s, fmt.Errorf("plugin configuration: maxEntries %d: expected 1 to 1000000", s.MaxEntries)
	case s.MaxAgeSeconds < 1 || s.MaxAgeSeconds > 86400:
		return s, fmt.Errorf("plugin configuration: maxAgeSeconds %d: expected 1 to 86400", s.MaxAgeSeconds)
	}
	return s, nil
}

func (s settings) restores() bool {
	return s.Restore == nil || *s.Restore
}
