package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/gateway"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/wire"
)

// boundsPolicy has a route whose real pairs must keep being recorded
// (real), a route the attacks flood (flood: wide open, so that the
// gateway's byte budget, not its slots, is what bounds it), and a route
// with local admission.
const boundsPolicy = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: real
    match: {pathPrefix: /real}
    primary: legacy
    shadow: {service: candidate, percent: 100}
  - name: flood
    match: {pathPrefix: /flood}
    primary: legacy
    shadow: {service: candidate, percent: 100, maxConcurrent: 1000, maxRequestBytes: 2000000}
  - name: jobs
    match: {pathPrefix: /jobs}
    primary: legacy
    admission: {rate: 1000/s, mode: reject, scope: local}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// Bounds the attacks are held to.
const (
	// boundsGatewayBuffered is serve's --gateway-max-buffered here.
	boundsGatewayBuffered = 64 << 20
	// boundsPeakRSS bounds serve's peak resident memory over all the
	// attacks: the gateway's buffer, the pairer's pending halves (at most
	// 10 000 ids; the flood's are 1 KiB each) and the runtime's own.
	boundsPeakRSS = 256 << 20
)

// TestSecurityBounds runs, against `shadowlab serve` as a process behind a
// real Envoy, each attack of a peer that reaches serve's ports, and checks
// the refusal or the bound, that real pairs of another route are still
// recorded meanwhile, and serve's peak memory. SECURITY_SERVE_BIN runs the
// same attacks against another shadowlab binary (an earlier build) to
// compare peak memory; its assertions then say what that build lacks.
func TestSecurityBounds(t *testing.T) {
	type peak struct{ start, end int64 }
	var mu sync.Mutex
	peaks := map[string]peak{}
	var order []string
	// attack runs one attack against a serve of its own, and checks and
	// records serve's peak RSS before and after it.
	attack := func(name string, run func(t *testing.T, e *boundsEnv)) {
		t.Run(name, func(t *testing.T) {
			e := startBoundsEnv(t)
			e.realPairs(t, 10, "warm-up")
			start, err := harness.PeakRSS(e.serve.Pid())
			require.NoError(t, err)
			defer func() {
				end, err := harness.PeakRSS(e.serve.Pid())
				require.NoError(t, err)
				mu.Lock()
				peaks[name] = peak{start, end}
				order = append(order, name)
				mu.Unlock()
				assert.Less(t, end, int64(boundsPeakRSS), "serve's peak RSS %.1f MiB over the bound %d MiB", float64(end)/(1<<20), boundsPeakRSS>>20)
				ready, err := e.http.Get("http://" + e.api + "/readyz")
				if assert.NoError(t, err) {
					ready.Body.Close()
					assert.Equal(t, http.StatusOK, ready.StatusCode, "/readyz after the attack")
				}
			}()
			run(t, e)
		})
	}
	t.Cleanup(func() {
		for _, name := range order {
			t.Logf("serve peak RSS, %-38s %6.1f MiB before, %6.1f MiB after", name+":",
				float64(peaks[name].start)/(1<<20), float64(peaks[name].end)/(1<<20))
		}
	})

	attack("invented admission routes", func(t *testing.T, e *boundsEnv) {
		var body bytes.Buffer
		var c wire.Counts
		c.Admitted = 1
		for batch := range 20 {
			body.Reset()
			for i := range 10_000 {
				body.Write(wire.AppendReportLine(nil, fmt.Sprintf("invented-%d-%d", batch, i), "", &c))
			}
			body.Write(wire.AppendReportLine(nil, "jobs", "k", &c))
			assert.Equal(t, http.StatusNoContent, e.post(t, wire.ReportPath, body.Bytes()))
		}
		var adm []report.AdmissionReport
		e.getJSON(t, "/api/v1/admission", &adm)
		for _, a := range adm {
			require.False(t, strings.HasPrefix(a.Route, "invented-"), "an invented route was counted: %+v", a)
		}
		assert.GreaterOrEqual(t, e.metric(`shadowlab_admission_plugin_lines_dropped_total{reason="unknown_route"}`), 200_000.0)
		assert.Less(t, len(e.get(t, "/metrics")), 1<<20, "/metrics stays small")
	})

	attack("forged capture batches", func(t *testing.T, e *boundsEnv) {
		assert.Equal(t, http.StatusRequestEntityTooLarge, e.post(t, wire.CapturePath, make([]byte, 17<<20)))
		assert.Equal(t, http.StatusBadRequest, e.post(t, wire.CapturePath, []byte("not a batch")))
		before := e.metric(`shadowlab_capture_dropped_total{reason="unknown_route"}`)
		var batch []byte
		for i := range 5000 {
			batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: fmt.Sprint("nope-", i), RequestID: fmt.Sprint("id-", i), Method: "GET", Target: "/x", Status: 200})
		}
		assert.Equal(t, http.StatusNoContent, e.post(t, wire.CapturePath, batch))
		assert.Equal(t, before+5000, e.metric(`shadowlab_capture_dropped_total{reason="unknown_route"}`))
	})

	attack("lone-half flood", func(t *testing.T, e *boundsEnv) {
		// 30 000 lone primary halves with invented ids on route flood
		// (three times the pending cap) while real requests go through
		// Envoy on route real.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var sent int
		wg.Go(func() {
			body := bytes.Repeat([]byte("x"), 1024)
			for n := 0; n < 30 || ctx.Err() == nil; n++ {
				var batch []byte
				for i := range 1000 {
					batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: "flood", RequestID: fmt.Sprintf("lone-%d-%d", n, i),
						Method: "GET", Target: "/flood", Status: 200, BodyBytes: 1024, Body: body})
				}
				if e.post(t, wire.CapturePath, batch) == http.StatusNoContent {
					sent += 1000
				}
			}
		})
		require.Eventually(t, func() bool { return e.metric("shadowlab_capture_pending") >= 9000 }, time.Minute, 100*time.Millisecond,
			"the flood never filled pending")
		e.realPairs(t, 50, "during the flood")
		cancel()
		wg.Wait()
		t.Logf("%d lone halves sent; pending %v, evicted %v, dropped as pending_full %v", sent,
			e.metric("shadowlab_capture_pending"), e.metric(`shadowlab_capture_dropped_total{reason="pending_evicted"}`),
			e.metric(`shadowlab_capture_dropped_total{reason="pending_full"}`))
	})

	attack("slowloris", func(t *testing.T, e *boundsEnv) {
		// 50 connections on each of the API and the gateway send a whole
		// header and then their body one byte a second: each is closed.
		var conns []net.Conn
		for i := range 50 {
			conns = append(conns,
				e.slowRequest(t, e.api, "POST "+wire.CapturePath+" HTTP/1.1\r\nHost: api\r\nContent-Length: 100000\r\n\r\n"),
				e.slowRequest(t, e.gateway, mirroredRequest("flood", fmt.Sprint("slow-", i), 100000)))
		}
		closed := make(chan struct{}, len(conns))
		stop := make(chan struct{})
		defer close(stop)
		for _, c := range conns {
			go trickle(c, stop, closed)
		}
		for range conns {
			select {
			case <-closed:
			case <-time.After(3 * time.Minute):
				t.Fatal("a connection sending a byte a second was never closed")
			}
		}
	})

	attack("slow 1000 KiB uploads to the gateway", func(t *testing.T, e *boundsEnv) {
		// 300 uploads of 1000 KiB, all but the last byte sent, held open.
		const size = 1000 << 10
		var mu sync.Mutex
		var conns []net.Conn
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Go(func() {
				c, err := net.Dial("tcp", e.gateway)
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				_, _ = io.WriteString(c, mirroredRequest("flood", fmt.Sprint("upload-", i), size))
				_, _ = c.Write(make([]byte, size-1)) // a shed upload is answered 503 and may be cut off
			})
		}
		wg.Wait()
		assert.LessOrEqual(t, e.metric(`shadowlab_gateway_buffered_bytes`), float64(boundsGatewayBuffered))
		e.realPairs(t, 20, "while uploads are held")
		for _, c := range conns {
			c.Close()
		}
	})

}

