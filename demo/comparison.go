package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// comparison waits until the report has a pair for every request the
// candidate received, prints it, and checks that it holds exactly the
// candidate's seeded differences (backend.SeededDifferences) and none of
// the noise.
func (d *demo) comparison(ctx context.Context, apiAddr string) error {
	shadows, err := received(ctx, d.client, d.addrs["candidate"])
	if err != nil {
		return err
	}
	wantPairs, wantDiffs := expectations(shadows)

	var rep report.Report
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err = fetchReport(ctx, d.client, apiAddr)
		if err != nil {
			return err
		}
		if (reportMeets(rep, wantPairs, wantDiffs) && d.admissionReported(rep)) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var out strings.Builder
	if err := report.Render(&out, rep, report.RenderOptions{MaxPaths: 10}); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		d.say("  %s", line)
	}
	d.say("")

	var problems []string
	got := map[string]report.RouteReport{}
	for _, r := range rep.Routes {
		got[r.Route] = r
	}
	for _, route := range slices.Sorted(maps.Keys(wantPairs)) {
		r := got[route]
		if r.Pairs != wantPairs[route] {
			problems = append(problems, fmt.Sprintf("route %s: %d pairs reported, the candidate received %d requests", route, r.Pairs, wantPairs[route]))
		}
		have := patternCounts(r)
		for _, key := range slices.Sorted(maps.Keys(union(have, wantDiffs[route]))) {
			if have[key] != wantDiffs[route][key] {
				problems = append(problems, fmt.Sprintf("route %s: %s reported %d times, seeded %d", route, key, have[key], wantDiffs[route][key]))
			}
		}
	}
	return d.verdict(problems, "the report holds exactly the seeded differences, and the noise (timestamps, uuids, nonces) is learned and set apart")
}

// expectations computes, from the requests the candidate received, how many
// pairs each route must report and how often each seeded difference must
// appear. HEAD answers have no body, so only status differences show there.
func expectations(shadows []backend.Request) (map[string]int, map[string]map[string]int) {
	pairs := map[string]int{}
	diffs := map[string]map[string]int{}
	for _, s := range shadows {
		route := s.Headers[wire.HeaderRoute]
		pairs[route]++
		n, _ := strconv.Atoi(s.Path[strings.LastIndexByte(s.Path, '/')+1:])
		for _, sd := range backend.SeededDifferences {
			if sd.Route != route || !sd.Applies(n) || (s.Method == http.MethodHead && sd.Kind != "status") {
				continue
			}
			if diffs[route] == nil {
				diffs[route] = map[string]int{}
			}
			diffs[route][sd.Pattern+" "+sd.Kind]++
		}
	}
	return pairs, diffs
}

func reportMeets(rep report.Report, pairs map[string]int, diffs map[string]map[string]int) bool {
	got := map[string]report.RouteReport{}
	for _, r := range rep.Routes {
		got[r.Route] = r
	}
	for route, n := range pairs {
		r := got[route]
		if r.Pairs < n || len(r.Differences) != len(diffs[route]) {
			return false
		}
		for _, p := range r.Differences {
			if diffs[route][p.Pattern+" "+string(p.Kind)] != p.Count {
				return false
			}
		}
	}
	return true
}

// union has the keys of a and b (values are not used).
func union(a, b map[string]int) map[string]int {
	out := maps.Clone(a)
	for k := range b {
		out[k] = 0
	}
	return out
}

func fetchReport(ctx context.Context, client *http.Client, apiAddr string) (report.Report, error) {
	var rep report.Report
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/api/v1/report", nil)
	if err != nil {
		return rep, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return rep, fmt.Errorf("fetching the report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("fetching the report: %s", resp.Status)
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}

// admissionReported reports whether the plugin's counts of every request
// of the burst scene, held ones released, have reached the report (the
// plugin reports once a second).
func (d *demo) admissionReported(rep report.Report) bool {
	var decided, released, delayed uint64
	for _, a := range rep.Admission {
		if a.Route == burstRoute {
			decided += a.Admitted + a.Delayed + a.Rejected + a.FailOpen
			released += a.Released + a.Abandoned
			delayed += a.Delayed
		}
	}
	return decided >= uint64(d.burstSent) && released == delayed
}
