package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/internal/testpki"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

func TestRun(t *testing.T) {
	tests := map[string]struct {
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string
		stdoutNone bool
	}{
		"no command":      {args: nil, code: exitUsage, stderr: []string{"usage: shadowlab"}},
		"unknown command": {args: []string{"mirror"}, code: exitUsage, stderr: []string{`unknown command "mirror"`}},
		"help":            {args: []string{"help"}, code: exitOK, stdout: []string{"validate FILE"}},
		"validate ok": {
			args:   []string{"validate", "../../examples/policy.yaml"},
			code:   exitOK,
			stdout: []string{"ok: 1 listener(s), 2 service(s), 3 route(s), 2 mirrored; hash "},
		},
		"validate broken lists every problem with its line": {
			args:       []string{"validate", "../../policy/testdata/broken.policy.yaml"},
			code:       exitFailed,
			stdoutNone: true,
			stderr: []string{
				"10 problem(s)",
				"broken.policy.yaml:6: listeners[0].address: port must be between 1 and 65535 (got 99999)",
				`broken.policy.yaml:7: listeners[0].trustRequestId: field "trustRequestId" not known`,
				"broken.policy.yaml:11: services.billing-legacy.connectTimeout: invalid duration",
				`broken.policy.yaml:19: routes[0].shadow.service: unknown service "billing-v3"`,
				"broken.policy.yaml:20: routes[0].shadow.percent: must be between 0 and 100 (got 150)",
				"broken.policy.yaml:22: routes[0].compare.ignore[0]: invalid JSON path",
				`broken.policy.yaml:23: routes[1].name: duplicate route name "billing-records" (first at line 15)`,
				"broken.policy.yaml:24: routes[1].match.pathRegex: invalid RE2 regular expression",
				"broken.policy.yaml:26: routes[1].shadow.percent: required",
				`broken.policy.yaml:29: routes[1].admission.rate: invalid rate "100/fortnight"`,
			},
		},
		"validate missing file": {args: []string{"validate", "nope.yaml"}, code: exitFailed, stderr: []string{"nope.yaml"}},
		"validate two files":    {args: []string{"validate", "a", "b"}, code: exitUsage, stderr: []string{"usage: shadowlab validate FILE"}},
		"translate": {
			args:   []string{"translate", "../../examples/policy.yaml"},
			code:   exitOK,
			stdout: []string{"name: shadow/billing-records", "runtime_key: shadowlab.mirror.billing-records", "value: billing-invoices"},
		},
		"translate broken": {args: []string{"translate", "../../policy/testdata/broken.policy.yaml"}, code: exitFailed, stdoutNone: true},
		"bootstrap": {
			args:   []string{"bootstrap", "--node-id", "n1", "--xds-address", "127.0.0.1:18001", "--delta"},
			code:   exitOK,
			stdout: []string{"id: n1", "api_type: DELTA_GRPC", "port_value: 18001", "rtds_layer:"},
		},
		"bootstrap with mutual TLS": {
			args:   []string{"bootstrap", "--tls-cert", "/e/c.pem", "--tls-key", "/e/c.key", "--tls-ca", "/e/ca.pem", "--tls-server-id", "spiffe://td/serve"},
			code:   exitOK,
			stdout: []string{"UpstreamTlsContext", "filename: /e/c.pem", "filename: /e/c.key", "filename: /e/ca.pem", "exact: spiffe://td/serve", "- h2"},
		},
		"bootstrap with half the TLS flags": {args: []string{"bootstrap", "--tls-cert", "/e/c.pem"}, code: exitUsage, stderr: []string{"--tls-key and --tls-ca"}},
		"serve exposed without credentials": {
			args: []string{"serve", "--policy", "../../examples/policy.yaml", "--xds-address", "0.0.0.0:0", "--db", ""},
			code: exitFailed, stderr: []string{"--xds-address 0.0.0.0:0 is not loopback", "--insecure-behind-authenticating-proxy"},
		},
		"serve bad peer": {args: []string{"serve", "--policy", "x", "--tls-allowed-peers", "https://td/x"}, code: exitUsage, stderr: []string{"--tls-allowed-peers"}},
		"serve TLS without Envoy's paths": {
			args: []string{"serve", "--policy", "../../examples/policy.yaml", "--db", "", "--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca", "--tls-allowed-peers", "spiffe://td/"},
			code: exitFailed, stderr: []string{"--envoy-tls-cert"},
		},
		"bootstrap bad address": {args: []string{"bootstrap", "--xds-address", "nowhere"}, code: exitFailed, stderr: []string{"xds address"}},
		"serve without policy":  {args: []string{"serve"}, code: exitUsage, stderr: []string{"--policy FILE"}},
		"serve broken policy":   {args: []string{"serve", "--policy", "../../policy/testdata/broken.policy.yaml"}, code: exitFailed, stderr: []string{"10 problem(s)"}},
		"serve bad log level":   {args: []string{"serve", "--policy", "x", "--log-level", "loud"}, code: exitUsage, stderr: []string{"--log-level"}},
		"serve bad flag":        {args: []string{"serve", "--polcy", "x"}, code: exitUsage, stderr: []string{"flag provided but not defined"}},
		"serve address in use":  {args: []string{"serve", "--policy", "../../examples/policy.yaml", "--xds-address", "256.0.0.1:1"}, code: exitFailed},
		"demo bad flag":         {args: []string{"demo", "--requests", "many"}, code: exitUsage},
		"demo attach missing policy": {
			args: []string{"demo", "--attach", "nope.yaml", "--wait", "1s"}, code: exitFailed, stderr: []string{"nope.yaml"},
		},
		"demo keep with attach": {
			args: []string{"demo", "--attach", "nope.yaml", "--api", "127.0.0.1:18080", "--keep"}, code: exitFailed,
			stderr: []string{"--keep: the deployment --attach drives is not the demo's", "http://127.0.0.1:18080/ui/"},
		},
		"bootstrap out in a missing directory": {
			args: []string{"bootstrap", "--out", "/nonexistent/dir/envoy.yaml"}, code: exitFailed, stderr: []string{"/nonexistent/dir"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			assert.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, s := range tt.stdout {
				assert.Contains(t, stdout.String(), s)
			}
			for _, s := range tt.stderr {
				assert.Contains(t, stderr.String(), s)
			}
			if tt.stdoutNone {
				assert.Empty(t, strings.TrimSpace(stdout.String()))
			}
		})
	}
}

