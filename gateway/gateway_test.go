package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/internal/testpki"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// seen is one request as a shadow service received it.
type seen struct {
	proto, method, uri, host string
	header                   http.Header
	body                     []byte
	chunked                  bool
}

// shadow is a test shadow service: it records what it gets and answers
// with a JSON body, a header, a secret header and a trailer.
type shadow struct {
	mu    sync.Mutex
	got   []seen
	block chan struct{} // when set, requests wait for it to close
	addr  string
}

func (s *shadow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, seen{proto: r.Proto, method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), body: body,
		chunked: len(r.TransferEncoding) > 0})
	block := s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Version", "2")
	w.Header().Set("Set-Cookie", "session=secret")
	w.Header().Set("Trailer", "X-Checksum")
	w.WriteHeader(201)
	fmt.Fprintf(w, `{"echo":%q}`, r.URL.Path)
	w.Header().Set("X-Checksum", "abc")
}

// nth waits for the shadow's n-th request (from 1) and returns it: the
// gateway forwards after it answered, so an earlier one may be all
// there is yet.
func (s *shadow) nth(t *testing.T, n int) seen {
	t.Helper()
	var got seen
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.got) < n {
			return false
		}
		got = s.got[n-1]
		return true
	}, 2*time.Second, time.Millisecond)
	return got
}

// sink keeps the halves offered.
type sink struct {
	mu     sync.Mutex
	halves []pair.Half
}

func (s *sink) Offer(h pair.Half) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.halves = append(s.halves, h)
}

func (s *sink) all() []pair.Half {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pair.Half(nil), s.halves...)
}

const gatewayPolicy = `
version: 1
listeners: [{name: l, address: "127.0.0.1:10000"}]
services:
  primary: {endpoints: ["127.0.0.1:1"]}
  plain: {endpoints: ["{{.Plain}}"]}
  h2c: {endpoints: ["{{.H2C}}"], protocol: http2}
  tls: {endpoints: ["{{.TLS}}"], tls: {ca: "{{.CA}}", cert: "{{.Cert}}", key: "{{.Key}}", serverName: shadow.test}}
  refused: {endpoints: ["{{.Refused}}"]}
routes:
  - name: r
    match: {pathPrefix: /r}
    primary: primary
    timeout: 2s
    shadow: {service: plain, percent: 100, tenants: {header: x-tenant, values: [acme, globex]}, unsafeMethods: true, maxConcurrent: 1, maxRequestBytes: 5000000}
    compare: {headers: [x-version, set-cookie-ish], varyOn: [accept-language], maxBodyBytes: 64}
  - name: safe
    match: {pathPrefix: /safe}
    primary: primary
    timeout: 300ms
    shadow: {service: plain, percent: 100, maxRequestBytes: 10}
  - name: h2c
    match: {pathPrefix: /h2c}
    primary: primary
    shadow: {service: h2c, percent: 100}
  - name: tls
    match: {pathPrefix: /tls}
    primary: primary
    shadow: {service: tls, percent: 100}
  - name: refused
    match: {pathPrefix: /refused}
    primary: primary
    shadow: {service: refused, percent: 100}
`

type fixture struct {
	g          *Gateway
	sink       *sink
	plain, h2c *shadow
	tls        *shadow
	front      *httptest.Server // the gateway, as Envoy reaches it
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{sink: &sink{}, plain: &shadow{}, h2c: &shadow{}, tls: &shadow{}}
	plain := httptest.NewServer(f.plain)
	t.Cleanup(plain.Close)
	h2c := httptest.NewUnstartedServer(f.h2c)
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	t.Cleanup(h2c.Close)
	pki, err := testpki.New(t.TempDir(), "shadow.test")
	require.NoError(t, err)
	tlsSrv := httptest.NewUnstartedServer(f.tls)
	tlsSrv.TLS = pki.Server
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := refused.Addr().String()
	refused.Close()

	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("p").Parse(gatewayPolicy)).Execute(&buf, map[string]string{
		"Plain": plain.Listener.Addr().String(), "H2C": h2c.Listener.Addr().String(), "TLS": tlsSrv.Listener.Addr().String(),
		"Refused": refusedAddr, "CA": pki.CA, "Cert": pki.ClientCert, "Key": pki.ClientKey,
	}))
	p, err := policy.Parse(buf.Bytes(), "gateway.yaml")
	require.NoError(t, err)
	f.g, err = New(Config{FingerprintKey: []byte("k")}, f.sink, time.Now, prometheus.NewRegistry(), zap.NewNop())
	require.NoError(t, err)
	f.g.Use(p)
	f.front = httptest.NewServer(f.g)
	t.Cleanup(f.front.Close)
	return f
}

