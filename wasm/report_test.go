//go:build !wasm

package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/stretchr/testify/require"
)

// newRecordingHost is newHost, also returning the plugin context so tests
// can inject a failing dispatch.
func newRecordingHost(t *testing.T, cfg string, clock *fakeClock) (proxytest.HostEmulator, *pluginContext) {
	t.Helper()
	vm := &recordingVM{vmContext: &vmContext{now: clock.now, seed: 42}}
	opt := proxytest.NewEmulatorOption().
		WithVMContext(vm).
		WithPluginConfiguration([]byte(cfg)).
		WithProperty([]string{"xds", "route_name"}, []byte("reminders"))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin())
	require.Len(t, vm.plugins, 1)
	return host, vm.plugins[0]
}

// callouts are the report calls the plugin made so far.
func callouts(host proxytest.HostEmulator) []proxytest.HttpCalloutAttribute {
	return host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
}

// reportKey names one line of a report in tests.
type reportKey struct{ route, key string }

// reportLine is one decoded line of a report.
type reportLine struct {
	Route string `json:"route"`
	Key   string `json:"key"`
	wire.Counts
	Pairs []uint64 `json:"delay_buckets"` // bucket index, count, ...
}

// parseReport decodes a report body strictly (no unknown fields), checks
// that its lines are sorted by route then key, and returns them by key.
func parseReport(t *testing.T, body []byte) map[reportKey]wire.Counts {
	t.Helper()
	require.True(t, bytes.HasSuffix(body, []byte("\n")), "body %q", body)
	out := map[reportKey]wire.Counts{}
	var prev *reportKey
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var l reportLine
		require.NoError(t, dec.Decode(&l), "line %q", line)
		k := reportKey{l.Route, l.Key}
		if prev != nil {
			require.True(t, prev.route < k.route || prev.route == k.route && prev.key < k.key, "lines out of order: %v then %v", *prev, k)
		}
		prev = &k
		require.Zero(t, len(l.Pairs)%2, "delay_buckets %v", l.Pairs)
		for j := 0; j < len(l.Pairs); j += 2 {
			l.DelayBuckets[l.Pairs[j]] = l.Pairs[j+1]
		}
		out[k] = l.Counts
	}
	return out
}

func buckets(pairs ...int) [len(wire.DelayBucketsMs) + 1]uint64 {
	var b [len(wire.DelayBucketsMs) + 1]uint64
	for i := 0; i < len(pairs); i += 2 {
		b[pairs[i]] = uint64(pairs[i+1])
	}
	return b
}

func TestAppendReport(t *testing.T) {
	batch := outcomeCounts{
		"b": {"": {Admitted: 1}},
		"a": {
			"z":                   {Delayed: 2, DelayBuckets: buckets(0, 1, 16, 2), DelaySumMs: 7200005},
			"q\"\\\x01\xff\u00e9": {Rejected: 3, ObservedDelay: 4, ObservedReject: 5, Abandoned: 6, FailOpen: 7},
		},
	}
	want := `{"route":"a","key":"q\"\\\u0001\ufffd` + "\u00e9" + `","admitted":0,"delayed":0,"rejected":3,"observed_delay":4,"observed_reject":5,"abandoned":6,"fail_open":7,"delay_buckets":[],"delay_sum_ms":0}
{"route":"a","key":"z","admitted":0,"delayed":2,"rejected":0,"observed_delay":0,"observed_reject":0,"abandoned":0,"fail_open":0,"delay_buckets":[0,1,16,2],"delay_sum_ms":7200005}
{"route":"b","key":"","admitted":1,"delayed":0,"rejected":0,"observed_delay":0,"observed_reject":0,"abandoned":0,"fail_open":0,"delay_buckets":[],"delay_sum_ms":0}
`
	require.Equal(t, want, string(appendReport(nil, batch)))
	require.Empty(t, appendReport(nil, nil))

	got := parseReport(t, []byte(want))
	require.Len(t, got, 3)
	for route, keys := range batch {
		for key, c := range keys {
			k := reportKey{route, key}
			if key == "q\"\\\x01\xff\u00e9" {
				k.key = "q\"\\\x01\ufffd\u00e9" // the invalid byte is replaced
			}
			require.Equal(t, *c, got[k], "%v", k)
		}
	}
}

