//go:build !wasm

package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/wire"
)

// newCaptureHost starts the emulator with one instance in the capture role.
func newCaptureHost(t *testing.T, cfg string, clock *fakeClock) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: clock.now, seed: 1}).
		WithPluginConfiguration([]byte(cfg)).
		WithProperty([]string{"plugin_root_id"}, []byte(wire.CaptureRootID))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin())
	return host
}

// exchange runs one request through the capture: its response in chunks,
// complete or not.
func exchange(t *testing.T, host proxytest.HostEmulator, clock *fakeClock, id, status string, chunks []string, complete bool) {
	t.Helper()
	ctx := host.InitializeHttpContext()
	reqHeaders := [][2]string{{":method", "GET"}, {":path", "/r/1?q=a"}}
	if id != "" {
		reqHeaders = append(reqHeaders, [2]string{wire.HeaderRequestID, id})
	}
	require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, reqHeaders, true))
	clock.advance(3 * time.Millisecond)
	if status != "" {
		resp := [][2]string{{":status", status}, {"content-type", "application/json"}, {"x-version", "2"}, {"set-cookie", "s=secret"}}
		require.Equal(t, types.ActionContinue, host.CallOnResponseHeaders(ctx, resp, len(chunks) == 0 && complete))
	}
	for i, c := range chunks {
		require.Equal(t, types.ActionContinue, host.CallOnResponseBody(ctx, []byte(c), complete && i == len(chunks)-1), "never paused")
	}
	host.CompleteHttpContext(ctx)
}

func batches(t *testing.T, host proxytest.HostEmulator) [][]wire.CaptureRecord {
	t.Helper()
	var out [][]wire.CaptureRecord
	for _, c := range callouts(host) {
		require.Equal(t, "shadowlab_api", c.Upstream)
		require.Equal(t, wire.CapturePath, header(c.Headers, ":path"))
		require.Equal(t, wire.CaptureContentType, header(c.Headers, "content-type"))
		recs, err := wire.ParseCaptureBatch(c.Body)
		require.NoError(t, err)
		out = append(out, recs)
	}
	return out
}

const captureConfig = `{"route":"r","max_body_bytes":10,"headers":"x-version,set-cookie","report_cluster":"shadowlab_api"}`

func TestCaptureRecordsAndBatches(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, captureConfig, clock)
	exchange(t, host, clock, "id-1", "200", []string{`{"a":`, `1}`}, true)
	exchange(t, host, clock, "id-2", "201", nil, true)                           // headers only
	exchange(t, host, clock, "id-3", "200", []string{`{"a":1,`, `"b":2}`}, true) // over 10 bytes
	exchange(t, host, clock, "id-4", "200", []string{`{"a`}, false)              // cut short
	exchange(t, host, clock, "id-5", "", nil, false)                             // no response
	exchange(t, host, clock, "", "200", []string{"{}"}, true)                    // no id: nothing to pair
	require.Empty(t, callouts(host), "batches leave from the tick only")

	host.Tick()
	got := batches(t, host)
	require.Len(t, got, 1, "one call for the batch")
	recs := got[0]
	require.Len(t, recs, 5)
	headers := [][2]string{{"content-type", "application/json"}, {"x-version", "2"}}
	require.Equal(t, wire.CaptureRecord{Route: "r", RequestID: "id-1", Method: "GET", Target: "/r/1?q=a", Status: 200,
		LatencyMicros: 3000, BodyBytes: 7, Headers: headers, Body: []byte(`{"a":1}`)}, recs[0], "never Set-Cookie")
	require.Equal(t, 201, recs[1].Status)
	require.Zero(t, recs[1].Flags)
	require.Equal(t, uint8(wire.FlagTooLarge), recs[2].Flags)
	require.Nil(t, recs[2].Body)
	require.Equal(t, uint32(13), recs[2].BodyBytes)
	require.Equal(t, uint8(wire.FlagIncomplete), recs[3].Flags)
	require.Equal(t, uint8(wire.FlagIncomplete), recs[4].Flags)
	require.Zero(t, recs[4].Status)
	require.EqualValues(t, 5, captureCounter(t, host, "records"))

	host.Tick()
	require.Len(t, callouts(host), 1, "nothing new, no call")
}

func captureCounter(t *testing.T, host proxytest.HostEmulator, name string) uint64 {
	t.Helper()
	v, err := host.GetCounterMetric("shadowlab_capture_" + name)
	require.NoError(t, err)
	return v
}

