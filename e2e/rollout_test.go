package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// rolloutPolicy: orders compares what matters (the echo's service name is
// ignored), users compares everything (the two services' names differ:
// every pair is a diff). {{.Stage}} and {{.Extra}} are filled per phase.
const rolloutPolicy = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy: {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    timeout: 5s
    shadow: {service: candidate, percent: 100}
    compare: {ignore: ["$.service"]}
    rollout:
      stage: shadow
      stickyOn: x-user-id
      candidateTimeout: 400ms
      gates: {window: 1m, minPairs: 30, minCandidateRequests: 20, maxFallbackRate: 0.5, maxLatencyRatioP50: 5, maxLatencyRatioP99: 10}
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    rollout: {gates: {minPairs: 10}}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// The rollout end to end through the real Envoy, the real CLI and serve:
// gates that are inconclusive or failing refuse promote; a sticky 10 %
// canary, raised to 20 %, keeps its users; promoted, the candidate answers
// everyone; rollback returns them to the primary; a candidate that fails
// (5xx, slow past its timeout, resetting, killed) costs its users nothing,
// every fallback counted by reason, and its failing gate rolls the route
// back on its own — with Envoy never restarted.
func TestRollout(t *testing.T) {
	e := newEnv(t, rolloutPolicy, envOptions{})
	bin, err := harness.BuildShadowlab()
	require.NoError(t, err)
	api := "http://" + e.cpAddrs.api
	envoyPid := e.envoy.Pid()
	cli := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	promote := func(args ...string) (string, error) {
		return cli(append([]string{"promote", "--policy", e.policyPath, "--server", api}, args...)...)
	}
	verdict := func(route string) report.RouteRollout {
		t.Helper()
		body := apiGet(t, api+"/api/v1/rollout/"+route)
		var rr report.RouteRollout
		require.NoError(t, json.Unmarshal(body, &rr))
		return rr
	}
	get := func(path, user string) *http.Response {
		t.Helper()
		resp, _ := e.do(http.MethodGet, path, map[string]string{"x-user-id": user})
		return resp
	}
	waitStage := func(users []string, want string) {
		t.Helper()
		require.Eventually(t, func() bool {
			for _, u := range users {
				resp := get("/orders/1", u)
				if resp.StatusCode != 200 {
					t.Logf("waiting for %s: %s answered %s (%s)", want, u, resp.Status, resp.Header)
				}
				if resp.Header.Get(backend.HeaderBackend) != want {
					return false
				}
			}
			return true
		}, 10*time.Second, 100*time.Millisecond, "users never answered by %s", want)
	}

	// Gates: too few pairs is inconclusive, and refuses promote.
	for i := range 5 {
		e.mustPrimary(http.MethodGet, fmt.Sprintf("/orders/%d", i), nil)
	}
	require.Eventually(t, func() bool { return verdict("orders").Pairs == 5 }, 10*time.Second, 50*time.Millisecond)
	out, err := promote("--percent", "10", "orders")
	require.Error(t, err, out)
	require.Contains(t, out, "refused: the gates of route \"orders\" are inconclusive")
	require.Contains(t, out, "25 more compared pairs in the window")

	// A low match rate fails its gate, and refuses promote.
	for i := range 12 {
		e.mustPrimary(http.MethodGet, fmt.Sprintf("/users/%d", i), nil)
	}
	require.Eventually(t, func() bool { return verdict("users").Verdict == report.Fail }, 10*time.Second, 50*time.Millisecond)
	out, err = promote("users")
	require.Error(t, err, out)
	require.Contains(t, out, "are fail")
	require.Contains(t, out, "match_rate")

	// Enough matching pairs: promote to a 10 % canary.
	for i := range 30 {
		e.mustPrimary(http.MethodGet, fmt.Sprintf("/orders/%d", i), nil)
	}
	require.Eventually(t, func() bool { return verdict("orders").Verdict == report.Pass }, 10*time.Second, 50*time.Millisecond)
	out, err = promote("--percent", "10", "orders")
	require.NoError(t, err, out)
	require.Contains(t, out, "shadow → canary at 10 %")

	// Sticky: the candidate answers exactly the users wire.InCanary picks,
	// every time, and nobody else.
	users := make([]string, 300)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	canaryAt := func(perMillion uint32) (in, out []string) {
		for _, u := range users {
			if wire.InCanary("user:"+u, perMillion) {
				in = append(in, u)
			} else {
				out = append(out, u)
			}
		}
		return in, out
	}
	in10, out10 := canaryAt(100_000)
	require.InDelta(t, 30, len(in10), 15)
	waitStage(in10[:1], "candidate")
	checkSides := func(in, out []string) {
		t.Helper()
		for range 2 {
			for _, u := range in {
				resp := get("/orders/7", u)
				require.Equal(t, 200, resp.StatusCode)
				require.Equal(t, "candidate", resp.Header.Get(backend.HeaderBackend), "canary user %s", u)
			}
			for _, u := range out {
				require.Equal(t, "legacy", get("/orders/7", u).Header.Get(backend.HeaderBackend), "user %s is not in the canary", u)
			}
		}
	}
	pairsBefore := verdict("orders").Pairs
	checkSides(in10, out10)
	// The users outside the canary are still mirrored and compared; those
	// in it are not (the candidate answers them).
	require.Eventually(t, func() bool { return verdict("orders").Pairs >= pairsBefore+2*len(out10) }, 10*time.Second, 50*time.Millisecond,
		"pairs %d, want %d: %s", verdict("orders").Pairs, pairsBefore+2*len(out10), apiGet(t, api+"/api/v1/routes/orders"))

	// Raised to 20 %: the 10 % stay, others join.
	out, err = promote("--percent", "20", "orders")
	require.NoError(t, err, out)
	in20, out20 := canaryAt(200_000)
	for _, u := range in10 {
		require.Contains(t, in20, u)
	}
	waitStage(in20[len(in20)-1:], "candidate")
	checkSides(in20, out20)

	// Promoted: the candidate answers everyone. Rolled back: nobody.
	require.Eventually(t, func() bool { return verdict("orders").Verdict == report.Pass }, 10*time.Second, 50*time.Millisecond)
	out, err = promote("orders")
	require.NoError(t, err, out)
	require.Contains(t, out, "canary → promoted")
	waitStage(users[:50], "candidate")
	out, err = cli("rollback", "--policy", e.policyPath, "orders")
	require.NoError(t, err, out)
	require.Contains(t, out, "promoted → shadow")
	waitStage(users[:50], "legacy")
	out, err = cli("status", "--server", api, "orders")
	require.NoError(t, err, out)
	require.Contains(t, out, "orders: shadow")

	// Canary with automatic rollback, a fresh window (its length changed).
	// The candidate fails every way it can; its users see only the legacy
	// service's answers.
	data, err := os.ReadFile(e.policyPath)
	require.NoError(t, err)
	edited := strings.Replace(string(data), "window: 1m", "window: 2m", 1)
	edited = strings.Replace(edited, "stage: shadow", "stage: canary\n      autoRollback: true", 1)
	edited = strings.Replace(edited, "minCandidateRequests: 20", "minCandidateRequests: 60", 1)
	require.NoError(t, policy.WriteFile(e.policyPath, []byte(edited)))
	waitStage(in20[:1], "candidate")
	require.Eventually(t, func() bool { return verdict("orders").CandidateRequests >= 1 }, 10*time.Second, 50*time.Millisecond)
	before := verdict("orders").CandidateRequests

	fallbackPhase := func(what string, n int) {
		t.Helper()
		for i := range n {
			u := in20[i%len(in20)]
			start := time.Now()
			resp := get("/orders/9", u)
			require.Equal(t, 200, resp.StatusCode, "%s: user %s", what, u)
			require.Equal(t, "legacy", resp.Header.Get(backend.HeaderBackend), "%s: user %s", what, u)
			require.Less(t, time.Since(start), 3*time.Second, what)
		}
	}
	e.candidate.SetFault(backend.Fault{Status: 503})
	fallbackPhase("candidate answering 503", 15)
	e.candidate.SetFault(backend.Fault{Delay: 2 * time.Second})
	fallbackPhase("candidate slower than its 400ms", 15)
	e.candidate.SetFault(backend.Fault{Reset: true})
	fallbackPhase("candidate resetting", 15)
	e.candidate.SetFault(backend.Fault{})
	require.NoError(t, e.candidate.Close())
	fallbackPhase("candidate killed", 14)
	// An unsafe method that is not idempotent falls back only when the
	// candidate never saw it: a refused connection is such a case.
	resp, body := e.do(http.MethodPost, "/orders/9", map[string]string{"x-user-id": in20[0]})
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Equal(t, "legacy", resp.Header.Get(backend.HeaderBackend))

	var rr report.RouteRollout
	require.Eventually(t, func() bool {
		rr = verdict("orders")
		return rr.CandidateRequests-before >= 60
	}, 10*time.Second, 50*time.Millisecond)
	t.Logf("fallbacks by reason: %v, failed: %d, candidate requests: %d", rr.Fallbacks, rr.Failed, rr.CandidateRequests)
	require.Equal(t, 15, rr.Fallbacks[report.Reason5xx])
	require.Equal(t, 15, rr.Fallbacks[report.ReasonTimeout])
	require.Equal(t, 15, rr.Fallbacks[report.ReasonReset])
	require.Equal(t, 15, rr.Fallbacks[report.ReasonConnectFailure])
	require.Zero(t, rr.Failed, "no user got an error")
	metrics := string(apiGet(t, api+"/metrics"))
	require.Contains(t, metrics, `shadowlab_rollout_fallbacks_total{reason="timeout",route="orders"} 15`)

	// The fallback gate failed: serve rolled the route back, in the file.
	require.Eventually(t, func() bool {
		p, err := policy.Load(e.policyPath)
		return err == nil && p.Route("orders").Rollout.Stage == policy.StageShadow
	}, 15*time.Second, 100*time.Millisecond, "no automatic rollback")
	time.Sleep(time.Second) // serve follows the file; Envoy receives the route without the canary
	rr = verdict("orders")
	for _, u := range in20[:10] {
		require.Equal(t, "legacy", get("/orders/1", u).Header.Get(backend.HeaderBackend))
	}
	time.Sleep(500 * time.Millisecond) // the access logs' flush
	require.Equal(t, rr.CandidateRequests, verdict("orders").CandidateRequests, "the candidate is asked nothing any more")
	require.Equal(t, envoyPid, e.envoy.Pid(), "Envoy was never restarted")
}

func apiGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, b.String())
	return []byte(b.String())
}

