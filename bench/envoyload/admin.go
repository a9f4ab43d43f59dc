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

	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/xds"
)

// delta is after − before for every stat of after.
func delta(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// shadowStats is what Envoy did with one route's shadow during a phase.
type shadowStats struct {
	Sent        int64 `json:"sent"`         // mirrored requests sent to the shadow cluster
	Shed        int64 `json:"shed"`         // shed by the shadow's circuit breaker
	ConnectFail int64 `json:"connect_fail"` // connections to the shadow that failed
	Timeouts    int64 `json:"timeouts"`     // shadow requests that timed out
	Responses   int64 `json:"responses"`    // shadow answers (any status)
	// CaptureStreams counts capture (ext_proc) streams Envoy opened on the
	// listener (the primary side of every route); ShadowCaptureStreams those
	// of the route's shadow cluster (the shadow side).
	CaptureStreams       int64 `json:"capture_streams"`
	ShadowCaptureStreams int64 `json:"shadow_capture_streams"`
}

// shadowCounterFilter selects the counters shadowStats reads.
const shadowCounterFilter = `^cluster\.shadow/|ext_proc`

func shadowStatsOf(d map[string]int64, route string) shadowStats {
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
