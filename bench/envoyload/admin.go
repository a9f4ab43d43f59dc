package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/xds"
)

// counters are Envoy counters by name.
type counters map[string]uint64

// envoyCounters reads Envoy's counters whose names match the RE2 filter.
func envoyCounters(ctx context.Context, p *envoy.Process, filter string) (counters, error) {
	body, code, err := p.Admin(ctx, http.MethodGet, "/stats?format=json&type=Counters&filter="+url.QueryEscape(filter))
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("envoy /stats: %d %s", code, strings.TrimSpace(body))
	}
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, fmt.Errorf("envoy /stats: %w", err)
	}
	out := counters{}
	for _, s := range doc.Stats {
		var v uint64
		if json.Unmarshal(s.Value, &v) == nil {
			out[s.Name] = v
		}
	}
	return out, nil
}

// delta is after − before for every counter of after.
func (after counters) delta(before counters) counters {
	out := counters{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// shadowStats is what Envoy did with one route's shadow during a phase.
type shadowStats struct {
	Sent        uint64 `json:"sent"`         // mirrored requests sent to the shadow cluster
	Shed        uint64 `json:"shed"`         // shed by the shadow's circuit breaker
	ConnectFail uint64 `json:"connect_fail"` // connections to the shadow that failed
	Timeouts    uint64 `json:"timeouts"`     // shadow requests that timed out
	Responses   uint64 `json:"responses"`    // shadow answers (any status)
	// CaptureStreams counts capture (ext_proc) streams Envoy opened on the
	// listener (the primary side of every route); ShadowCaptureStreams those
	// of the route's shadow cluster (the shadow side).
	CaptureStreams       uint64 `json:"capture_streams"`
	ShadowCaptureStreams uint64 `json:"shadow_capture_streams"`
}

// shadowCounterFilter selects the counters shadowStats reads.
const shadowCounterFilter = `^cluster\.shadow/|ext_proc`

func shadowStatsOf(d counters, route string) shadowStats {
	c := "cluster." + xds.ShadowCluster(route) + "."
	s := shadowStats{
		Sent:        d[c+"upstream_rq_total"],
		Shed:        d[c+"upstream_rq_pending_overflow"],
		ConnectFail: d[c+"upstream_cx_connect_fail"],
		Timeouts:    d[c+"upstream_rq_timeout"],
		Responses:   d[c+"upstream_rq_completed"],

		ShadowCaptureStreams: d[c+"ext_proc."+xds.ExtProcStatPrefix+".streams_started"],
	}
	for k, v := range d {
		if strings.HasPrefix(k, "http.") && strings.HasSuffix(k, ".ext_proc."+xds.ExtProcStatPrefix+".streams_started") {
			s.CaptureStreams += v
		}
	}
	return s
}

// routeReport reads one route's report from the report API.
func routeReport(ctx context.Context, api, route string) (report.RouteReport, error) {
	var rr report.RouteReport
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/api/v1/routes/"+url.PathEscape(route), nil)
	if err != nil {
		return rr, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rr, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rr, err
	}
	if resp.StatusCode != http.StatusOK {
		return rr, fmt.Errorf("report of %s: %d %s", route, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return rr, json.Unmarshal(b, &rr)
}