// TestBootstrapOut: --out writes the bootstrap readable by Envoy's user,
// nothing on stdout, and no temporary file beside it.
func TestBootstrapOut(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "envoy.yaml")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bootstrap", "--node-id", "n1", "--out", out}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	assert.Empty(t, stdout.String())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(b), "id: n1")
	fi, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
}

// TestReportToken: report sends the read token from --token-file and trusts
// --ca-file's CA.
func TestReportToken(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.NewCA(dir, "mesh")
	require.NoError(t, err)
	pair, err := ca.Issue("serve", "spiffe://td/serve", "127.0.0.1")
	require.NoError(t, err)
	cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
	require.NoError(t, err)
	var got string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		_, _ = w.Write([]byte(`{"routes": []}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	tokenFile := filepath.Join(dir, "read.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("read-token-0123456789\n"), 0o600))

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"report", "--server", srv.URL, "--json", "--token-file", tokenFile, "--ca-file", ca.File}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	assert.Equal(t, "Bearer read-token-0123456789", got)

	code = run(context.Background(), []string{"report", "--server", srv.URL, "--json"}, &stdout, &stderr)
	assert.Equal(t, exitFailed, code, "serve's CA not trusted")
}

// report with several servers: each replica's global row, the merged one,
// and a failing server fails the command, named.
func TestReportReplicas(t *testing.T) {
	replica := func(delayed uint64) *httptest.Server {
		c := wire.Counts{Delayed: delayed}
		for range delayed {
			c.Released(5500 * time.Millisecond)
		}
		body, err := json.Marshal(report.Report{Routes: []report.RouteReport{}, Admission: []report.AdmissionReport{
			{Scope: "global", Route: "jobs", Counts: c},
		}})
		require.NoError(t, err)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			require.Equal(t, "/api/v1/report", r.URL.Path)
			_, _ = w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := replica(3), replica(1)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"report", "--server", a.URL + "," + b.URL}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	out := stdout.String()
	for _, want := range []string{"replica", strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"), " all ", "5.50s"} {
		assert.Contains(t, out, want)
	}

	stdout.Reset()
	code = run(context.Background(), []string{"report", "--server", a.URL, "--server", b.URL, "--json"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var got struct {
		Replicas []struct {
			Server string `json:"server"`
		} `json:"replicas"`
		Admission []report.AdmissionReport `json:"admission"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
	require.Len(t, got.Replicas, 2)
	require.Len(t, got.Admission, 3)
	assert.Equal(t, uint64(4), got.Admission[2].Delayed, "the merged row last")
	assert.Empty(t, got.Admission[2].Replica)

	stderr.Reset()
	code = run(context.Background(), []string{"report", "--server", a.URL + ",http://127.0.0.1:1"}, &stdout, &stderr)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr.String(), "127.0.0.1:1")
}