// mirror sends what Envoy's mirror sends for route: the primary's request
// with Envoy's additions and the marks. It returns the gateway's status.
func (f *fixture) mirror(t *testing.T, route, method, target string, body io.Reader, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, f.front.URL+target, body)
	require.NoError(t, err)
	req.Host = "shop.example.com"
	for k, v := range map[string]string{
		"user-agent": "curl/8", "x-forwarded-for": "203.0.113.7,192.0.2.2,192.0.2.2", "x-envoy-internal": "true",
		"x-request-id": "id-1", "x-envoy-expected-rq-timeout-ms": "15000",
		wire.HeaderShadow: wire.MarkOn, wire.HeaderRoute: route,
	} {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header["User-Agent"] = []string{""} // none, not Go's
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// halves waits for n halves.
func (f *fixture) halves(t *testing.T, n int) []pair.Half {
	t.Helper()
	require.Eventually(t, func() bool { return len(f.sink.all()) >= n }, 2*time.Second, time.Millisecond)
	return f.sink.all()
}

func TestForwardsThePrimarysRequest(t *testing.T) {
	f := newFixture(t)
	body := strings.Repeat("x", 4<<20)
	require.Equal(t, 202, f.mirror(t, "r", "POST", "/r/a?b=1&c=%2F", strings.NewReader(body), map[string]string{
		wire.HeaderDryRun: "1", "cookie": "s=1", "content-type": "text/plain", "x-tenant": "acme"}))
	got := f.plain.nth(t, 1)
	assert.Equal(t, "POST", got.method)
	assert.Equal(t, "/r/a?b=1&c=%2F", got.uri)
	assert.Equal(t, "shop.example.com", got.host)
	assert.Equal(t, body, string(got.body))
	assert.False(t, got.chunked)
	assert.Equal(t, http.Header{
		"User-Agent": {"curl/8"}, "X-Forwarded-For": {"203.0.113.7,192.0.2.2"}, "X-Request-Id": {"id-1"},
		"X-Envoy-Expected-Rq-Timeout-Ms": {"15000"}, "Cookie": {"s=1"}, "Content-Type": {"text/plain"}, "X-Tenant": {"acme"},
		"X-Shadowlab-Shadow": {"1"}, "X-Shadowlab-Route": {"r"}, "X-Shadowlab-Dry-Run": {"1"},
		"Content-Length": {"4194304"},
	}, got.header, "Envoy's hop and x-envoy-internal removed, nothing added but the marks")

	h := f.halves(t, 1)[0]
	assert.Equal(t, wire.SideShadow, h.Side)
	assert.Equal(t, "id-1", h.RequestID)
	assert.Equal(t, "/r/a?b=1&c=%2F", h.Target)
	assert.Equal(t, "/r/a", h.Path)
	assert.Equal(t, 201, h.Response.Status)
	assert.Equal(t, map[string]string{"content-type": "application/json", "x-version": "2"}, h.Response.Headers, "compared headers only, never Set-Cookie")
	assert.Equal(t, `{"echo":"/r/a"}`, string(h.Response.Body))
	assert.Equal(t, map[string]string{"x-checksum": "abc"}, h.Response.Trailers)
	assert.Positive(t, h.Latency)
	assert.Empty(t, h.Incomplete)
	assert.NotEmpty(t, h.Fingerprint)
}

func TestChunkedAndNoUserAgent(t *testing.T) {
	f := newFixture(t)
	body := io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")) // unknown length: chunked
	require.Equal(t, 202, f.mirror(t, "r", "PUT", "/r", body, map[string]string{wire.HeaderDryRun: "1", "user-agent": "", "x-forwarded-for": "192.0.2.2"}))
	got := f.plain.nth(t, 1)
	assert.True(t, got.chunked)
	assert.Equal(t, "abcdef", string(got.body))
	assert.NotContains(t, got.header, "User-Agent", "Go's client adds none")
	assert.NotContains(t, got.header, "X-Forwarded-For", "the only hop was Envoy's")
}

func TestProtocols(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, 202, f.mirror(t, "h2c", "GET", "/h2c", nil, nil))
	require.Equal(t, 202, f.mirror(t, "tls", "GET", "/tls", nil, nil))
	hs := f.halves(t, 2)
	for _, h := range hs {
		assert.Equal(t, 201, h.Response.Status, "%s: %s", h.Route, h.Incomplete)
	}
	assert.Equal(t, "HTTP/2.0", f.h2c.nth(t, 1).proto)
	assert.Equal(t, "HTTP/2.0", f.tls.nth(t, 1).proto, "ALPN chose h2 over mutual TLS")
}

