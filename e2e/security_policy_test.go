package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/wire"
)

// forgedHeadersPolicy has a route of each kind: plain, admitted (by the
// plugin and by the global server), mirrored, and mirrored and admitted.
const forgedHeadersPolicy = `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: admitted-local
    match: {pathPrefix: /admitted-local}
    primary: legacy
    admission: {rate: 1000/s, maxDelay: 5s, scope: local}
  - name: admitted-global
    match: {pathPrefix: /admitted-global}
    primary: legacy
    admission: {rate: 1000/s, maxDelay: 5s, scope: global}
  - name: mirrored
    match: {pathPrefix: /mirrored}
    primary: legacy
    shadow: {service: candidate, percent: 100, unsafeMethods: true}
  - name: mirrored-admitted
    match: {pathPrefix: /both}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    admission: {rate: 1000/s, maxDelay: 5s, scope: local}
  - name: held-local
    match: {pathPrefix: /held-local}
    primary: legacy
    admission: {rate: 1/3s, maxDelay: 1m, scope: local}
  - name: held-global
    match: {pathPrefix: /held-global}
    primary: legacy
    admission: {rate: 1/3s, maxDelay: 1m, scope: global}
  - name: plain
    match: {pathPrefix: /}
    primary: legacy
`

// TestForgedShadowlabHeaders: a client's x-shadowlab-* headers never reach
// the primary or the shadow, on any route; what shadowlab itself adds (the
// admission outcome for the upstream, the marks on the mirror) still does.
func TestForgedShadowlabHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, forgedHeadersPolicy, envOptions{})

	forged := map[string]string{
		wire.HeaderAdmission:           "forged",
		wire.HeaderHeldMs:              "999999",
		wire.HeaderShadow:              "forged",
		wire.HeaderRoute:               "forged",
		wire.HeaderDryRun:              "forged",
		wire.HeaderPrefix + "anything": "forged",
		// Upper case on the wire; Envoy compares header names lower-cased.
		"X-Shadowlab-Upper": "forged",
	}
	tests := map[string]struct {
		method, path string
		primary      map[string]string // every x-shadowlab-* header the primary gets
		shadow       map[string]string // nil: not mirrored
	}{
		"plain":                  {"GET", "/plain", map[string]string{}, nil},
		"plain write":            {"POST", "/plain/write", map[string]string{}, nil},
		"admitted by the plugin": {"GET", "/admitted-local/1", map[string]string{wire.HeaderAdmission: wire.AdmissionPassed}, nil},
		"admitted by the server": {"GET", "/admitted-global/1", map[string]string{wire.HeaderAdmission: wire.AdmissionPassed}, nil},
		"mirrored": {"GET", "/mirrored/1", map[string]string{},
			map[string]string{wire.HeaderShadow: wire.MarkOn, wire.HeaderRoute: "mirrored"}},
		"mirrored write": {"POST", "/mirrored/2", map[string]string{},
			map[string]string{wire.HeaderShadow: wire.MarkOn, wire.HeaderRoute: "mirrored", wire.HeaderDryRun: wire.MarkOn}},
		"mirrored and admitted": {"GET", "/both/1", map[string]string{wire.HeaderAdmission: wire.AdmissionPassed},
			map[string]string{wire.HeaderShadow: wire.MarkOn, wire.HeaderRoute: "mirrored-admitted", wire.HeaderAdmission: wire.AdmissionPassed}},
	}
	for _, tc := range tests {
		e.mustPrimary(tc.method, tc.path, forged)
	}

	// Two requests at once on a route that admits one per 3 s: one passes,
	// the other is held, and its held-ms is the plugin's or the server's.
	var wg sync.WaitGroup
	for _, scope := range []string{"local", "global"} {
		for i := range 2 {
			wg.Go(func() { // assert, not require: not the test's goroutine
				req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/held-%s/%d", e.ports.Listener, scope, i), nil)
				if !assert.NoError(t, err) {
					return
				}
				for k, v := range forged {
					req.Header.Set(k, v)
				}
				resp, err := e.client.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			})
		}
	}
	wg.Wait()

	primaries := byPath(t, e.legacy.Received())
	for _, scope := range []string{"local", "global"} {
		t.Run("held by "+scope, func(t *testing.T) {
			var outcomes []string
			for i := range 2 {
				got := shadowlabHeaders(primaries[fmt.Sprintf("/held-%s/%d", scope, i)])
				outcomes = append(outcomes, got[wire.HeaderAdmission])
				if got[wire.HeaderAdmission] == wire.AdmissionHeld {
					ms, err := strconv.Atoi(got[wire.HeaderHeldMs])
					require.NoError(t, err, "held-ms %q", got[wire.HeaderHeldMs])
					assert.Less(t, ms, 999999, "the client's held-ms reached the primary")
					delete(got, wire.HeaderHeldMs)
				}
				assert.Equal(t, map[string]string{wire.HeaderAdmission: got[wire.HeaderAdmission]}, got)
			}
			assert.ElementsMatch(t, []string{wire.AdmissionPassed, wire.AdmissionHeld}, outcomes)
		})
	}
	shadows := byPath(t, e.settle())
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := primaries[tc.path]
			require.True(t, ok, "the primary never saw %s", tc.path)
			assert.Equal(t, tc.primary, shadowlabHeaders(got), "x-shadowlab-* headers at the primary")
			sh, ok := shadows[tc.path]
			if tc.shadow == nil {
				assert.False(t, ok, "%s must not be mirrored", tc.path)
				return
			}
			require.True(t, ok, "the shadow never saw %s", tc.path)
			assert.Equal(t, tc.shadow, shadowlabHeaders(sh), "x-shadowlab-* headers at the shadow")
			assert.Equal(t, got.Headers[wire.HeaderRequestID], sh.Headers[wire.HeaderRequestID], "one request id on both sides")
		})
	}
}

func byPath(t *testing.T, rs []backend.Request) map[string]backend.Request {
	t.Helper()
	out := map[string]backend.Request{}
	for _, r := range rs {
		if r.Path == "/__ready_probe" {
			continue
		}
		_, dup := out[r.Path]
		require.False(t, dup, "%s received twice", r.Path)
		out[r.Path] = r
	}
	return out
}

// shadowlabHeaders are r's x-shadowlab-* headers.
func shadowlabHeaders(r backend.Request) map[string]string {
	out := map[string]string{}
	for k, v := range r.Headers {
		if strings.HasPrefix(strings.ToLower(k), wire.HeaderPrefix) {
			out[k] = v
		}
	}
	return out
}