// boundsEnv is serve (a process), Envoy and the two example services.
type boundsEnv struct {
	api, gateway, listener string
	serve                  *harness.Proc
	http                   *http.Client
}

func startBoundsEnv(t *testing.T) *boundsEnv {
	t.Helper()
	lab := harness.Test(t)
	ctx := context.Background()
	legacy, err := lab.BackendProc(ctx, "legacy")
	require.NoError(t, err)
	candidate, err := lab.BackendProc(ctx, "candidate")
	require.NoError(t, err)
	p := ports{Listener: freeAddr(t), Legacy: legacy, Candidate: candidate}
	policyPath := filepath.Join(lab.Dir, "policy.yaml")
	writePolicy(t, policyPath, boundsPolicy, p)

	bin := os.Getenv("SECURITY_SERVE_BIN")
	if bin == "" {
		bin, err = harness.BuildShadowlab()
		require.NoError(t, err)
	}
	e := &boundsEnv{api: freeAddr(t), gateway: freeAddr(t), listener: p.Listener, http: &http.Client{Timeout: time.Minute}}
	xdsAddr := freeAddr(t)
	e.serve, err = lab.ServeProcBin(ctx, bin, serve.Config{PolicyPath: policyPath, XDSAddress: xdsAddr, GatewayAddress: e.gateway,
		APIAddress: e.api, AdmissionAddress: freeAddr(t),
		Gateway: gateway.Config{MaxBufferedBytes: boundsGatewayBuffered}, Pairer: pair.Config{Grace: 200 * time.Millisecond}})
	require.NoError(t, err)
	boot, err := harness.DynamicBootstrap("e2e-"+t.Name(), xdsAddr, false)
	require.NoError(t, err)
	_, err = lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot})
	require.NoError(t, err)
	waitRouted(t, p.Listener, 30*time.Second)
	return e
}

