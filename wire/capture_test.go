package wire

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func randomRecord(r *rand.Rand) CaptureRecord {
	str := func(n int) string { return strings.Repeat(string(rune('a'+r.IntN(26))), 1+r.IntN(n)) }
	c := CaptureRecord{Route: str(30), RequestID: str(36), Method: "GET", Target: "/" + str(300),
		Status: 100 + r.IntN(500), LatencyMicros: r.Uint32(), BodyBytes: r.Uint32(), Flags: uint8(r.IntN(4))}
	for range r.IntN(4) {
		c.Headers = append(c.Headers, [2]string{str(20), str(200)})
	}
	if r.IntN(3) > 0 {
		c.Body = []byte(str(5000))
	}
	for range r.IntN(3) {
		c.Trailers = append(c.Trailers, [2]string{str(20), str(200)})
	}
	if len(c.Trailers) > 0 {
		c.Flags |= FlagTrailers // what a reader sees
	}
	return c
}

// What the plugin writes, the API reads back unchanged.
func TestCaptureRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		var batch []byte
		var want []CaptureRecord
		for range 1 + r.IntN(5) {
			c := randomRecord(r)
			batch = AppendCaptureRecord(batch, &c)
			want = append(want, c)
		}
		got, err := ParseCaptureBatch(batch)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	got, err := ParseCaptureBatch(nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestCaptureClipsLongValues(t *testing.T) {
	c := CaptureRecord{Route: strings.Repeat("r", 300), RequestID: "id", Target: strings.Repeat("/", 70000), Status: 70000}
	got, err := ParseCaptureBatch(AppendCaptureRecord(nil, &c))
	require.NoError(t, err)
	require.Len(t, got[0].Route, 255)
	require.Len(t, got[0].Target, 65535)
	require.Equal(t, 65535, got[0].Status)
}

func TestParseCaptureBatchErrors(t *testing.T) {
	good := AppendCaptureRecord(nil, &CaptureRecord{Route: "r", RequestID: "id", Status: 200, Body: []byte("{}")})
	tests := map[string]struct {
		batch []byte
		err   string
	}{
		"short length":   {good[:3], "offset 0: truncated length"},
		"past the end":   {good[:len(good)-1], "past the end"},
		"second broken":  {append(bytes.Clone(good), 1, 0, 0, 0, 9), "offset " + strconv.Itoa(len(good)) + ": unknown version 9"},
		"trailing bytes": {withLength(append(bytes.Clone(good[4:]), 'x')), "1 bytes after the body"},
		"no request id":  {AppendCaptureRecord(nil, &CaptureRecord{Route: "r"}), "no route or request id"},
		"bad flags":      {AppendCaptureRecord(nil, &CaptureRecord{Route: "r", RequestID: "i", Flags: 8}), "unknown flags 8"},
		"truncated body": {withLength(good[4 : len(good)-1]), "truncated"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCaptureBatch(tc.batch)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func withLength(rest []byte) []byte {
	return append([]byte{byte(len(rest)), byte(len(rest) >> 8), 0, 0}, rest...)
}

// FuzzParseCaptureBatch: never panics, and what it accepts it writes back
// byte for byte.
func FuzzParseCaptureBatch(f *testing.F) {
	f.Add(AppendCaptureRecord(nil, &CaptureRecord{Route: "r", RequestID: "id", Method: "GET", Target: "/a", Status: 200,
		Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"a":1}`), BodyBytes: 7}))
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, batch []byte) {
		recs, err := ParseCaptureBatch(batch)
		if err != nil {
			return
		}
		var again []byte
		for i := range recs {
			again = AppendCaptureRecord(again, &recs[i])
		}
		require.Equal(t, string(batch), string(again))
	})
}

func TestCaptureConfig(t *testing.T) {
	c := CaptureConfig{Route: "r", MaxBodyBytes: 64, Headers: "x-version,set-cookie,content-type", ReportCluster: "shadowlab_api"}
	b := c.AppendJSON(nil)
	require.Equal(t, `{"route":"r","max_body_bytes":64,"headers":"x-version,set-cookie,content-type","report_cluster":"shadowlab_api"}`, string(b))
	got, err := ParseCaptureConfig(b)
	require.NoError(t, err)
	require.Equal(t, CaptureConfig{Route: "r", MaxBodyBytes: 64, Headers: "x-version,set-cookie,content-type", ReportCluster: "shadowlab_api",
		ReportPath: CapturePath, ReportAuthority: ReportAuthority, TickMs: DefaultTickMs, MaxPendingBytes: DefaultCapturePending, MaxInflight: DefaultCaptureInflight}, got)
	require.Equal(t, []string{"content-type", "content-encoding", "x-version"}, got.KeptHeaders(), "never set-cookie")
	again, err := ParseCaptureConfig(got.AppendJSON(nil))
	require.NoError(t, err)
	require.Equal(t, got, again)

	_, err = ParseCaptureConfig([]byte(`{"max_body_bytes":"x","report_path":"p"}`))
	require.ErrorContains(t, err, "configuration.max_body_bytes: must be a whole number")
	_, err = ParseCaptureConfig([]byte(`{"report_path":"p"}`))
	require.Equal(t, "configuration.report_cluster: required\nconfiguration.report_path: must start with / (got \"p\")", err.Error())
	_, err = ParseCaptureConfig(nil)
	require.ErrorContains(t, err, "configuration: empty")
}

// One instance per listener: its configuration has no route and only the
// per-instance fields; each Envoy route's settings travel in its metadata.
func TestCaptureConfigWithoutRoute(t *testing.T) {
	got, err := ParseCaptureConfig([]byte(`{"report_cluster":"shadowlab_api","tick_ms":100}`))
	require.NoError(t, err)
	require.Equal(t, CaptureConfig{ReportCluster: "shadowlab_api", ReportPath: CapturePath, ReportAuthority: ReportAuthority,
		TickMs: 100, MaxPendingBytes: DefaultCapturePending, MaxInflight: DefaultCaptureInflight}, got, "no per-route defaults")
	require.Equal(t, `{"report_cluster":"shadowlab_api","report_path":"/api/v1/capture","report_authority":"shadowlab","tick_ms":100,"max_pending_bytes":8388608,"max_inflight":4}`,
		string(got.AppendJSON(nil)), "no route written")

	_, err = ParseCaptureConfig([]byte(`{"report_cluster":"api","headers":"x-v","sample_per_million":5,"route":""}`))
	require.Equal(t, "configuration.headers: set per route, in route metadata shadowlab.capture, when route is empty\n"+
		"configuration.sample_per_million: set per route, in route metadata shadowlab.capture, when route is empty", err.Error())
}

func TestCaptureRoute(t *testing.T) {
	full := CaptureConfig{Route: "orders", MaxBodyBytes: 64, Headers: "x-version", EnvoyRoutes: "orders.mirror",
		SampleHeader: HeaderSample, SamplePerMillion: 250_000, SampleMethods: "GET,HEAD", SampleTenantHeader: "x-tenant",
		SampleTenants: "acme\nglobex", SampleStickyHeader: "x-user-id",
		ReportCluster: "api", ReportPath: "/p", ReportAuthority: "a", TickMs: 100, MaxPendingBytes: 1, MaxInflight: 1}
	perRoute := full
	perRoute.ReportCluster, perRoute.ReportPath, perRoute.ReportAuthority = "", "", ""
	perRoute.TickMs, perRoute.MaxPendingBytes, perRoute.MaxInflight = 0, 0, 0

	tests := map[string]struct {
		json string
		want CaptureConfig
		err  string
	}{
		"every per-route field": {json: string(full.AppendRouteJSON(nil)), want: perRoute},
		"defaults":              {json: `{"route":"r"}`, want: CaptureConfig{Route: "r", MaxBodyBytes: DefaultCaptureBodyBytes}},
		"route required":        {json: `{"headers":"x-v"}`, err: "shadowlab.capture.route: required"},
		"instance field":        {json: `{"route":"r","report_cluster":"api"}`, err: "shadowlab.capture.report_cluster: unknown field"},
		"every problem": {json: `{"sample_per_million":1000001,"sample_header":"X-S"}`,
			err: "shadowlab.capture.route: required\nshadowlab.capture.sample_per_million: at most 1000000 (got 1000001)\n" +
				"shadowlab.capture.sample_header: a lower-case header name (got \"X-S\")"},
		"wrong type":    {json: `{"route":1}`, err: "shadowlab.capture.route: must be a string"},
		"not an object": {json: `"{\"route\":\"r\"}"`, err: "shadowlab.capture: expected '{' at offset 0"},
		"empty":         {json: ``, err: "shadowlab.capture: empty, need at least {\"route\": \"...\"}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCaptureRoute([]byte(tc.json))
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	require.Equal(t, `{"route":"orders","max_body_bytes":64,"headers":"x-version","envoy_routes":"orders.mirror",`+
		`"sample_header":"x-shadowlab-sample","sample_per_million":250000,"sample_methods":"GET,HEAD","sample_tenant_header":"x-tenant",`+
		`"sample_tenants":"acme\u000aglobex","sample_sticky_header":"x-user-id"}`, string(full.AppendRouteJSON(nil)))
}

// FuzzParseCaptureRoute: never panics, and what it accepts it writes back
// (AppendRouteJSON) as settings that parse to the same.
func FuzzParseCaptureRoute(f *testing.F) {
	f.Add([]byte(`{"route":"r","max_body_bytes":64,"headers":"x-v","sample_header":"x-s","sample_per_million":5}`))
	f.Add([]byte(`{"route":"r","sample_tenants":"a\nb","sample_sticky_header":"x-user-id"}`))
	f.Add([]byte(`{"route":"r","report_cluster":"api"}`))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0x1c, 0x40}) // a number in the metadata: Envoy hands its double
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCaptureRoute(data)
		if err != nil {
			return
		}
		again, err := ParseCaptureRoute(c.AppendRouteJSON(nil))
		require.NoError(t, err)
		require.Equal(t, c, again)
	})
}

func TestSampleCandidate(t *testing.T) {
	c := CaptureConfig{SampleMethods: "GET,HEAD", SampleTenantHeader: "x-tenant", SampleTenants: "acme\nglo,bex"}
	h := func(v string, ok bool) func(string) (string, bool) {
		return func(string) (string, bool) { return v, ok }
	}
	for _, tc := range []struct {
		method string
		tenant func(string) (string, bool)
		want   bool
	}{
		{"GET", h("acme", true), true},
		{"HEAD", h("glo,bex", true), true}, // values may hold commas
		{"POST", h("acme", true), false},
		{"GET", h("globex", true), false},
		{"GET", h("", false), false},
	} {
		if got := c.SampleCandidate(tc.method, tc.tenant); got != tc.want {
			v, _ := tc.tenant("")
			t.Errorf("%s tenant %q: %v, want %v", tc.method, v, got, tc.want)
		}
	}
	if !(&CaptureConfig{}).SampleCandidate("DELETE", h("", false)) {
		t.Error("no narrowing: every request is a candidate")
	}
	c.Route, c.ReportCluster = "r", "api"
	c2, err := ParseCaptureConfig(c.AppendJSON(nil))
	if err != nil || c2.SampleTenants != c.SampleTenants || c2.SampleMethods != c.SampleMethods || c2.SampleTenantHeader != c.SampleTenantHeader {
		t.Errorf("round trip: %+v, %v", c2, err)
	}
}
