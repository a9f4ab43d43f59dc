package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
)

// apiPolicy mirrors every request of the example billing API and compares
// the answers.
const apiPolicy = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: billing-records
    match: {pathPrefix: /billing/records}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {numericTolerance: 0.001}
  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {numericTolerance: 0.001}
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {redact: [ssn], headers: [content-type]}
  - name: gzipped
    match: {pathPrefix: /gz/}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {numericTolerance: 0.001}
  - name: large
    match: {pathPrefix: /large/}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {maxBodyBytes: 4096}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// apiEnv is an env whose services answer as the example billing API:
// legacy as written, candidate with its seeded differences.
func apiEnv(t *testing.T, policy string, opts envOptions) *env {
	opts.api = true
	return newEnv(t, policy, opts)
}

// routeReport polls the report until route has want pairs, and returns it.
func (e *env) routeReport(route string, want int) report.RouteReport {
	e.t.Helper()
	var got report.RouteReport
	require.Eventually(e.t, func() bool {
		for _, r := range e.cp.Reporter.Report().Routes {
			if r.Route == route {
				got = r
				return r.Pairs >= want
			}
		}
		return false
	}, 20*time.Second, 25*time.Millisecond, "route %s: want %d pairs, have %+v", route, want, got.Outcomes)
	return got
}

// differences maps "pattern kind" to count.
func differences(r report.RouteReport) map[string]int {
	out := map[string]int{}
	for _, d := range r.Differences {
		out[d.Pattern+" "+string(d.Kind)] = d.Count
	}
	return out
}

func noise(r report.RouteReport) []string {
	var out []string
	for _, n := range r.Noise {
		out = append(out, n.Pattern)
	}
	sort.Strings(out)
	return out
}

// TestCaptureReportsSeededDifferences drives the example API through Envoy
// with every request mirrored and checks that the report holds exactly the
// candidate's seeded differences, with noise learned and set apart, that
// each client got the primary's exact bytes, and that the candidate's slower
// endpoint shows in the latencies.
func TestCaptureReportsSeededDifferences(t *testing.T) {
	t.Parallel()
	e := apiEnv(t, apiPolicy, envOptions{})
	const ids, rounds = 24, 5 // each path requested 5 times: noise needs repeats

	sums := map[string]string{} // request id → sha256 of the body the client got
	for range rounds {
		for n := range ids {
			for _, prefix := range []string{"/billing/records/", "/orders/", "/users/"} {
				resp, body := e.do("GET", fmt.Sprintf("%s%d", prefix, n), nil)
				require.Equal(t, "legacy", resp.Header.Get(backend.HeaderBackend))
				sum := sha256.Sum256(body)
				sums[resp.Header.Get(backend.HeaderRequestID)] = hex.EncodeToString(sum[:])
			}
		}
	}
	for _, r := range e.legacy.Received() {
		require.Equal(t, r.ResponseSHA256, sums[r.Headers["x-request-id"]], "%s: the client must get the primary's bytes", r.Path)
	}

	count := func(pred func(int) bool) int {
		c := 0
		for n := range ids {
			if pred(n) {
				c++
			}
		}
		return c * rounds
	}
	want := map[string]map[string]int{}
	for _, d := range backend.SeededDifferences {
		if want[d.Route] == nil {
			want[d.Route] = map[string]int{}
		}
		want[d.Route][d.Pattern+" "+d.Kind] = count(d.Applies)
	}
	wantNoise := map[string][]string{
		"billing-records": {"$.generated_at", "$.request_uuid"},
		"orders":          {"$.generated_at", "$.nonce"},
		"users":           {"$.generated_at"},
	}
	for _, route := range []string{"billing-records", "orders", "users"} {
		var r report.RouteReport
		// Noise reaches the report within a second of being learned.
		require.Eventually(t, func() bool {
			r = e.routeReport(route, ids*rounds)
			return assert.ObjectsAreEqual(want[route], differences(r))
		}, 10*time.Second, 50*time.Millisecond, "route %s: differences", route)
		assert.Equal(t, want[route], differences(r), "route %s", route)
		assert.Equal(t, wantNoise[route], noise(r), "route %s: noise", route)
		assert.Equal(t, ids*rounds, r.Outcomes[report.Match]+r.Outcomes[report.Diff], "route %s: every pair compared: %v %v", route, r.Outcomes, r.Reasons)
		for _, d := range r.Differences {
			for _, s := range d.Samples {
				assert.NotEmpty(t, s.RequestID)
			}
		}
		t.Logf("%s: %v, match rate %.3f, differences %v, noise %v, latency p50 primary %.2f ms shadow %.2f ms",
			route, r.Outcomes, *r.MatchRate, differences(r), noise(r), r.Latency.Primary.P50, r.Latency.Shadow.P50)
	}
	orders := e.routeReport("orders", ids*rounds)
	assert.Greater(t, orders.Latency.Shadow.P50, orders.Latency.Primary.P50+float64(backend.SlowerDelay.Milliseconds())*0.8,
		"the candidate's /orders is %v slower", backend.SlowerDelay)
}

