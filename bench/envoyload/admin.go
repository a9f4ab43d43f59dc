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
	Sent int64 `json:"sent"` // mirrored requests sent to the shadow cluster (the gateway, or the shadow)
	Shed int64 `json:"shed"` // shed by the shadow cluster's circuit breaker
}

// shadowCounterFilter selects the counters shadowStats reads.
const shadowCounterFilter = `^cluster\.shadow/`

func shadowStatsOf(d map[string]int64, a arm) shadowStats {
	c := "cluster." + xds.ShadowCluster(a.Route) + "."
	return shadowStats{
		Sent: d[c+"upstream_rq_total"],
		Shed: d[c+"upstream_rq_pending_overflow"],
	}
}

// routeReport reads one route's report from serve's API; a route with no
// pair recorded yet (404) has an empty report.
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
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return rr, nil
	default:
		return rr, fmt.Errorf("report of %s: %d %s", route, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return rr, json.Unmarshal(b, &rr)
}

// captureCounts is a route's pairs and their outcomes.
type captureCounts struct {
	Pairs    int            `json:"pairs"`
	Outcomes map[string]int `json:"outcomes"` // the outcomes that occurred
	// Reasons are why pairs were not compared, by outcome (whole-run
	// counts only).
	Reasons map[report.Outcome]map[string]int `json:"reasons,omitempty"`
}

func countsOf(rr report.RouteReport) captureCounts {
	c := captureCounts{Pairs: rr.Pairs, Outcomes: map[string]int{}, Reasons: rr.Reasons}
	for k, v := range rr.Outcomes {
		if v != 0 {
			c.Outcomes[string(k)] = v
		}
	}
	return c
}

// compared is how many pairs had both halves compared.
func (c captureCounts) compared() int {
	return c.Outcomes[string(report.Match)] + c.Outcomes[string(report.Diff)]
}

// minus is c − before.
func (c captureCounts) minus(before captureCounts) captureCounts {
	out := captureCounts{Pairs: c.Pairs - before.Pairs, Outcomes: map[string]int{}}
	for k, v := range c.Outcomes {
		if d := v - before.Outcomes[k]; d != 0 {
			out.Outcomes[k] = d
		}
	}
	return out
}

// captureReports reads the counts of every captured route of arms.
func captureReports(ctx context.Context, api string, arms []arm) (map[string]captureCounts, error) {
	out := map[string]captureCounts{}
	for _, a := range arms {
		if !a.Capture {
			continue
		}
		rr, err := routeReport(ctx, api, a.Route)
		if err != nil {
			return nil, err
		}
		out[a.Route] = countsOf(rr)
	}
	return out, nil
}