func TestOutcomesKeyBound(t *testing.T) {
	o := newOutcomes(true, 2)
	o.at("r", "a").Admitted++
	o.at("r", "b").Admitted++
	o.at("r", "c").Admitted++ // beyond max_keys
	o.at("r", "a").Admitted++ // known: its own line
	o.at("s", "d").Admitted++ // beyond max_keys, another route
	o.at("r", otherKey).Admitted++
	require.Equal(t, outcomeCounts{
		"r": {"a": {Admitted: 2}, "b": {Admitted: 1}, otherKey: {Admitted: 2}},
		"s": {otherKey: {Admitted: 1}},
	}, o.pending)
	require.Equal(t, 4, o.pending.lines())

	batch := o.take()
	require.Empty(t, o.pending)
	o.at("r", "c").Delayed++
	o.at("r", "d").Delayed++
	o.merge(batch) // r/a and r/b come back beyond the bound
	require.Equal(t, outcomeCounts{
		"r": {"c": {Delayed: 1}, "d": {Delayed: 1}, otherKey: {Admitted: 5}},
		"s": {otherKey: {Admitted: 1}},
	}, o.pending)
	require.Equal(t, 2, o.keys)

	off := newOutcomes(false, 2)
	off.at("r", "a").Admitted++
	require.Nil(t, off.pending, "nothing is kept when reporting is off")
}

const reportCluster = "shadowlab_control"

// TestReportOutcomes counts every kind of outcome once per request at its
// decision, and held requests again when they end.
func TestReportOutcomes(t *testing.T) {
	clock := &fakeClock{t: start}
	host, _ := newRecordingHost(t, `{"limit": 1, "max_delay_ms": 5000, "tick_ms": 10, "key_header": "x-tenant",
		"max_held": 2, "max_keys": 2, "report_cluster": "`+reportCluster+`", "report_ms": 100}`, clock)
	tenant := func(name string) [][2]string {
		return [][2]string{{":method", "GET"}, {":path", "/"}, {"x-tenant", name}}
	}

	wantStatus := func(r sent, action types.Action, status uint32) {
		t.Helper()
		require.Equal(t, action, r.action)
		require.Equal(t, status, r.status)
	}
	wantStatus(send(t, host, tenant("acme")), types.ActionContinue, 0)    // admitted
	acmeHeld := send(t, host, tenant("acme"))                             // delayed
	wantStatus(acmeHeld, types.ActionPause, 0)                            //
	wantStatus(send(t, host, tenant("globex")), types.ActionContinue, 0)  // admitted
	globexHeld := send(t, host, tenant("globex"))                         // delayed, then abandoned
	wantStatus(globexHeld, types.ActionPause, 0)                          //
	wantStatus(send(t, host, tenant("acme")), types.ActionPause, 429)     // max_held full: rejected
	wantStatus(send(t, host, tenant("initech")), types.ActionContinue, 0) // max_keys full: fail open
	host.CompleteHttpContext(globexHeld.id)
	require.Empty(t, callouts(host), "nothing is sent outside OnTick")

	clock.advance(10 * time.Millisecond)
	host.Tick()
	calls := callouts(host)
	require.Len(t, calls, 1)
	call := calls[0]
	require.Equal(t, reportCluster, call.Upstream)
	require.Equal(t, [][2]string{
		{":method", "POST"}, {":path", "/api/v1/admission/local"}, {":authority", "shadowlab"},
		{"content-type", "application/x-ndjson"},
	}, call.Headers)
	require.Equal(t, map[reportKey]wire.Counts{
		{"reminders", "acme"}:   {Admitted: 1, Delayed: 1, Rejected: 1},
		{"reminders", "globex"}: {Admitted: 1, Delayed: 1, Abandoned: 1},
		{"reminders", otherKey}: {FailOpen: 1},
	}, parseReport(t, call.Body))
	host.CallOnHttpCallResponse(call.CalloutID, [][2]string{{":status", "202"}}, nil, nil)
	require.EqualValues(t, 1, counter(t, host, "reports"))

	// The held request is released; the next report carries its wait.
	for host.GetCurrentHttpStreamAction(acmeHeld.id) != types.ActionContinue {
		require.Less(t, clock.t.Sub(start), 6*time.Second)
		clock.advance(10 * time.Millisecond)
		host.Tick()
	}
	wait := clock.t.Sub(start)
	for len(callouts(host)) < 2 {
		require.Less(t, clock.t.Sub(start), wait+time.Second, "no report after the release")
		clock.advance(10 * time.Millisecond)
		host.Tick()
	}
	call = callouts(host)[1]
	require.Equal(t, map[reportKey]wire.Counts{
		{"reminders", "acme"}: {DelayBuckets: buckets(wire.DelayBucket(wait), 1), DelaySumMs: uint64(wait.Milliseconds())},
	}, parseReport(t, call.Body))
	host.CallOnHttpCallResponse(call.CalloutID, [][2]string{{":status", "200"}}, nil, nil)

	// Nothing counted: nothing sent.
	for range 50 {
		clock.advance(10 * time.Millisecond)
		host.Tick()
	}
	require.Len(t, callouts(host), 2)
	require.EqualValues(t, 2, counter(t, host, "reports"))
	require.Zero(t, counter(t, host, "report_failed"))
}