// realPairs sends n requests through Envoy on route real and waits until
// at least 90 % of them are recorded as compared pairs (match or diff).
func (e *boundsEnv) realPairs(t *testing.T, n int, when string) {
	t.Helper()
	compared := func() int {
		var rr report.RouteReport
		res, err := e.http.Get("http://" + e.api + "/api/v1/routes/real")
		require.NoError(t, err)
		defer res.Body.Close()
		if res.StatusCode == http.StatusNotFound {
			return 0
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&rr))
		return rr.Outcomes[report.Match] + rr.Outcomes[report.Diff]
	}
	before := compared()
	for i := range n {
		res, err := e.http.Get(fmt.Sprintf("http://%s/real/%s/%d", e.listener, strings.ReplaceAll(when, " ", "-"), i))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	want := before + n*9/10
	var got int
	ok := assert.Eventually(t, func() bool { got = compared(); return got >= want }, 90*time.Second, 200*time.Millisecond)
	if !ok {
		t.Errorf("%s: %d of %d real pairs recorded", when, got-before, n)
	}
}

func (e *boundsEnv) post(t *testing.T, path string, body []byte) int {
	t.Helper()
	res, err := e.http.Post("http://"+e.api+path, "application/octet-stream", bytes.NewReader(body))
	if err != nil { // a refused oversized body may be cut off
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func (e *boundsEnv) get(t *testing.T, path string) []byte {
	t.Helper()
	res, err := e.http.Get("http://" + e.api + path)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return b
}

func (e *boundsEnv) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(e.get(t, path), v))
}

// metric is the value of the series named series (with its labels, as
// /metrics prints them) on serve's /metrics; 0 when absent, -1 when
// /metrics does not answer within 10s (it never fails the test itself: it
// is also polled from Eventually's goroutine).
func (e *boundsEnv) metric(series string) float64 {
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + e.api + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	if sc.Err() != nil {
		return -1
	}
	return 0
}

// slowRequest connects to addr and sends head (a request line and
// headers); the body is then trickled.
func (e *boundsEnv) slowRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = io.WriteString(c, head)
	require.NoError(t, err)
	return c
}

// trickle sends c one body byte a second until the server closes it (a
// read or a write fails), then signals closed.
func trickle(c net.Conn, stop <-chan struct{}, closed chan<- struct{}) {
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c) // returns when the server closes
		close(gone)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-gone:
			closed <- struct{}{}
			return
		case <-stop:
			return
		case <-tick.C:
			if _, err := c.Write([]byte("x")); err != nil {
				<-gone
				closed <- struct{}{}
				return
			}
		}
	}
}

// mirroredRequest is the head of a request as Envoy mirrors it to the
// gateway for route, with a body of size bytes.
func mirroredRequest(route, id string, size int) string {
	return fmt.Sprintf("GET /%s/x HTTP/1.1\r\nHost: shop\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
		route, wire.HeaderShadow, wire.MarkOn, wire.HeaderRoute, route, wire.HeaderRequestID, id, size)
}