func TestCaptureBoundsAndFailures(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, `{"route":"r","report_cluster":"shadowlab_api","max_pending_bytes":200,"max_inflight":1}`, clock)
	for range 10 {
		exchange(t, host, clock, "id", "200", []string{strings.Repeat("x", 50)}, true)
	}
	kept, dropped := captureCounter(t, host, "records"), captureCounter(t, host, "dropped")
	require.Equal(t, uint64(10), kept+dropped)
	require.Positive(t, dropped, "over max_pending_bytes: dropped and counted, never grown")
	host.Tick()
	require.Len(t, callouts(host), 1)
	require.Len(t, batches(t, host)[0], int(kept))

	exchange(t, host, clock, "id", "200", nil, true)
	host.Tick()
	require.Len(t, callouts(host), 1, "max_inflight 1: the next batch waits")
	host.CallOnHttpCallResponse(callouts(host)[0].CalloutID, [][2]string{{":status", "503"}}, nil, nil)
	require.EqualValues(t, 1, captureCounter(t, host, "batch_failed"))
	require.Equal(t, dropped+kept, captureCounter(t, host, "dropped"), "a refused batch's records are counted lost")
	host.Tick()
	require.Len(t, callouts(host), 2, "the slot is free again")
}

func TestCaptureConfigRefused(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: time.Now}).
		WithPluginConfiguration([]byte(`{"route":""}`)).
		WithProperty([]string{"plugin_root_id"}, []byte(wire.CaptureRootID))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	require.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
	require.Contains(t, strings.Join(host.GetCriticalLogs(), "\n"), "configuration.report_cluster: required")
}

// TestCaptureSamples: with sample_header the instance keeps the requests
// wire.Sampled keeps, marks them with the header (so that Envoy picks the
// mirroring route) and removes a client's header from the others; it
// records only the sampled ones.
func TestCaptureSamples(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, `{"route":"r","report_cluster":"shadowlab_api","sample_header":"x-shadowlab-sample","sample_per_million":500000}`, clock)
	var want []string
	for i := range 40 {
		id := "id-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('0'+i/26))
		ctx := host.InitializeHttpContext()
		headers := [][2]string{{":method", "GET"}, {":path", "/r"}, {wire.HeaderRequestID, id}, {wire.HeaderSample, "1"}}
		require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, headers, true))
		got := host.GetCurrentRequestHeaders(ctx)
		if wire.Sampled(id, 500000) {
			want = append(want, id)
			require.Equal(t, "1", header(got, wire.HeaderSample), id)
		} else {
			require.Empty(t, header(got, wire.HeaderSample), "%s: a client's header is removed", id)
		}
		require.Equal(t, types.ActionContinue, host.CallOnResponseHeaders(ctx, [][2]string{{":status", "200"}}, true))
		host.CompleteHttpContext(ctx)
	}
	require.NotEmpty(t, want)
	require.Less(t, len(want), 40)
	host.Tick()
	var ids []string
	for _, b := range batches(t, host) {
		for _, r := range b {
			ids = append(ids, r.RequestID)
		}
	}
	require.Equal(t, want, ids, "exactly the sampled requests are recorded")
}

// TestCaptureOtherRoutes: with envoy_routes the instance leaves other
// routes' requests alone.
func TestCaptureOtherRoutes(t *testing.T) {
	clock := &fakeClock{t: start}
	other := newCaptureHost(t, `{"route":"r","report_cluster":"shadowlab_api","envoy_routes":"r.sampled,r"}`, clock)
	ctx := other.InitializeHttpContext()
	require.Equal(t, types.ActionContinue, other.CallOnRequestHeaders(ctx, [][2]string{{":method", "GET"}, {":path", "/x"}, {wire.HeaderRequestID, "id-x"}}, true))
	other.CompleteHttpContext(ctx)
	other.Tick()
	require.Empty(t, callouts(other), "the emulator names no Envoy route: not one of r's")
}