// Sticky sampling: at 30 % of the users by x-user-id, each user is
// mirrored on every request or on none, exactly the users the plugin's
// hash picks; raising it to 60 % keeps them.
func TestStickySampling(t *testing.T) {
	const tmpl = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy: {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: items
    match: {pathPrefix: /items}
    primary: legacy
    shadow: {service: candidate, percent: PERCENT, stickyOn: x-user-id}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`
	e := newEnv(t, strings.Replace(tmpl, "PERCENT", "30", 1), envOptions{})
	users := make([]string, 120)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	cfg := wire.CaptureConfig{SampleStickyHeader: "x-user-id"}
	sampled := func(u string, perMillion uint32) bool {
		return wire.Sampled(cfg.SampleKey("", func(string) (string, bool) { return u, true }, ""), perMillion)
	}
	run := func(perMillion uint32) map[string]int {
		t.Helper()
		e.resetBackends()
		for range 2 {
			for _, u := range users {
				e.mustPrimary(http.MethodGet, "/items/1", map[string]string{"x-user-id": u})
			}
		}
		got := map[string]int{}
		for _, r := range e.settle() {
			got[r.Headers["x-user-id"]]++
		}
		for _, u := range users {
			want := 0
			if sampled(u, perMillion) {
				want = 2
			}
			require.Equal(t, want, got[u], "user %s at %d per million", u, perMillion)
		}
		return got
	}
	at30 := run(300_000)
	require.InDelta(t, 36, len(at30), 18)
	e.writePolicy(strings.Replace(tmpl, "PERCENT", "60", 1))
	probe := ""
	for _, u := range users {
		if sampled(u, 600_000) && !sampled(u, 300_000) {
			probe = u
			break
		}
	}
	require.Eventually(t, func() bool {
		e.resetBackends()
		e.mustPrimary(http.MethodGet, "/items/1", map[string]string{"x-user-id": probe})
		return len(e.settle()) == 1
	}, 10*time.Second, 100*time.Millisecond)
	at60 := run(600_000)
	for u := range at30 {
		require.Contains(t, at60, u, "a sampled user stays sampled when the share grows")
	}
}