// TestCaptureForgedDuplicateIDs: on a listener that trusts client ids, two
// different requests sent with one id must never be paired with each other:
// the id is reported ambiguous.
func TestCaptureForgedDuplicateIDs(t *testing.T) {
	t.Parallel()
	e := apiEnv(t, strings.Replace(apiPolicy, `address: "{{.Listener}}"}`, `address: "{{.Listener}}", trustRequestID: true}`, 1), envOptions{})
	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		for _, path := range []string{fmt.Sprintf("/users/%d", i+1), fmt.Sprintf("/users/%d", i+101)} {
			wg.Go(func() {
				e.mustPrimaryAPI("GET", path, map[string]string{"x-request-id": fmt.Sprintf("dup-%d", i)})
			})
		}
	}
	wg.Wait()
	r := e.routeReport("users", n)
	assert.Equal(t, n, r.Outcomes[report.Ambiguous], "outcomes %v, reasons %v", r.Outcomes, r.Reasons)
	assert.Zero(t, r.Outcomes[report.Diff], "a forged id must not pair different requests: %v", differences(r))
}

// mustPrimaryAPI sends a request and checks the primary answered it.
func (e *env) mustPrimaryAPI(method, path string, headers map[string]string) []byte {
	e.t.Helper()
	resp, body := e.do(method, path, headers)
	require.Equal(e.t, "legacy", resp.Header.Get(backend.HeaderBackend), "%s %s", method, path)
	return body
}

// TestCaptureBodiesLargeAndGzip: a body over the route's limit is counted as
// skipped (never compared truncated); gzip-encoded bodies are decoded and
// compared.
func TestCaptureBodiesLargeAndGzip(t *testing.T) {
	t.Parallel()
	e := apiEnv(t, apiPolicy, envOptions{})
	for range 3 {
		e.mustPrimaryAPI("GET", "/large/100", nil)
		e.mustPrimaryAPI("GET", "/large/10000", nil)
		e.mustPrimaryAPI("GET", "/gz/orders/3", nil)
	}
	large := e.routeReport("large", 6)
	assert.Equal(t, 3, large.Outcomes[report.Skipped], "%v %v", large.Outcomes, large.Reasons)
	assert.Equal(t, 3, large.Outcomes[report.Match], "%v %v", large.Outcomes, large.Reasons)
	for reason := range large.Reasons[report.Skipped] {
		assert.Contains(t, reason, "over the limit")
	}
	gz := e.routeReport("gzipped", 3)
	d := differences(gz)
	assert.Equal(t, 3, d["$.order.total changed"], "gzip bodies decoded and compared: %v %v", d, gz.Reasons)
	assert.Equal(t, 3, d["$.order.priority added"], "%v", d)
}