// A gRPC answer ends with trailers: the record is complete and keeps
// grpc-status and grpc-message from them, grpc-encoding from the headers.
func TestCaptureGRPCTrailers(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, `{"route":"r","max_body_bytes":100,"report_cluster":"shadowlab_api"}`, clock)
	for _, ct := range []string{"application/grpc", "application/json"} {
		ctx := host.InitializeHttpContext()
		require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, [][2]string{
			{":method", "POST"}, {":path", "/shop.v1.Orders/GetOrder"}, {wire.HeaderRequestID, "id-" + ct}}, true))
		clock.advance(2 * time.Millisecond)
		require.Equal(t, types.ActionContinue, host.CallOnResponseHeaders(ctx, [][2]string{
			{":status", "200"}, {"content-type", ct}, {"grpc-encoding", "gzip"}}, false))
		require.Equal(t, types.ActionContinue, host.CallOnResponseBody(ctx, []byte{0, 0, 0, 0, 0}, false))
		clock.advance(time.Millisecond)
		require.Equal(t, types.ActionContinue, host.CallOnResponseTrailers(ctx, [][2]string{
			{"grpc-status", "5"}, {"grpc-message", "order o-9 not found"}}))
		host.CompleteHttpContext(ctx)
	}
	host.Tick()
	recs := batches(t, host)[0]
	require.Len(t, recs, 2)
	grpc, plain := recs[0], recs[1]
	require.Zero(t, grpc.Flags&wire.FlagIncomplete, "trailers end the response")
	require.Equal(t, uint32(3000), grpc.LatencyMicros, "to the trailers")
	require.Equal(t, [][2]string{{"content-type", "application/grpc"}, {"grpc-encoding", "gzip"}}, grpc.Headers)
	require.Equal(t, [][2]string{{"grpc-status", "5"}, {"grpc-message", "order o-9 not found"}}, grpc.Trailers)
	require.Equal(t, [][2]string{{"content-type", "application/json"}}, plain.Headers, "gRPC fields are read for gRPC only")
	require.Nil(t, plain.Trailers)
	require.Zero(t, plain.Flags&wire.FlagIncomplete)
}

// instanceConfig is one capture instance per listener: no route, the
// routes' settings come from their metadata.
const instanceConfig = `{"report_cluster":"shadowlab_api"}`

// onRoute makes the next requests take an Envoy route whose capture
// metadata is settings (the emulator's properties are global).
func onRoute(t *testing.T, host proxytest.HostEmulator, settings string) {
	t.Helper()
	require.NoError(t, host.SetProperty(routeMetadataPath, []byte(settings)))
}

func recordsByID(t *testing.T, host proxytest.HostEmulator) map[string]wire.CaptureRecord {
	t.Helper()
	out := map[string]wire.CaptureRecord{}
	for _, b := range batches(t, host) {
		for _, r := range b {
			out[r.RequestID] = r
		}
	}
	return out
}

