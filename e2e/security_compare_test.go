package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
)

// hostilePolicy mirrors /attack/ to a hostile shadow and /real/ to an
// honest one; both primaries are the same service.
const hostilePolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  primary: {endpoints: ["{{.primary}}"]}
  hostile: {endpoints: ["{{.hostile}}"]}
  honest:  {endpoints: ["{{.honest}}"]}
routes:
  - name: attacked
    match: {pathPrefix: /attack/}
    primary: primary
    shadow: {service: hostile, percent: 100}
    compare: {maxBodyBytes: 2097152}
  - name: real
    match: {pathPrefix: /real/}
    primary: primary
    shadow: {service: honest, percent: 100}
  - name: rest
    match: {pathPrefix: /}
    primary: primary
`

// The secrets the services echo: none may leave shadowlab.
var echoedSecrets = []string{"PRIMARY-PASSWORD-1", "SHADOW-PASSWORD-2", "PRIMARY-ACCESS-3", "SHADOW-ACCESS-4",
	"PRIMARY-APIKEY-5", "SHADOW-APIKEY-6", "QUERY-TOKEN-7", "FORM-REFRESH-8", "FORM-REFRESH-9"}

// gzipped is body gzip-encoded.
func gzipped(t *testing.T, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(body)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// zeroBomb is decoded bytes of zeros through gzip: about 1.3 KB on the wire
// per MiB.
func zeroBomb(t *testing.T, decoded int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	require.NoError(t, err)
	zeros := make([]byte, 1<<20)
	for n := decoded; n > 0; n -= len(zeros) {
		_, err := w.Write(zeros[:min(n, len(zeros))])
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// TestHostileShadowAnswers: a shadow answering a corrupt gzip body, a
// 600 MiB gzip bomb and echoes of secrets (JSON members, a query string in
// an echoed URL, a form body) gets undecodable findings, pairs skipped as
// too large decoded and [redacted] samples — never a match, never a secret
// in the API, /metrics, the logs or the SQLite file — while the real pairs
// of another route are still recorded, all matching.
func TestHostileShadowAnswers(t *testing.T) {
	t.Parallel()
	good := gzipped(t, []byte(`{"items":[1,2,3],"total":6}`))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 0x5a
	bomb := zeroBomb(t, 600<<20)
	t.Logf("bomb: %d bytes on the wire, 600 MiB decoded", len(bomb))

	answer := func(hostile bool) func(w http.ResponseWriter, r *http.Request, body []byte) {
		side := "PRIMARY"
		if hostile {
			side = "SHADOW"
		}
		return func(w http.ResponseWriter, r *http.Request, _ []byte) {
			switch r.URL.Path {
			case "/attack/corrupt":
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "gzip")
				if hostile {
					_, _ = w.Write(corrupt)
					return
				}
				_, _ = w.Write(good)
			case "/attack/bomb":
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "gzip")
				if hostile {
					_, _ = w.Write(bomb)
					return
				}
				_, _ = w.Write(good)
			case "/attack/echo":
				url := r.RequestURI
				if hostile {
					url += "&via=shadow"
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{
					"url":  url,
					"user": map[string]any{"name": "ann", "password": side + "-PASSWORD-" + map[bool]string{false: "1", true: "2"}[hostile]},
					"auth": map[string]any{"access_token": side + "-ACCESS-" + map[bool]string{false: "3", true: "4"}[hostile],
						"api_key": side + "-APIKEY-" + map[bool]string{false: "5", true: "6"}[hostile]},
				})
			case "/attack/form":
				w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
				_, _ = fmt.Fprintf(w, "grant=refresh&refresh_token=FORM-REFRESH-%s&scope=read", map[bool]string{false: "8", true: "9"}[hostile])
			default: // /real/...
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"path":%q,"ok":true}`, r.URL.Path)
			}
		}
	}
	e := startHostileEnv(t, hostilePolicy, "/real/warm",
		service{name: "primary", answer: answer(false)},
		service{name: "hostile", answer: answer(true)},
		service{name: "honest", answer: answer(false)})

	const rounds = 3
	realSent := 0
	for round := range rounds {
		for _, path := range []string{"/attack/corrupt", "/attack/bomb", "/attack/echo?access_token=QUERY-TOKEN-7&r=" + fmt.Sprint(round), "/attack/form"} {
			e.send(e.client, "GET", path, nil, nil)
			for n := range 3 { // real traffic while the attack runs
				e.send(e.client, "GET", fmt.Sprintf("/real/%d/%d", round, n), nil, nil)
				realSent++
			}
		}
	}

	real := e.routeReport("real", realSent)
	assert.Equal(t, realSent, real.Outcomes[report.Match], "real pairs during the attack: %v %v", real.Outcomes, real.Reasons)

	r := e.routeReport("attacked", 4*rounds)
	assert.Zero(t, r.Outcomes[report.Match], "a hostile answer is never a match: %v %v", r.Outcomes, r.Reasons)
	assert.Equal(t, 3*rounds, r.Outcomes[report.Diff], "%v %v", r.Outcomes, r.Reasons)
	assert.Equal(t, rounds, r.Outcomes[report.Skipped], "%v %v", r.Outcomes, r.Reasons)
	assert.Equal(t, map[string]int{"shadow body too large decoded: decodes (gzip) to more than 2 MiB": rounds}, r.Reasons[report.Skipped])
	diffs := differences(r)
	for _, want := range []string{"body undecodable", "$.user.password changed", "$.auth.access_token changed", "$.auth.api_key changed", "$.url changed", "body body"} {
		assert.Equal(t, rounds, diffs[want], "%s: %v", want, diffs)
	}
	for _, d := range r.Differences {
		for _, s := range d.Samples {
			switch d.Pattern + " " + string(d.Kind) {
			case "body undecodable":
				assert.Equal(t, "(decodes)", s.Primary)
				assert.True(t, strings.HasPrefix(s.Shadow, "does not decode as gzip: "), s.Shadow)
			case "$.user.password changed", "$.auth.access_token changed", "$.auth.api_key changed":
				assert.Equal(t, [2]string{"[redacted]", "[redacted]"}, [2]string{s.Primary, s.Shadow})
			case "$.url changed":
				assert.Contains(t, s.Shadow, "access_token=[redacted]")
			case "body body":
				assert.Contains(t, s.Primary, "[redacted]")
			}
		}
	}

	require.NoError(t, e.serve.Reporter.Flush()) // the pairs API reads the store
	var everything strings.Builder
	for _, path := range []string{"/metrics", "/api/v1/report", "/api/v1/routes/attacked", "/api/v1/pairs?route=attacked&limit=1000"} {
		resp, err := e.client.Get("http://" + e.serve.APIAddr + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		everything.Write(body)
		if strings.HasPrefix(path, "/api/v1/pairs") { // each undecodable pair says why
			assert.Equal(t, rounds, strings.Count(string(body), `"shadow body does not decode as gzip: `), "%s", body)
		}
	}
	assert.Contains(t, everything.String(), "[redacted]", "redacted samples are still shown")
	e.serve.Stop() // flushes and closes the store
	for _, f := range []string{e.db, e.db + "-wal"} {
		b, err := os.ReadFile(f)
		if f == e.db {
			require.NoError(t, err)
			require.NotEmpty(t, b)
		}
		everything.Write(b)
	}
	everything.WriteString(e.logs.String())
	for _, secret := range echoedSecrets {
		assert.NotContains(t, everything.String(), secret, "a secret left shadowlab")
	}
}

