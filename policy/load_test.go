package policy

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestLoadValid(t *testing.T) {
	p, err := Load("testdata/valid.policy.yaml")
	require.NoError(t, err)

	legacy := &Service{Name: "billing-legacy", Endpoints: []string{"127.0.0.1:8081"}, ConnectTimeout: time.Second, Protocol: ProtocolAuto}
	v2 := &Service{Name: "billing-v2", Endpoints: []string{"127.0.0.1:8082"}, ConnectTimeout: time.Second, Protocol: ProtocolAuto}
	spec := compare.Spec{
		Ignore:           []string{"$.generated_at", "$.items[*].id"},
		NumericTolerance: 0.001,
		UnorderedArrays:  []string{"$.items"},
		Headers:          []string{"content-type"},
	}
	route := &Route{
		Name:    "billing-records",
		Match:   Match{PathPrefix: "/billing/records", Methods: []string{"GET"}},
		Primary: legacy,
		Timeout: 15 * time.Second,
		Shadow: &Shadow{
			Service:         v2,
			Percent:         10,
			PerMillion:      100_000,
			Tenants:         &Tenants{Header: "x-tenant", Values: []string{"acme", "globex"}},
			MaxConcurrent:   100,
			MaxRequestBytes: 1 << 20,
			Capture:         true,
			Compare:         Compare{Spec: spec, LearnNoise: true, MaxBodyBytes: 1 << 20},
		},
		Admission: &Admission{
			Rate:      "100/s",
			Budget:    admission.Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Minute, Mode: admission.ModeDelay, Slack: LocalAdmissionSlack},
			Scope:     wire.ScopeLocal,
			KeyHeader: "x-tenant",
		},
	}
	want := &Policy{
		Listeners: []*Listener{{Name: "ingress", Address: "0.0.0.0:10000", Routes: []*Route{route}}},
		Services:  []*Service{legacy, v2},
		Routes:    []*Route{route},
	}
	require.Regexp(t, `^[0-9a-f]{64}$`, p.Hash)
	require.Regexp(t, `^[0-9a-f]{64}$`, p.Routes[0].Hash)
	require.Regexp(t, `^[0-9a-f]{64}$`, p.Routes[0].Shadow.Compare.Hash)
	require.NotNil(t, p.Routes[0].Shadow.Compare.Rules)
	opts := []cmp.Option{
		cmpopts.IgnoreFields(Policy{}, "Hash"), cmpopts.IgnoreFields(Route{}, "Hash"), cmpopts.IgnoreFields(Compare{}, "Hash", "Rules"),
		cmpopts.IgnoreUnexported(Policy{}),
	}
	if diff := cmp.Diff(want, p, opts...); diff != "" {
		t.Fatalf("policy (-want +got):\n%s", diff)
	}
	require.Equal(t, []string{"content-type"}, p.Routes[0].Shadow.Compare.Rules.Headers())
	require.Same(t, p.Routes[0], p.Route("billing-records"))
	require.Same(t, p.Routes[0], p.Listeners[0].Routes[0])
	require.Nil(t, p.Route("nope"))
	require.Same(t, p.Services[1], p.Service("billing-v2"))
	require.Same(t, p.Services[1], p.Routes[0].Shadow.Service)
	require.Equal(t, []*Route{p.Routes[0]}, p.AdmissionRoutes(wire.ScopeLocal))
	require.Empty(t, p.AdmissionRoutes(wire.ScopeGlobal))
}

func TestDefaults(t *testing.T) {
	p, err := Parse([]byte(`
version: 1
listeners: [{name: in, address: "127.0.0.1:10000"}, {name: other, address: "127.0.0.1:10001"}]
services:
  a: {endpoints: ["127.0.0.1:1"]}
  b: {endpoints: ["127.0.0.1:2"], connectTimeout: 250ms}
routes:
  - {name: plain, match: {path: /plain}, primary: a, listeners: [other]}
  - name: full
    match: {pathPrefix: /}
    primary: a
    shadow: {service: b, percent: 0.5}
    admission: {rate: 10000/15m, mode: reject, scope: global}
  - name: compared
    match: {pathPrefix: /c}
    primary: a
    shadow: {service: b, percent: 12.34567}
    compare: {learnNoise: false, maxBodyBytes: 10}
`), "defaults")
	require.NoError(t, err)
	require.Equal(t, DefaultConnectTimeout, p.Service("a").ConnectTimeout)
	require.Equal(t, 250*time.Millisecond, p.Service("b").ConnectTimeout)

	plain := p.Route("plain")
	require.Equal(t, DefaultRouteTimeout, plain.Timeout)
	require.Nil(t, plain.Shadow)
	require.Nil(t, plain.Admission)
	require.Equal(t, []*Route{p.Route("full"), p.Route("compared")}, p.Listeners[0].Routes)
	require.Equal(t, []*Route{plain, p.Route("full"), p.Route("compared")}, p.Listeners[1].Routes)

	full := p.Route("full")
	require.Equal(t, DefaultMaxConcurrent, full.Shadow.MaxConcurrent)
	require.Equal(t, uint32(5000), full.Shadow.PerMillion)
	c := full.Shadow.Compare
	require.Equal(t, compare.Spec{}, c.Spec)
	require.NotNil(t, c.Rules)
	require.True(t, c.LearnNoise)
	require.Equal(t, DefaultMaxBodyBytes, c.MaxBodyBytes)
	require.Equal(t, &Admission{
		Rate:   "10000/15m",
		Budget: admission.Config{Limit: 10000, Window: 15 * time.Minute, Mode: admission.ModeReject, Slack: GlobalAdmissionSlack},
		Scope:  wire.ScopeGlobal,
	}, full.Admission)

	compared := p.Route("compared")
	require.Equal(t, uint32(123457), compared.Shadow.PerMillion)
	require.False(t, compared.Shadow.Compare.LearnNoise)
	require.Equal(t, int64(10), compared.Shadow.Compare.MaxBodyBytes)
	require.NotEqual(t, c.Hash, compared.Shadow.Compare.Hash)
}