// TestCaptureRouteMetadata: one instance captures every route with the
// settings in the route's metadata; a route without valid settings is not
// captured, and counted.
func TestCaptureRouteMetadata(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, instanceConfig, clock)
	exchange(t, host, clock, "id-none", "200", []string{"{}"}, true) // switched on, no metadata
	require.EqualValues(t, 1, captureCounter(t, host, "no_settings"))
	require.Len(t, host.GetWarnLogs(), 1)

	orders := wire.CaptureConfig{Route: "orders", MaxBodyBytes: 4, Headers: "x-version"}
	users := wire.CaptureConfig{Route: "users"}
	onRoute(t, host, string(orders.AppendRouteJSON(nil)))
	exchange(t, host, clock, "id-o1", "200", []string{"{}"}, true)
	exchange(t, host, clock, "id-o2", "200", []string{`{"a":1}`}, true) // over orders' 4 bytes
	onRoute(t, host, string(users.AppendRouteJSON(nil)))
	exchange(t, host, clock, "id-u1", "200", []string{`{"a":1}`}, true) // users: 1 MiB
	onRoute(t, host, `{"route":"bad","report_cluster":"x"}`)
	exchange(t, host, clock, "id-bad1", "200", nil, true)
	exchange(t, host, clock, "id-bad2", "200", nil, true)
	onRoute(t, host, "\x00\x00\x00\x00\x00\x00\x1c\x40") // a number, as Envoy hands it
	exchange(t, host, clock, "id-num", "200", nil, true)
	onRoute(t, host, string(orders.AppendRouteJSON(nil)))
	exchange(t, host, clock, "id-o3", "200", nil, true)

	host.Tick()
	got := recordsByID(t, host)
	require.Len(t, got, 4)
	require.Equal(t, wire.CaptureRecord{Route: "orders", RequestID: "id-o1", Method: "GET", Target: "/r/1?q=a", Status: 200, LatencyMicros: 3000,
		BodyBytes: 2, Headers: [][2]string{{"content-type", "application/json"}, {"x-version", "2"}}, Body: []byte("{}")}, got["id-o1"])
	require.Equal(t, uint8(wire.FlagTooLarge), got["id-o2"].Flags)
	require.Equal(t, "orders", got["id-o3"].Route)
	require.Equal(t, wire.CaptureRecord{Route: "users", RequestID: "id-u1", Method: "GET", Target: "/r/1?q=a", Status: 200, LatencyMicros: 3000,
		BodyBytes: 7, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"a":1}`)}, got["id-u1"], "users keeps no x-version")
	require.EqualValues(t, 4, captureCounter(t, host, "records"))
	require.EqualValues(t, 4, captureCounter(t, host, "no_settings"), "no metadata, twice bad, a number")
	warns := strings.Join(host.GetWarnLogs(), "\n")
	require.Equal(t, 1, strings.Count(warns, "shadowlab.capture.report_cluster: unknown field"), "bad settings parsed and logged once: %s", warns)
	require.Contains(t, warns, "shadowlab.capture: expected '{'")
}

// An instance configured with a route captures it as before, unless the
// route's metadata says otherwise.
func TestCaptureRouteMetadataWins(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, captureConfig, clock)
	exchange(t, host, clock, "id-1", "200", []string{`{"a":1}`}, true)
	onRoute(t, host, `{"route":"other","headers":"set-cookie"}`)
	exchange(t, host, clock, "id-2", "200", []string{`{"a":1}`}, true)
	host.Tick()
	got := recordsByID(t, host)
	require.Equal(t, "r", got["id-1"].Route)
	require.Equal(t, [][2]string{{"content-type", "application/json"}, {"x-version", "2"}}, got["id-1"].Headers)
	require.Equal(t, "other", got["id-2"].Route)
	require.Equal(t, [][2]string{{"content-type", "application/json"}}, got["id-2"].Headers, "its own headers, never set-cookie")
	require.Zero(t, captureCounter(t, host, "no_settings"))
}

// Sampling is per route: each route's metadata has its own share and
// mark.
func TestCaptureRouteMetadataSamples(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, instanceConfig, clock)
	sampled := wire.CaptureConfig{Route: "half", SampleHeader: wire.HeaderSample, SamplePerMillion: 500_000, SampleStickyHeader: "x-user"}
	routes := map[string]string{"half": string(sampled.AppendRouteJSON(nil)), "all": `{"route":"all"}`}
	want := map[string]int{}
	users := 0
	for i := range 40 {
		user := "u" + string(rune('a'+i%26)) + string(rune('0'+i/26))
		for _, route := range []string{"half", "all"} {
			onRoute(t, host, routes[route])
			ctx := host.InitializeHttpContext()
			headers := [][2]string{{":method", "GET"}, {":path", "/"}, {wire.HeaderRequestID, route + "-" + user}, {"x-user", user}}
			require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, headers, true))
			mark := header(host.GetCurrentRequestHeaders(ctx), wire.HeaderSample)
			in := route == "all" || wire.Sampled(sampled.SampleKey("", requestHeaderOf(headers), ""), 500_000)
			if route == "half" {
				require.Equal(t, in, mark == wire.MarkOn, user)
				if in {
					users++
				}
			} else {
				require.Empty(t, mark, "the route that does not sample marks nothing")
			}
			if in {
				want[route]++
			}
			require.Equal(t, types.ActionContinue, host.CallOnResponseHeaders(ctx, [][2]string{{":status", "200"}}, true))
			host.CompleteHttpContext(ctx)
		}
	}
	require.Positive(t, users)
	require.Less(t, users, 40)
	host.Tick()
	got := map[string]int{}
	for _, r := range recordsByID(t, host) {
		got[r.Route]++
	}
	require.Equal(t, want, got)
	require.Equal(t, 40, got["all"])
}

func requestHeaderOf(headers [][2]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v := header(headers, name)
		return v, v != ""
	}
}

// The settings are parsed once per distinct value, and the cache is
// bounded: full, it starts over.
func TestCaptureRouteCache(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newCaptureHost(t, instanceConfig, clock)
	c := newCaptureContext(&vmContext{now: clock.now})
	first := `{"route":"r0"}`
	onRoute(t, host, first)
	r := c.route()
	require.Equal(t, "r0", r.cfg.Route)
	require.Equal(t, uint32(wire.DefaultCaptureBodyBytes), r.cfg.MaxBodyBytes)
	require.Same(t, r, c.route(), "cached: one property read and one map lookup")
	for i := 1; i < maxCachedRoutes; i++ {
		onRoute(t, host, `{"route":"r`+strconv.Itoa(i)+`"}`)
		require.NotNil(t, c.route())
	}
	require.Len(t, c.routes, maxCachedRoutes)
	onRoute(t, host, `{"route":"one more"}`)
	require.Equal(t, "one more", c.route().cfg.Route)
	require.Len(t, c.routes, 1, "full: cleared")
	onRoute(t, host, first)
	require.NotSame(t, r, c.route(), "parsed again")
}