func TestReportObserve(t *testing.T) {
	clock := &fakeClock{t: start}
	host, _ := newRecordingHost(t, `{"limit": 1, "mode": "observe", "route": "reminders-policy",
		"report_cluster": "`+reportCluster+`", "report_path": "/r", "report_authority": "cp"}`, clock)
	for range 3 {
		require.Equal(t, types.ActionContinue, send(t, host, requestHeaders).action)
	}
	host.Tick()
	calls := callouts(host)
	require.Len(t, calls, 1)
	require.Equal(t, [][2]string{{":method", "POST"}, {":path", "/r"}, {":authority", "cp"}, {"content-type", "application/x-ndjson"}}, calls[0].Headers)
	require.Equal(t, map[reportKey]wire.Counts{
		{"reminders-policy", ""}: {Admitted: 3, ObservedReject: 2},
	}, parseReport(t, calls[0].Body))
}

// TestReportFailures: an undelivered batch is merged back and sent again
// with what was counted since, one call at a time, at most every report_ms;
// requests are decided as usual meanwhile.
func TestReportFailures(t *testing.T) {
	clock := &fakeClock{t: start}
	host, pc := newRecordingHost(t, `{"limit": 1000, "mode": "reject", "tick_ms": 10,
		"report_cluster": "`+reportCluster+`", "report_ms": 100}`, clock)
	admitted := func(n int) {
		t.Helper()
		for range n {
			r := send(t, host, requestHeaders)
			require.Equal(t, types.ActionContinue, r.action)
			require.Equal(t, wire.AdmissionPassed, r.admission)
		}
	}
	// tick moves the clock to the next report and ticks.
	tick := func() {
		clock.advance(100 * time.Millisecond)
		host.Tick()
	}
	lastBody := func() map[reportKey]wire.Counts {
		calls := callouts(host)
		return parseReport(t, calls[len(calls)-1].Body)
	}
	respond := func(headers [][2]string) {
		calls := callouts(host)
		host.CallOnHttpCallResponse(calls[len(calls)-1].CalloutID, headers, nil, nil)
	}
	route := reportKey{"reminders", ""}

	admitted(2)
	tick()
	require.Len(t, callouts(host), 1)
	require.Equal(t, uint64(2), lastBody()[route].Admitted)

	admitted(3)
	tick() // the first call is still in flight: no second one
	require.Len(t, callouts(host), 1)

	respond([][2]string{{":status", "503"}})
	require.EqualValues(t, 1, counter(t, host, "report_failed"))
	require.Len(t, host.GetWarnLogs(), 1)
	host.Tick() // report_ms have passed since the last attempt
	require.Len(t, callouts(host), 2)
	require.Equal(t, uint64(5), lastBody()[route].Admitted, "the failed batch and the new counts")

	respond(nil) // timeout or reset: no headers
	require.EqualValues(t, 2, counter(t, host, "report_failed"))
	admitted(1)
	clock.advance(50 * time.Millisecond)
	host.Tick() // report_ms have not passed since the last attempt
	require.Len(t, callouts(host), 2)

	pc.reporter.dispatch = func(string, [][2]string, []byte, [][2]string, uint32, func(int, int, int)) (uint32, error) {
		return 0, types.ErrorStatusBadArgument // e.g. no such cluster
	}
	tick()
	require.EqualValues(t, 3, counter(t, host, "report_failed"))
	require.Nil(t, pc.reporter.inflight)
	require.Equal(t, uint64(6), pc.outcomes.pending["reminders"][""].Admitted, "kept for the next report")
	require.Len(t, host.GetWarnLogs(), 1, "one warning per outage")

	pc.reporter.dispatch = proxywasm.DispatchHttpCall
	tick()
	require.Equal(t, uint64(6), lastBody()[route].Admitted)
	respond([][2]string{{":status", "200"}})
	require.EqualValues(t, 1, counter(t, host, "reports"))
	require.Empty(t, pc.outcomes.pending)
	require.Nil(t, pc.reporter.inflight)
	require.EqualValues(t, 6, counter(t, host, "passed"))
}