func TestPerMillion(t *testing.T) {
	tests := map[string]struct {
		percent string
		want    uint32
	}{
		"zero":       {"0", 0},
		"hundred":    {"100", 1_000_000},
		"ten":        {"10.0", 100_000},
		"fractional": {"12.5", 125_000},
		"finest":     {"0.0001", 1},
		"rounded":    {"0.00004", 0},
	}
	base, err := os.ReadFile("testdata/valid.policy.yaml")
	require.NoError(t, err)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(string(base), "percent: 10 ", "percent: "+tc.percent+" ", 1)
			require.NotEqual(t, string(base), text)
			p, err := Parse([]byte(text), "p")
			require.NoError(t, err)
			require.Equal(t, tc.want, p.Routes[0].Shadow.PerMillion)
		})
	}
}

func TestRate(t *testing.T) {
	tests := map[string]struct {
		rate   string
		limit  int
		window time.Duration
	}{
		"per second":       {"100/s", 100, time.Second},
		"per millisecond":  {"1/ms", 1, time.Millisecond},
		"per minute":       {"5/m", 5, time.Minute},
		"per hour":         {"7/h", 7, time.Hour},
		"go duration":      {"10000/15m", 10000, 15 * time.Minute},
		"compound":         {"3/1h30m", 3, 90 * time.Minute},
		"sub-second":       {"20/500ms", 20, 500 * time.Millisecond},
		"largest":          {"1000000000/24h", 1_000_000_000, 24 * time.Hour},
		"fractional value": {"2/1.5s", 2, 1500 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n, w, err := parseRate(tc.rate)
			require.NoError(t, err)
			require.Equal(t, tc.limit, n)
			require.Equal(t, tc.window, w)
		})
	}
}

// TestBrokenGolden checks the full report for a file with ten mistakes:
// each is found, on its own line, and nothing else is reported.
// go test ./policy -update rewrites the golden file.
func TestBrokenGolden(t *testing.T) {
	_, err := Load("testdata/broken.policy.yaml")
	require.ErrorIs(t, err, ErrInvalid)
	var perr *Error
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.Problems, 10)

	golden := filepath.Join("testdata", "broken.errors.golden")
	got := err.Error() + "\n"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Fatalf("error text (-golden +got):\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NotErrorIs(t, err, ErrInvalid)
}

// TestWholeFile covers problems with the file as a whole and with YAML
// itself.
func TestWholeFile(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want string // the full rendered error
	}{
		"empty":          {"", `f:1: the policy is empty (want a mapping with version, listeners, services and routes)`},
		"only comments":  {"# nothing\n# here\n", `f:1: the policy is empty (want a mapping with version, listeners, services and routes)`},
		"null document":  {"---\n", `f:1: the policy is empty (want a mapping with version, listeners, services and routes)`},
		"not a mapping":  {"- a\n- b\n", `f:1: the policy must be a mapping with version, listeners, services and routes (got a list)`},
		"syntax":         {"version: 1\nlisteners: [\n", `f:2: invalid YAML: did not find expected node content`},
		"tab indent":     {"version: 1\nroutes:\n\t- a\n", `f:3: invalid YAML: found character that cannot start any token`},
		"two documents":  {"version: 1\n---\nversion: 1\n", `f:3: only one YAML document is allowed (found a second one)`},
		"missing blocks": {"version: 1\n", "f:1: listeners: at least one listener is required\nf:1: routes: at least one route is required\nf:1: services: at least one service is required"},
		"wrong kinds": {"version: one\nlisteners: {}\nservices: []\nroutes: x\n",
			"f:1: version: must be a whole number (got \"one\")\nf:2: listeners: must be a list (got a mapping)\nf:3: services: must be a mapping (got a list)\nf:4: routes: must be a list (got \"x\"; write [x])"},
		"alias": {"version: 1\nx: &a 1\nlisteners: *a\n",
			"f:1: routes: at least one route is required\nf:1: services: at least one service is required\nf:2: x: field \"x\" not known (known fields: listeners, routes, services, version)\nf:3: listeners: YAML aliases (*a) are not supported; write the value out"},
		"duplicate key": {"version: 1\nversion: 1\n", "f:1: listeners: at least one listener is required\nf:1: routes: at least one route is required\nf:1: services: at least one service is required\nf:2: version: duplicate key \"version\" (first at line 1)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(tc.yaml), "f")
			require.Nil(t, p)
			require.ErrorIs(t, err, ErrInvalid)
			require.Equal(t, tc.want, err.Error())
		})
	}
}