func TestNotForwarded(t *testing.T) {
	tests := map[string]struct {
		route, method string
		body          string
		header        map[string]string
		status        int
		skip, failed  string // the half's Skip or Incomplete; neither: no half
	}{
		"unknown route":     {route: "nope", method: "GET", status: 404},
		"no marks":          {route: "r", method: "GET", header: map[string]string{wire.HeaderShadow: ""}, status: 404},
		"no request id":     {route: "r", method: "GET", header: map[string]string{"x-request-id": ""}, status: 400},
		"unsafe not opted":  {route: "safe", method: "POST", status: 403, skip: "not a safe method"},
		"unsafe no dry-run": {route: "r", method: "DELETE", status: 403, skip: "not a safe method"},
		"too large":         {route: "safe", method: "GET", body: strings.Repeat("x", 11), status: 413, skip: "over shadow.maxRequestBytes"},
		"refused":           {route: "refused", method: "GET", status: 202, failed: "no response: connection refused"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			require.Equal(t, tc.status, f.mirror(t, tc.route, tc.method, "/x", body, tc.header))
			if tc.skip == "" && tc.failed == "" {
				f.g.Wait()
				assert.Empty(t, f.sink.all())
				return
			}
			h := f.halves(t, 1)[0]
			if tc.skip != "" {
				assert.Contains(t, h.Skip, tc.skip)
			}
			if tc.failed != "" {
				assert.Contains(t, h.Incomplete, tc.failed)
			}
		})
	}
}

func TestShedsInsteadOfQueueing(t *testing.T) {
	f := newFixture(t)
	f.plain.block = make(chan struct{})
	require.Equal(t, 202, f.mirror(t, "r", "GET", "/r/1", nil, nil))
	require.Eventually(t, func() bool { return f.g.busy.Load() == 1 }, time.Second, time.Millisecond)
	require.Equal(t, 503, f.mirror(t, "r", "GET", "/r/2", nil, map[string]string{"x-request-id": "id-2"}), "maxConcurrent 1")
	hs := f.halves(t, 1)
	assert.Equal(t, "id-2", hs[0].RequestID)
	assert.Contains(t, hs[0].Incomplete, "shed by the gateway")
	close(f.plain.block)
	hs = f.halves(t, 2)
	assert.Equal(t, 201, hs[1].Response.Status)
}

func TestTimeoutAndLargeResponse(t *testing.T) {
	f := newFixture(t)
	f.plain.block = make(chan struct{})
	require.Equal(t, 202, f.mirror(t, "safe", "GET", "/safe", nil, nil))
	h := f.halves(t, 1)[0]
	assert.Contains(t, h.Incomplete, "timed out after 300ms")
	close(f.plain.block)

	f = newFixture(t)
	require.Equal(t, 202, f.mirror(t, "r", "GET", "/r/"+strings.Repeat("long", 20), nil, nil))
	h = f.halves(t, 1)[0]
	assert.True(t, h.TooLarge, "body over maxBodyBytes 64")
	assert.Nil(t, h.Response.Body)
	assert.Equal(t, int64(len(`{"echo":"/r/`)+80+2), h.BodyBytes)
}

