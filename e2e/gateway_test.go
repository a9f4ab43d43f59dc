package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/internal/testpki"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/wire"
)

// got is one request as a service received it, in full.
type got struct {
	Proto, Method, URI, Host string
	Header                   map[string][]string // lower-case names, every value
	BodySHA                  string
	BodyLen                  int
	Chunked                  bool
}

// recorder is a test service: it records every request whole and answers
// with answer (default: an echo of the request, as httpbin's do).
type recorder struct {
	name   string
	answer func(w http.ResponseWriter, r *http.Request, body []byte)

	mu   sync.Mutex
	byID map[string]got
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(body)
	g := got{Proto: r.Proto, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: map[string][]string{},
		BodySHA: hex.EncodeToString(sum[:]), BodyLen: len(body), Chunked: slices.Contains(r.TransferEncoding, "chunked")}
	for k, vs := range r.Header {
		g.Header[strings.ToLower(k)] = vs
	}
	rc.mu.Lock()
	rc.byID[r.Header.Get(wire.HeaderRequestID)] = g
	rc.mu.Unlock()
	w.Header().Set(backend.HeaderBackend, rc.name)
	if rc.answer != nil {
		rc.answer(w, r, body)
		return
	}
	echo := map[string]any{"method": r.Method, "url": r.RequestURI, "headers": g.Header, "body_sha256": g.BodySHA}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echo)
}

// gwEnv runs recorders as the services of a policy, serve in-process with
// its gateway, and Envoy.
type gwEnv struct {
	t      *testing.T
	lab    *harness.Lab
	svc    map[string]*recorder
	addr   map[string]string // template data: service addresses, Listener, the PKI's files
	serve  *serve.Instance
	client *http.Client
	h2c    *http.Client
}

// service is one recorder and how it is served: "http1", "h2c" or "tls"
// (mutual TLS with the env's CA, ALPN h2 and http/1.1).
type service struct {
	name, proto string
	answer      func(w http.ResponseWriter, r *http.Request, body []byte)
}

// newGWEnv starts everything; warm is a mirrored path, sent until the
// capture plugin is loaded.
func newGWEnv(t *testing.T, policyTmpl, warm string, services ...service) *gwEnv {
	t.Helper()
	return startGWEnv(t, harness.Test(t), nil, policyTmpl, warm, services...)
}