// hostileEnv is a gwEnv whose serve keeps a SQLite store and logs at debug
// level into a buffer, to look for secrets in both.
type hostileEnv struct {
	*gwEnv
	db   string
	logs *lockedBuffer
}

func startHostileEnv(t *testing.T, policyTmpl, warm string, services ...service) *hostileEnv {
	t.Helper()
	lab := harness.Test(t)
	e := &hostileEnv{gwEnv: &gwEnv{t: t, lab: lab, svc: map[string]*recorder{}, addr: map[string]string{},
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}},
		db: filepath.Join(lab.Dir, "shadowlab.db"), logs: &lockedBuffer{}}
	for _, s := range services {
		rc := &recorder{name: s.name, answer: s.answer, byID: map[string]got{}}
		e.svc[s.name] = rc
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		e.addr[s.name] = l.Addr().String()
	}
	e.addr["Listener"] = freeAddr(t)
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("p").Option("missingkey=error").Parse(policyTmpl)).Execute(&buf, e.addr))
	policyPath := filepath.Join(lab.Dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, buf.Bytes(), 0o600))

	plugin, err := harness.BuildPlugin()
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	log = zap.New(zapcore.NewTee(log.Core(), zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(e.logs), zap.DebugLevel)))
	xdsAddr := freeAddr(t)
	e.serve, err = lab.Serve(context.Background(), serve.Config{PolicyPath: policyPath, XDSAddress: xdsAddr,
		GatewayAddress: freeAddr(t), APIAddress: freeAddr(t), WasmPath: plugin,
		Report: report.Config{DBPath: e.db},
		Pairer: pair.Config{Grace: 200 * time.Millisecond, TTL: 10 * time.Second}}, log)
	require.NoError(t, err)
	boot, err := harness.DynamicBootstrap("e2e-"+t.Name(), xdsAddr, false)
	require.NoError(t, err)
	_, err = lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: boot})
	require.NoError(t, err)
	waitRouted(t, e.addr["Listener"], 30*time.Second)
	e.waitPluginLoaded(warm)
	return e
}