// TestCaptureServerDown stops the whole of serve (capture included) under
// traffic: no client request fails, and capture resumes when it is back.
func TestCaptureServerDown(t *testing.T) {
	t.Parallel()
	cfg := serve.Config{Report: report.Config{DBPath: filepath.Join(t.TempDir(), "shadowlab.db")}}
	e := apiEnv(t, apiPolicy, envOptions{serve: cfg})
	for n := range 10 {
		e.mustPrimaryAPI("GET", fmt.Sprintf("/orders/%d", n), nil)
	}
	e.routeReport("orders", 10)

	// Kill it while requests are in flight.
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				resp, err := e.client.Get(fmt.Sprintf("http://%s/orders/%d", e.ports.Listener, w*100+i))
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	require.Eventually(t, func() bool { return e.legacy.Count() >= 10+40 }, 10*time.Second, time.Millisecond,
		"load did not start") // the kill lands mid-run
	e.cp.stop()
	final := e.routeReport("orders", 10) // what the stopped serve had flushed
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("client request failed while capture was down: %v", err)
	}

	e.cp = e.startControlPlane(cfg, nil)
	restored := e.routeReport("orders", final.Pairs)
	assert.Equal(t, final.Pairs, restored.Pairs, "results survive the restart (SQLite)")
	assert.Equal(t, final.Differences, restored.Differences, "results survive the restart (SQLite)")
	require.Eventually(t, func() bool {
		e.mustPrimaryAPI("GET", "/orders/1", nil)
		for _, r := range e.cp.Reporter.Report().Routes {
			if r.Route == "orders" && r.Pairs > restored.Pairs {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "capture did not resume")
}

// TestReportCommand reads a running serve's report with the real
// `shadowlab report` binary, as a table and as JSON.
func TestReportCommand(t *testing.T) {
	t.Parallel()
	e := apiEnv(t, apiPolicy, envOptions{})
	for range 3 {
		for n := range 8 {
			e.mustPrimaryAPI("GET", fmt.Sprintf("/orders/%d", n), nil)
		}
	}
	e.routeReport("orders", 24)

	bin, err := harness.BuildShadowlab()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append([]string{"report", "--server", "http://" + e.cpAddrs.api}, args...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "stderr: %s", stderr.String())
		return stdout.String()
	}
	table := run("--route", "orders")
	assert.Contains(t, table, "orders")
	assert.Contains(t, table, "$.order.priority")
	asJSON := run("--json")
	assert.Contains(t, asJSON, `"route": "orders"`)
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSecretsNeverLeave sends credentials (Authorization, Cookie, a token in
// the query) through mirrored routes whose answers differ on a redacted
// field, then looks for them everywhere shadowlab writes: the SQLite store,
// the logs, /metrics and every API answer. None may hold them.
func TestSecretsNeverLeave(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	db := filepath.Join(t.TempDir(), "shadowlab.db")
	e := apiEnv(t, apiPolicy, envOptions{logs: logs, serve: serve.Config{Report: report.Config{DBPath: db}}})
	secrets := map[string]string{
		"authorization": "Bearer SECRET-TOKEN-1",
		"cookie":        "session=SECRET-COOKIE-2",
	}
	for round := range 3 {
		for n := range 10 { // users n%10==3: ssn differs, a redacted field
			e.mustPrimaryAPI("GET", fmt.Sprintf("/users/%d?access_token=SECRET-QUERY-3&r=%d", n, round), secrets)
		}
	}
	r := e.routeReport("users", 30)
	require.Contains(t, differences(r), "$.user.ssn changed", "the redacted field must still be reported as differing")

	var everything strings.Builder
	for _, path := range []string{"/metrics", "/api/v1/report", "/api/v1/routes/users", "/api/v1/pairs?route=users&limit=1000"} {
		resp, err := e.client.Get("http://" + e.cpAddrs.api + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		everything.Write(body)
	}
	e.cp.stop() // flushes and closes the store
	stored, err := os.ReadFile(db)
	require.NoError(t, err)
	wal, _ := os.ReadFile(db + "-wal")
	everything.Write(stored)
	everything.Write(wal)
	everything.WriteString(logs.String())

	for _, secret := range []string{"SECRET-TOKEN-1", "SECRET-COOKIE-2", "SECRET-QUERY-3", backend.SSNPrefix} {
		assert.NotContains(t, everything.String(), secret, "a secret left shadowlab")
	}
	assert.Contains(t, everything.String(), "[redacted]", "redacted samples are still shown")
}