func TestReportOffByDefault(t *testing.T) {
	clock := &fakeClock{t: start}
	host, pc := newRecordingHost(t, `{"limit": 1, "mode": "reject"}`, clock)
	for range 3 {
		send(t, host, requestHeaders)
	}
	for range 200 {
		clock.advance(10 * time.Millisecond)
		host.Tick()
	}
	require.Empty(t, callouts(host))
	require.Nil(t, pc.outcomes.pending)
	_, err := host.GetCounterMetric("shadowlab_admission_reports")
	require.NoError(t, err, "defined even when unused")
}

// TestPolicyRoute: the Envoy routes of one policy route share its budget,
// and the reports name the policy route.
func TestPolicyRoute(t *testing.T) {
	tests := map[string]struct {
		route string
		want  []uint32 // status per request, alternating Envoy routes a and b
	}{
		"policy route: one budget":         {route: "reminders-policy", want: []uint32{0, 429, 429}},
		"no policy route: per Envoy route": {route: "", want: []uint32{0, 0, 429}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: start}
			cfg := `{"limit": 1, "mode": "reject", "report_cluster": "` + reportCluster + `", "route": "` + tc.route + `"}`
			host, _ := newRecordingHost(t, cfg, clock)
			for i, want := range tc.want {
				envoyRoute := []string{"route-a", "route-b"}[i%2]
				require.NoError(t, host.SetProperty([]string{"xds", "route_name"}, []byte(envoyRoute)))
				require.Equal(t, want, send(t, host, requestHeaders).status, "request %d (%s)", i, envoyRoute)
			}
			host.Tick()
			got := parseReport(t, callouts(host)[0].Body)
			if tc.route != "" {
				require.Equal(t, map[reportKey]wire.Counts{{tc.route, ""}: {Admitted: 1, Rejected: 2}}, got)
			} else {
				require.Equal(t, map[reportKey]wire.Counts{
					{"route-a", ""}: {Admitted: 1, Rejected: 1}, {"route-b", ""}: {Admitted: 1},
				}, got)
			}
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestID(t *testing.T) {
	host := newHost(t, `{"limit": 1, "max_delay_ms": 1000}`, &fakeClock{t: start})
	seen := map[string]bool{}
	for range 3 { // passed, held, held
		r := send(t, host, requestHeaders)
		id := header(host.GetCurrentRequestHeaders(r.id), wire.HeaderRequestID)
		require.Regexp(t, uuidV4, id)
		require.False(t, seen[id], "id %s given twice", id)
		seen[id] = true
		require.NotEmpty(t, r.admission, "x-shadowlab-admission is stamped too")
	}
	given := append([][2]string{{wire.HeaderRequestID, "client-id-1"}}, requestHeaders...)
	r := send(t, host, given)
	require.Equal(t, "client-id-1", header(host.GetCurrentRequestHeaders(r.id), wire.HeaderRequestID), "an existing id is kept")

	rnd := &rng{s: 1}
	for range 1000 {
		require.Regexp(t, uuidV4, newRequestID(rnd))
	}
}