// startGWEnv is newGWEnv in lab, with other services already running at
// the addresses of more (template names → host:port).
func startGWEnv(t *testing.T, lab *harness.Lab, more map[string]string, policyTmpl, warm string, services ...service) *gwEnv {
	t.Helper()
	e := &gwEnv{t: t, lab: lab, svc: map[string]*recorder{}, addr: maps.Clone(more),
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
	e.h2c = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: h2cOnly(), DisableCompression: true}}
	if e.addr == nil {
		e.addr = map[string]string{}
	}
	pki, err := testpki.New(e.lab.Dir, "shadow.test")
	require.NoError(t, err)
	e.addr["CA"], e.addr["Cert"], e.addr["Key"] = pki.CA, pki.ClientCert, pki.ClientKey
	for _, s := range services {
		rc := &recorder{name: s.name, answer: s.answer, byID: map[string]got{}}
		e.svc[s.name] = rc
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
		switch s.proto {
		case "h2c":
			srv.Protocols = h2cOnly()
		case "tls":
			srv.TLSConfig = pki.Server.Clone()
			srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
			l = tls.NewListener(l, srv.TLSConfig)
		}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		e.addr[s.name] = l.Addr().String()
	}
	e.addr["Listener"] = freeAddr(t)
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("p").Option("missingkey=error").Parse(policyTmpl)).Execute(&buf, e.addr))
	policyPath := filepath.Join(e.lab.Dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, buf.Bytes(), 0o600))

	plugin, err := harness.BuildPlugin()
	require.NoError(t, err)
	xdsAddr := freeAddr(t)
	e.serve, err = e.lab.Serve(context.Background(), serve.Config{PolicyPath: policyPath, XDSAddress: xdsAddr,
		GatewayAddress: freeAddr(t), APIAddress: freeAddr(t), WasmPath: plugin,
		Pairer: pair.Config{Grace: 200 * time.Millisecond, TTL: 3 * time.Second}}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	boot, err := harness.DynamicBootstrap("e2e-"+t.Name(), xdsAddr, false)
	require.NoError(t, err)
	_, err = e.lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: boot})
	require.NoError(t, err)
	waitRouted(t, e.addr["Listener"], 30*time.Second)
	e.waitPluginLoaded(warm)
	return e
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// waitPluginLoaded waits until a mirrored request's primary is captured:
// Envoy loads the plugin's code from serve a moment after the routes.
func (e *gwEnv) waitPluginLoaded(warm string) {
	e.t.Helper()
	pairs := func() int {
		n := 0
		for _, r := range e.serve.Reporter.Report().Routes {
			n += r.Pairs
		}
		return n
	}
	require.Eventually(e.t, func() bool {
		if pairs() > 0 {
			return true
		}
		resp, err := e.client.Get("http://" + e.addr["Listener"] + warm)
		if err == nil {
			resp.Body.Close()
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no pair was ever recorded: the capture plugin did not load")
	last, stable := -1, 0
	require.Eventually(e.t, func() bool { // the warm-up's last pairs
		n := pairs()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		return stable >= 10
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(e.t, e.serve.Reporter.Reset(""))
}

// send sends one request through Envoy; the client must get a 200.
func (e *gwEnv) send(c *http.Client, method, path string, body io.Reader, header map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr["Listener"]+path, body)
	require.NoError(e.t, err)
	req.Host = "shop.example.com"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(e.t, 200, resp.StatusCode, "%s %s", method, path)
	return resp
}

func (e *gwEnv) routeReport(route string, want int) report.RouteReport {
	e.t.Helper()
	var rr report.RouteReport
	require.Eventually(e.t, func() bool {
		for _, r := range e.serve.Reporter.Report().Routes {
			if r.Route == route {
				rr = r
				return r.Pairs >= want
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "route %s: want %d pairs, have %+v", route, want, rr.Outcomes)
	return rr
}

const exactPolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  primary: {endpoints: ["{{.primary}}"]}
  shadow: {endpoints: ["{{.shadow}}"]}
routes:
  - name: exact
    match: {pathPrefix: /}
    primary: primary
    shadow: {service: shadow, percent: 100, unsafeMethods: true, maxRequestBytes: 8388608}
    compare: {maxBodyBytes: 65536}
`

// TestShadowGetsThePrimarysRequest: for each kind of request, the shadow
// service receives exactly what the primary service received — method,
// path and query, every header with every value, the body, its framing —
// plus the documented marks and nothing else; and since the services echo
// what they got, the report explains the echoed marks instead of counting
// them: every pair matches.
func TestShadowGetsThePrimarysRequest(t *testing.T) {
	t.Parallel()
	e := newGWEnv(t, exactPolicy, "/warm", service{name: "primary", proto: "http1"}, service{name: "shadow", proto: "http1"})
	common := map[string]string{"accept": "application/json", "x-custom": "one", "cookie": "session=abc; theme=dark",
		"authorization": "Bearer t0ken", "x-forwarded-for": "203.0.113.7", "user-agent": "e2e/1"}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	type kind struct {
		name         string
		client       *http.Client
		method, path string
		body         func() io.Reader
		unsafe       bool
	}
	kinds := []kind{
		{name: "GET", client: e.client, method: "GET", path: "/items/1?a=1&b=%2F"},
		{name: "POST 4 MiB", client: e.client, method: "POST", path: "/upload", body: func() io.Reader { return bytes.NewReader(big) }, unsafe: true},
		{name: "POST chunked", client: e.client, method: "POST", path: "/chunked", unsafe: true,
			body: func() io.Reader { return io.MultiReader(strings.NewReader("part one,"), strings.NewReader("part two")) }},
		{name: "HTTP/2 GET", client: e.h2c, method: "GET", path: "/h2/items?x=y"},
		{name: "HTTP/2 POST", client: e.h2c, method: "POST", path: "/h2/post", body: func() io.Reader { return strings.NewReader(`{"a":1}`) }, unsafe: true},
	}
	var ids []string
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			var body io.Reader
			if k.body != nil {
				body = k.body()
			}
			header := maps.Clone(common)
			header["x-test"] = k.name
			e.send(k.client, k.method, k.path, body, header)
			primary, id := e.svc["primary"].find(t, "x-test", k.name)
			ids = append(ids, id)
			shadow, _ := e.svc["shadow"].find(t, "x-test", k.name)
			marks := map[string][]string{wire.HeaderShadow: {"1"}, wire.HeaderRoute: {"exact"}}
			if k.unsafe {
				marks[wire.HeaderDryRun] = []string{"1"}
			}
			want := primary
			want.Header = map[string][]string{}
			for h, vs := range primary.Header {
				want.Header[h] = vs
			}
			for h, vs := range marks {
				_, already := primary.Header[h]
				require.False(t, already, "the primary never carries a mark: %s", h)
				want.Header[h] = vs
			}
			assert.Equal(t, want, shadow, "the shadow got the primary's request plus the marks, nothing else")
		})
	}
	rr := e.routeReport("exact", len(ids))
	assert.Equal(t, rr.Pairs, rr.Outcomes[report.Match], "echoes of identical requests match: %+v %+v", rr.Outcomes, rr.Reasons)
	assert.Empty(t, rr.Differences)
	var marks []string
	for _, m := range rr.Marks {
		marks = append(marks, m.Pattern)
	}
	assert.ElementsMatch(t, []string{"$.headers.x-shadowlab-shadow", "$.headers.x-shadowlab-route", "$.headers.x-shadowlab-dry-run"}, marks,
		"the echoed marks are explained on their own line")
}

// find returns the request rc received with header h = v, and its id.
func (rc *recorder) find(t *testing.T, h, v string) (got, string) {
	t.Helper()
	var g got
	var id string
	require.Eventually(t, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for k, r := range rc.byID {
			if slices.Contains(r.Header[h], v) {
				g, id = r, k
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "%s never got the request with %s: %s", rc.name, h, v)
	return g, id
}

const dependentPolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  primary: {endpoints: ["{{.primary}}"]}
  shadow: {endpoints: ["{{.shadow}}"]}
routes:
  - name: search
    match: {path: /search, methods: [POST]}
    primary: primary
    shadow: {service: shadow, percent: 100, unsafeMethods: true}
  - name: me
    match: {path: /me}
    primary: primary
    shadow: {service: shadow, percent: 100}
  - name: rest
    match: {pathPrefix: /}
    primary: primary
`

// dependentAnswer answers as a service whose answers depend on the request
// body (POST /search) and on who asks (GET /me, by cookie), with a
// timestamp in every answer. The candidate (shadow) carries seeded
// differences: a count off by one for queries of even length, and no plan
// for users whose number is a multiple of 4.
func dependentAnswer(candidate bool) func(w http.ResponseWriter, r *http.Request, body []byte) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) {
		out := map[string]any{"at": time.Now().UnixNano()}
		switch r.URL.Path {
		case "/search":
			var q struct{ Q string }
			_ = json.Unmarshal(body, &q)
			out["q"], out["count"], out["results"] = q.Q, len(q.Q), []string{q.Q + "-1", q.Q + "-2"}
			if candidate && len(q.Q)%2 == 0 {
				out["count"] = len(q.Q) + 1
			}
		case "/me":
			c, _ := r.Cookie("user")
			var n int
			if c != nil {
				_, _ = fmt.Sscan(c.Value, &n)
			}
			out["user"] = fmt.Sprintf("u%d", n)
			if !candidate || n%4 != 0 {
				out["plan"] = []string{"free", "team", "enterprise"}[n%3]
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
}

// TestNoiseSeesTheWholeRequest: on a route whose answers depend on the body
// and on one whose answers depend on the caller's cookie, the seeded
// differences are reported with their exact counts and only the timestamp
// is learned as noise. (With a fingerprint of method and path alone, every
// field of these answers varies between "identical" requests and the
// seeded differences were learned as noise and hidden.)
func TestNoiseSeesTheWholeRequest(t *testing.T) {
	t.Parallel()
	e := newGWEnv(t, dependentPolicy, "/me",
		service{name: "primary", proto: "http1", answer: dependentAnswer(false)},
		service{name: "shadow", proto: "http1", answer: dependentAnswer(true)})
	const rounds, kinds = 6, 8
	seededSearch, seededMe := 0, 0
	for range rounds {
		for i := 1; i <= kinds; i++ {
			q := strings.Repeat("q", i)
			e.send(e.client, "POST", "/search", strings.NewReader(`{"q":"`+q+`"}`), map[string]string{"content-type": "application/json"})
			e.send(e.client, "GET", "/me", nil, map[string]string{"cookie": fmt.Sprintf("user=%d", i)})
			if i%2 == 0 {
				seededSearch++
			}
			if i%4 == 0 {
				seededMe++
			}
		}
	}
	for route, want := range map[string]string{"search": "$.count changed", "me": "$.plan removed"} {
		var rr report.RouteReport
		require.Eventually(t, func() bool { // noise reaches the report twice a second
			rr = e.routeReport(route, rounds*kinds)
			return len(rr.Noise) > 0
		}, 5*time.Second, 100*time.Millisecond, "%s: no noise learned", route)
		var noise []string
		for _, n := range rr.Noise {
			noise = append(noise, n.Pattern)
		}
		assert.Equal(t, []string{"$.at"}, noise, "%s: only the timestamp is noise", route)
		seeded := map[string]int{"search": seededSearch, "me": seededMe}[route]
		assert.Equal(t, map[string]int{want: seeded}, differences(rr), "%s: the seeded differences, all of them, and nothing else", route)
		assert.Equal(t, rounds*kinds-seeded, rr.Outcomes[report.Match], "%s", route)
	}
}

const protocolsPolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  primary: {endpoints: ["{{.primary}}"]}
  h2c: {endpoints: ["{{.h2c}}"], protocol: http2}
  tls: {endpoints: ["{{.tls}}"], tls: {ca: "{{.CA}}", cert: "{{.Cert}}", key: "{{.Key}}", serverName: shadow.test}}
routes:
  - name: h2c
    match: {pathPrefix: /h2c}
    primary: primary
    shadow: {service: h2c, percent: 100}
  - name: tls
    match: {pathPrefix: /tls}
    primary: primary
    shadow: {service: tls, percent: 100}
  - name: tls-primary
    match: {pathPrefix: /secure}
    primary: tls
    shadow: {service: h2c, percent: 100}
  - name: rest
    match: {pathPrefix: /}
    primary: primary
`

// TestShadowProtocols: an h2c shadow and a shadow behind mutual TLS (with
// a CA made by the test, ALPN choosing h2) get the primary's requests and
// are compared like any other: every pair matches. And Envoy reaches a
// primary behind the same mutual TLS (its certificate verified for its
// name, the client certificate presented) the policy's way.
func TestShadowProtocols(t *testing.T) {
	t.Parallel()
	e := newGWEnv(t, protocolsPolicy, "/tls/warm", service{name: "primary", proto: "http1"}, service{name: "h2c", proto: "h2c"}, service{name: "tls", proto: "tls"})
	for i := range 10 {
		e.send(e.client, "GET", fmt.Sprintf("/h2c/items/%d", i), nil, map[string]string{"x-test": fmt.Sprintf("h2c-%d", i)})
		e.send(e.client, "GET", fmt.Sprintf("/tls/items/%d", i), nil, map[string]string{"x-test": fmt.Sprintf("tls-%d", i)})
		e.send(e.client, "GET", fmt.Sprintf("/secure/items/%d", i), nil, map[string]string{"x-test": fmt.Sprintf("secure-%d", i)})
	}
	g, _ := e.svc["tls"].find(t, "x-test", "secure-3")
	assert.Equal(t, "HTTP/2.0", g.Proto, "Envoy spoke h2 over mutual TLS to the primary")
	for _, route := range []string{"h2c", "tls"} {
		rr := e.routeReport(route, 10)
		assert.Equal(t, rr.Pairs, rr.Outcomes[report.Match], "%s: %+v %+v %+v", route, rr.Outcomes, rr.Reasons, rr.Differences)
		g, _ := e.svc[route].find(t, "x-test", route+"-3")
		assert.Equal(t, "HTTP/2.0", g.Proto, route)
	}
}

const faultPolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  primary: {endpoints: ["{{.primary}}"]}
  shadow: {endpoints: ["{{.shadow}}"]}
routes:
  - name: small
    match: {pathPrefix: /small}
    primary: primary
    shadow: {service: shadow, percent: 100, unsafeMethods: true, maxRequestBytes: 1000}
  - name: faults
    match: {pathPrefix: /}
    primary: primary
    shadow: {service: shadow, percent: 100}
`

// TestGatewayKilledUnderLoad kills the gateway (its port and every
// connection) under load and brings it back: no client request fails, the
// requests mirrored meanwhile are reported as the shadow's failures, and
// comparison resumes.
func TestGatewayKilledUnderLoad(t *testing.T) {
	t.Parallel()
	e := newGWEnv(t, faultPolicy, "/warm", service{name: "primary", proto: "http1"}, service{name: "shadow", proto: "http1"})
	var failed, sent int
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := e.client.Get(fmt.Sprintf("http://%s/load/%d/%d", e.addr["Listener"], w, i))
				mu.Lock()
				sent++
				if err != nil || resp.StatusCode != 200 {
					failed++
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	require.NoError(t, e.serve.KillGateway())
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, e.serve.RestartGateway())
	restarted := e.serve.Reporter.Report()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, failed, "of %d client requests", sent)

	rr := e.routeReport("faults", sent-20)
	require.Eventually(t, func() bool {
		rr = e.routeReport("faults", 0)
		return rr.Outcomes[report.PrimaryOnly] > 0
	}, 10*time.Second, 100*time.Millisecond, "the requests mirrored while the gateway was down are the shadow's failures: %+v", rr.Outcomes)
	for reason := range rr.Reasons[report.PrimaryOnly] {
		assert.Contains(t, reason, "no shadow half", "a missing shadow half, not a false difference")
	}
	assert.Zero(t, rr.Outcomes[report.Diff])
	before := 0
	for _, r := range restarted.Routes {
		if r.Route == "faults" {
			before = r.Outcomes[report.Match]
		}
	}
	assert.Greater(t, rr.Outcomes[report.Match], before, "comparison resumed after the restart")
}

// TestRequestTooLarge: a request whose body is over the route's
// maxRequestBytes reaches the primary whole and is not mirrored; its pair
// is skipped and says why, never a shadow failure.
func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	e := newGWEnv(t, faultPolicy, "/warm", service{name: "primary", proto: "http1"}, service{name: "shadow", proto: "http1"})
	e.send(e.client, "POST", "/small/upload", bytes.NewReader(bytes.Repeat([]byte("x"), 5000)), map[string]string{"x-test": "big"})
	e.send(e.client, "POST", "/small/upload", strings.NewReader("small"), map[string]string{"x-test": "small"})
	g, _ := e.svc["primary"].find(t, "x-test", "big")
	assert.Equal(t, 5000, g.BodyLen, "the primary got it whole")
	_, _ = e.svc["shadow"].find(t, "x-test", "small")
	rr := e.routeReport("small", 2)
	assert.Equal(t, 1, rr.Outcomes[report.Skipped], "%+v", rr.Reasons)
	assert.Equal(t, map[string]int{"not mirrored: request body over shadow.maxRequestBytes (1000 bytes)": 1}, rr.Reasons[report.Skipped])
	assert.Equal(t, 1, rr.Outcomes[report.Match])
	for _, r := range e.svc["shadow"].byID {
		assert.NotContains(t, r.Header["x-test"], "big", "never forwarded")
	}
}

const httpbinPolicy = `
version: 1
listeners: [{name: in, address: "{{.Listener}}"}]
services:
  old: {endpoints: ["{{.old}}"]}
  new: {endpoints: ["{{.new}}"]}
  probe: {endpoints: ["{{.probe}}"]}
routes:
  - name: ready
    match: {pathPrefix: /__ready_probe}
    primary: probe
  - name: httpbin
    match: {pathPrefix: /}
    primary: old
    shadow: {service: new, percent: 100, unsafeMethods: true}
`

// TestThirdPartyReleases mirrors a service shadowlab's authors did not
// write, go-httpbin, from one release (the primary) to a later one (the
// shadow), with the headers, cookies and bodies of real clients. Its echo
// endpoints return the request they got: they match, because the shadow
// gets exactly the primary's request, and the marks they echo are
// explained; /uuid answers a fresh UUID every time: learned as noise; and
// the one change between the releases that these endpoints show — /cookies
// wraps the cookies in an object — is reported, on every such pair, and is
// the only difference.
func TestThirdPartyReleases(t *testing.T) {
	t.Parallel()
	lab := harness.Test(t)
	more := map[string]string{}
	for name, version := range map[string]string{"old": harness.HTTPBinOld, "new": harness.HTTPBinNew} {
		bin, err := harness.BuildHTTPBin(version)
		require.NoError(t, err)
		addr := freeAddr(t)
		host, port, _ := net.SplitHostPort(addr)
		_, err = lab.Start("httpbin-"+name, bin, "-host", host, "-port", port)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		require.NoError(t, harness.WaitHTTP(ctx, "http://"+addr+"/status/200", func(r *http.Response) bool { return r.StatusCode == 200 }))
		cancel()
		more[name] = addr
	}
	e := startGWEnv(t, lab, more, httpbinPolicy, "/get", service{name: "probe", proto: "http1"})

	browser := map[string]string{
		"user-agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"accept-language": "en-GB,en;q=0.9,de;q=0.8",
		"cookie":          "session=5f2b9c; theme=dark; consent=yes",
		"authorization":   "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
		"x-forwarded-for": "198.51.100.23",
	}
	requests := []struct{ method, path, body string }{
		{"GET", "/get?page=2&sort=name", ""},
		{"GET", "/headers", ""},
		{"POST", "/anything/orders?dry=1", `{"item":"book","qty":2}`},
		{"PUT", "/anything/orders/7", `{"qty":3}`},
		{"GET", "/uuid", ""},
		{"GET", "/json", ""},
		{"GET", "/cookies", ""},
		{"GET", "/user-agent", ""},
		{"GET", "/base64/aGVsbG8gc2hhZG93bGFi", ""},
		{"GET", "/response-headers?x-team=billing", ""},
		{"GET", "/cache", ""},
		{"GET", "/etag/v1", ""},
		{"GET", "/html", ""},
		{"GET", "/status/418", ""},
	}
	const rounds = 5
	for range rounds {
		for _, r := range requests {
			req, err := http.NewRequest(r.method, "http://"+e.addr["Listener"]+r.path, strings.NewReader(r.body))
			require.NoError(t, err)
			for k, v := range browser {
				req.Header.Set(k, v)
			}
			if r.body != "" {
				req.Header.Set("content-type", "application/json")
			}
			resp, err := e.client.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	total := rounds * len(requests)
	rr := e.routeReport("httpbin", total)
	require.Equal(t, total, rr.Pairs, "%+v %+v", rr.Outcomes, rr.Reasons)
	// Noise is handed to the report twice a second, and a hand-over can come
	// between the learner's judging of two patterns: wait for the one this
	// test expects, not for any.
	require.Eventually(t, func() bool {
		rr = e.routeReport("httpbin", total)
		return slices.ContainsFunc(rr.Noise, func(n report.NoiseReport) bool { return n.Pattern == "$.uuid" })
	}, 10*time.Second, 100*time.Millisecond, "the learner never judged $.uuid noise: %+v", rr.Noise)
	diffs := differences(rr)
	assert.Equal(t, map[string]int{"$.consent removed": rounds, "$.session removed": rounds, "$.theme removed": rounds, "$.cookies added": rounds}, diffs,
		"the release's one change on these endpoints, on every /cookies pair, and no false difference")
	assert.Equal(t, total-rounds, rr.Outcomes[report.Match], "%+v", rr.Outcomes)
	var noise, marks []string
	for _, n := range rr.Noise {
		noise = append(noise, n.Pattern)
	}
	for _, m := range rr.Marks {
		marks = append(marks, m.Pattern)
	}
	assert.Contains(t, noise, "$.uuid")
	assert.Contains(t, marks, "$.headers.X-Shadowlab-Shadow")

	// The pair page of a /cookies pair, as the third party answered: each
	// difference on a line of its side's body, the session cookie's value
	// (a secret by name) nowhere.
	require.NoError(t, e.serve.Reporter.Flush())
	pairs, err := e.serve.Reporter.Pairs(context.Background(), report.PairsQuery{Route: "httpbin", Outcome: report.Diff, Limit: 1})
	require.NoError(t, err)
	require.Len(t, pairs, 1)
	pd, ok, err := e.serve.Reporter.Pair(context.Background(), pairs[0].ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotNil(t, pd.Primary, pd.EvidenceNote)
	require.NotNil(t, pd.Shadow, pd.EvidenceNote)
	assert.Equal(t, "json", pd.Primary.BodyKind)
	onLine := func(ex *compare.Exhibit, path string) bool {
		return slices.ContainsFunc(ex.Lines, func(l compare.ExhibitLine) bool { return l.Path == path })
	}
	for _, d := range pd.Differences {
		side := pd.Shadow
		if d.Kind == compare.Removed {
			side = pd.Primary
		}
		assert.True(t, onLine(side, d.Path), "difference %s (%s) has a line in its side's body: %+v", d.Path, d.Kind, side.Lines)
	}
	assert.True(t, slices.ContainsFunc(pd.Primary.Lines, func(l compare.ExhibitLine) bool { return l.Path == "$.session" && l.Redacted }),
		"the primary's $.session shown redacted: %+v", pd.Primary.Lines)
	page, err := json.Marshal(pd)
	require.NoError(t, err)
	assert.NotContains(t, string(page), "5f2b9c", "the session cookie's value reached the pair page")
}