func TestFingerprint(t *testing.T) {
	f := newFixture(t)
	r := f.g.route("r").r
	fp := func(g *Gateway, method, target, body string, header map[string]string) string {
		req := httptest.NewRequest(method, target, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return g.fingerprint(req, r, []byte(body))
	}
	base := fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en", "x-other": "1"})
	assert.Len(t, base, 32)
	assert.Equal(t, base, fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en", "x-other": "2"}),
		"headers outside identity and varyOn do not count")
	for name, other := range map[string]string{
		"method":  fp(f.g, "HEAD", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en"}),
		"query":   fp(f.g, "GET", "/r?a=2", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en"}),
		"tenant":  fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "globex", "cookie": "s=1", "accept-language": "en"}),
		"body":    fp(f.g, "GET", "/r?a=1", "x", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en"}),
		"cookie":  fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=2", "accept-language": "en"}),
		"auth":    fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en", "authorization": "Bearer x"}),
		"vary on": fp(f.g, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "fr"}),
	} {
		assert.NotEqual(t, base, other, name)
	}
	other, err := New(Config{FingerprintKey: []byte("other")}, f.sink, time.Now, prometheus.NewRegistry(), zap.NewNop())
	require.NoError(t, err)
	assert.NotEqual(t, base, fp(other, "GET", "/r?a=1", "", map[string]string{"x-tenant": "acme", "cookie": "s=1", "accept-language": "en"}), "keyed")
	assert.NotContains(t, base, "s=1")
}

// TestBodiesBeingReceivedAreHeld: the bytes of a body still arriving count
// against MaxBufferedBytes, so slow uploads are shed once the budget is
// held, not read into memory past it.
func TestBodiesBeingReceivedAreHeld(t *testing.T) {
	g, err := New(Config{FingerprintKey: []byte("k"), MaxBufferedBytes: 1000}, &sink{}, time.Now, prometheus.NewRegistry(), zap.NewNop())
	require.NoError(t, err)
	upload := func(length int64) (*http.Request, *io.PipeWriter) {
		pr, pw := io.Pipe()
		req := httptest.NewRequest("POST", "/r", pr)
		req.ContentLength = length
		return req, pw
	}
	slow, pw := upload(600)
	type result struct {
		body    []byte
		problem string
	}
	done := make(chan result)
	go func() {
		body, problem, _ := g.readBody(slow, 5000)
		done <- result{body, problem}
	}()
	_, err = pw.Write([]byte("x")) // one byte in: the declared length is held
	require.NoError(t, err)
	assert.Equal(t, int64(601), g.buffered.Load())

	second, _ := upload(600)
	_, problem, _ := g.readBody(second, 5000)
	assert.Equal(t, outcomeShedMemory, problem, "the slow upload holds the budget")
	chunked, cw := upload(-1)
	go func() {
		_, _ = cw.Write(make([]byte, 2000))
		cw.Close()
	}()
	_, problem, _ = g.readBody(chunked, 5000)
	assert.Equal(t, outcomeShedMemory, problem, "a body of unknown length is held as it grows")
	chunked.Body.Close()
	assert.Equal(t, int64(601), g.buffered.Load(), "a shed body gives back what it held")

	_, err = pw.Write(make([]byte, 599))
	require.NoError(t, err)
	pw.Close()
	r := <-done
	assert.Empty(t, r.problem)
	assert.Len(t, r.body, 600)
	assert.Equal(t, int64(600), g.buffered.Load(), "what is forwarded stays held")
}

// TestUnmarked: in a mesh the mirror carries no marks. The gateway finds
// the route by matching the policy, replaces any mark a client sent,
// marks what it forwards (dry run for unsafe methods of a route that
// mirrors them) and takes off Envoy's "-shadow" Host suffix.
func TestUnmarked(t *testing.T) {
	f := newFixture(t)
	f.g.cfg.Unmarked = true

	status := f.mirror(t, "", "POST", "/r/orders?x=1", strings.NewReader(`{"a":1}`), map[string]string{
		wire.HeaderShadow: "", wire.HeaderRoute: "safe", // a client's forged route: replaced
		wire.HeaderSample: wire.MarkOn, "x-tenant": "acme",
	})
	require.Equal(t, http.StatusAccepted, status)
	got := f.plain.nth(t, 1)
	assert.Equal(t, "/r/orders?x=1", got.uri)
	assert.Equal(t, wire.MarkOn, got.header.Get(wire.HeaderShadow))
	assert.Equal(t, "r", got.header.Get(wire.HeaderRoute))
	assert.Equal(t, wire.MarkOn, got.header.Get(wire.HeaderDryRun), "POST on a route that mirrors unsafe methods")
	assert.Empty(t, got.header.Get(wire.HeaderSample))
	require.Eventually(t, func() bool { return len(f.sink.all()) == 1 }, 2*time.Second, time.Millisecond)
	assert.Equal(t, "r", f.sink.all()[0].Route)

	req, err := http.NewRequest("GET", f.front.URL+"/safe/x", nil)
	require.NoError(t, err)
	req.Host = "shop.example.com-shadow:8080"
	req.Header.Set("x-request-id", "id-2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	got = f.plain.nth(t, 2)
	assert.Equal(t, "shop.example.com:8080", got.host)
	assert.Equal(t, "safe", got.header.Get(wire.HeaderRoute))
	assert.Empty(t, got.header.Get(wire.HeaderDryRun))

	// A request no mirrored route matches is refused, as an unknown route.
	req, err = http.NewRequest("GET", f.front.URL+"/nothing", nil)
	require.NoError(t, err)
	req.Header.Set("x-request-id", "id-3")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