// TestLines checks the line of each kind of node, and that a missing field
// points at the mapping that lacks it.
func TestLines(t *testing.T) {
	const doc = `version: 1
listeners:
  - name: in
    address: 0.0.0.0:1
services:
  a:
    endpoints:
      - 127.0.0.1:1
      - 127.0.0.1:1
routes:
  - name: r
    match:
      path: /x
    primary: a
    shadow:
      service: a
`
	_, err := Parse([]byte(doc), "l.yaml")
	var perr *Error
	require.ErrorAs(t, err, &perr)
	require.Equal(t, []Problem{
		{Path: "services.a.endpoints[1]", Line: 9, Msg: `duplicate endpoint "127.0.0.1:1" (first at line 8)`},
		{Path: "routes[0].shadow.percent", Line: 15, Msg: "required: the percent of matching requests to mirror, 0 to 100"},
		{Path: "routes[0].shadow.service", Line: 16, Msg: `must differ from primary "a" (a route cannot mirror to its own primary)`},
	}, sortedProblems(perr.Problems))
}

func TestErrorRendering(t *testing.T) {
	tests := map[string]struct {
		err  *Error
		want string
	}{
		"sorted by line then path": {
			err: &Error{Source: "p.yaml", Problems: []Problem{
				{Path: "b", Line: 3, Msg: "m3"}, {Path: "z", Line: 1, Msg: "m1"}, {Path: "a", Line: 3, Msg: "m2"},
			}},
			want: "p.yaml:1: z: m1\np.yaml:3: a: m2\np.yaml:3: b: m3",
		},
		"no line":   {&Error{Source: "p.yaml", Problems: []Problem{{Path: "a", Msg: "m"}}}, "p.yaml: a: m"},
		"no source": {&Error{Problems: []Problem{{Path: "a", Line: 2, Msg: "m"}}}, "line 2: a: m"},
		"neither":   {&Error{Problems: []Problem{{Path: "a", Msg: "m"}}}, "a: m"},
		"no path":   {&Error{Source: "p.yaml", Problems: []Problem{{Line: 1, Msg: "m"}}}, "p.yaml:1: m"},
		"duplicates dropped": {
			&Error{Source: "s", Problems: []Problem{{Path: "a", Line: 1, Msg: "m"}, {Path: "a", Line: 1, Msg: "m"}}},
			"s:1: a: m",
		},
		"empty": {&Error{Source: "s"}, "s: invalid policy"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.err.Error())
			require.True(t, errors.Is(tc.err, ErrInvalid))
		})
	}
}

func TestHash(t *testing.T) {
	load := func(t *testing.T, text string) string {
		t.Helper()
		p, err := Parse([]byte(text), "h")
		require.NoError(t, err)
		return p.Hash
	}
	base, err := os.ReadFile("testdata/valid.policy.yaml")
	require.NoError(t, err)
	h := load(t, string(base))
	require.Regexp(t, `^[0-9a-f]{64}$`, h)

	tests := map[string]struct {
		text string
		same bool
	}{
		"same file again":     {string(base), true},
		"comments and layout": {"# hi\n" + strings.ReplaceAll(string(base), "billing-v2:     {", "billing-v2: {"), true},
		"explicit defaults": {strings.Replace(string(base), "primary: billing-legacy",
			"primary: billing-legacy\n    timeout: 15s", 1), true},
		"percent changed":   {strings.Replace(string(base), "percent: 10 ", "percent: 11 ", 1), false},
		"tenant added":      {strings.Replace(string(base), "[acme, globex]", "[acme, globex, initech]", 1), false},
		"timeout changed":   {strings.Replace(string(base), "primary: billing-legacy", "primary: billing-legacy\n    timeout: 16s", 1), false},
		"trust request IDs": {strings.Replace(string(base), "address: 0.0.0.0:10000}", "address: 0.0.0.0:10000, trustRequestID: true}", 1), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.same {
				require.Equal(t, h, load(t, tc.text))
			} else {
				require.NotEqual(t, string(base), tc.text, "the edit did not apply")
				require.NotEqual(t, h, load(t, tc.text))
			}
		})
	}
}
