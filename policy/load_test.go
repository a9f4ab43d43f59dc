package policy

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/stretchr/testify/assert"
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
		cmpopts.IgnoreUnexported(Policy{}, Route{}),
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
		"duplicate key": {"version: 1\nversion: 1\n", "f:1: listeners: at least one listener is required\nf:1: routes: at least one route is required\nf:1: services: at least one service is required\nf:2: version: duplicate key \"version\": first at line 1, again at line 2 (only the first is used)"},
		"duplicate key on one line": {"version: 1\nlisteners: [{name: a, address: \"127.0.0.1:1\", name: b}]\nservices: {s: {endpoints: [\"127.0.0.1:2\"]}}\nroutes: [{name: r, match: {path: /}, primary: s}]\n",
			"f:2: listeners[0].name: duplicate key \"name\": first at line 2 column 14, again at column 47 (only the first is used)"},
		"syntax on line 1":               {"version: 1: 2\n", `f:1: invalid YAML: mapping values are not allowed in this context`},
		"unterminated quote":             {"version: 'x", `f:1: invalid YAML: found unexpected end of stream`},
		"unknown anchor":                 {"version: 1\nlisteners: [*nope]\n", `f:2: invalid YAML: unknown anchor 'nope' referenced`},
		"invalid UTF-8":                  {"version: 1\n# caf\xe9\nlisteners: []\n", `f:2: invalid UTF-8 at column 6 (byte 0xe9): the policy must be UTF-8 text`},
		"invalid UTF-8 after multi-byte": {"version: 1\nroutes: [{name: \"é\xff\"}]\n", `f:2: invalid UTF-8 at column 19 (byte 0xff): the policy must be UTF-8 text`},
		"surrogate":                      {"version: 1\n\n  # \xed\xa0\x80\n", `f:3: invalid UTF-8 at column 5 (byte 0xed): the policy must be UTF-8 text`},
		"control character":              {"version: 1\nlisteners: [\x01]\n", `f:2: character U+0001 at column 13 is not allowed in YAML`},
		"NUL":                            {"version: 1\x00\n", `f:1: character U+0000 at column 11 is not allowed in YAML`},
		"UTF-16":                         {"\xff\xfev\x00", `f:1: the policy must be UTF-8 text (found a UTF-16 byte order mark)`},
		"too large":                      {"# " + strings.Repeat("x", MaxFileBytes) + "\n", "f: the policy is " + strconv.Itoa(MaxFileBytes+3) + " bytes (at most 32 MiB)"},
		"too many nodes": {"x: [" + strings.Repeat("a,", MaxYAMLNodes/2) + "a]\n",
			"f: the policy is too large to parse: its text could make " + strconv.Itoa(MaxYAMLNodes+8) + ` YAML nodes (at most ` + strconv.Itoa(MaxYAMLNodes) + `; each ":", ",", "[", "{", "?" and list "- " counts 2)`},
		"key too long": {"version: 1\n? " + strings.Repeat("k", MaxStringBytes+1) + "\n: 1\nlisteners: []\nservices: {}\nroutes: []\n",
			"f:2: mapping key \"" + strings.Repeat("k", 60) + "…\" is 4097 bytes (at most 4096)\nf:4: listeners: at least one listener is required\nf:5: services: at least one service is required\nf:6: routes: at least one route is required"},
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

// TestDuplicateKey: a duplicate key, at the top or nested, is one problem
// naming the key and both lines; the first value is checked as usual and
// nothing else is reported.
func TestDuplicateKey(t *testing.T) {
	base, err := os.ReadFile("testdata/valid.policy.yaml")
	require.NoError(t, err)
	text := string(base)
	tests := map[string]struct {
		text string
		want string
	}{
		"version":   {strings.Replace(text, "version: 1\n", "version: 1\nversion: 1\n", 1), `f:5: version: duplicate key "version": first at line 4, again at line 5 (only the first is used)`},
		"routes":    {text + "routes: []\n", `f:30: routes: duplicate key "routes": first at line 9, again at line 30 (only the first is used)`},
		"listeners": {text + "listeners:\n  - {name: x, address: 1.2.3.4:5}\n", `f:30: listeners: duplicate key "listeners": first at line 5, again at line 30 (only the first is used)`},
		"services":  {text + "services: {}\n", `f:30: services: duplicate key "services": first at line 6, again at line 30 (only the first is used)`},
		"service": {strings.Replace(text, "services:\n", "services:\n  billing-v2: {endpoints: [\"127.0.0.1:9\"]}\n", 1),
			`f:9: services.billing-v2: duplicate key "billing-v2": first at line 7, again at line 9 (only the first is used)`},
		"nested field": {strings.Replace(text, "      percent: 10 ", "      percent: 20\n      percent: 10 ", 1),
			`f:16: routes[0].shadow.percent: duplicate key "percent": first at line 15, again at line 16 (only the first is used)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, text, tc.text, "the edit did not apply")
			_, err := Parse([]byte(tc.text), "f")
			require.ErrorIs(t, err, ErrInvalid)
			require.Equal(t, tc.want, err.Error())
		})
	}
}

// TestStringLimits: a string over its limit is one problem at its path and
// line, and is not checked further.
func TestStringLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := map[string]struct {
		match, shadow, extra string // YAML inserted into route r
		path                 string
		limit                int
	}{
		"path":           {match: "path: /" + long(MaxPathBytes), path: "routes[0].match.path", limit: MaxPathBytes},
		"path prefix":    {match: "pathPrefix: /" + long(5<<20), path: "routes[0].match.pathPrefix", limit: MaxPathBytes},
		"path regex":     {match: "pathRegex: /" + long(MaxRegexBytes), path: "routes[0].match.pathRegex", limit: MaxRegexBytes},
		"method":         {match: "path: /, methods: [" + long(MaxHeaderNameBytes+1) + "]", path: "routes[0].match.methods[0]", limit: MaxHeaderNameBytes},
		"header name":    {match: "path: /, headers: [{name: x" + long(MaxHeaderNameBytes) + ", present: true}]", path: "routes[0].match.headers[0].name", limit: MaxHeaderNameBytes},
		"header exact":   {match: "path: /, headers: [{name: x, exact: " + long(MaxHeaderValueBytes+1) + "}]", path: "routes[0].match.headers[0].exact", limit: MaxHeaderValueBytes},
		"header regex":   {match: "path: /, headers: [{name: x, regex: " + long(MaxRegexBytes+1) + "}]", path: "routes[0].match.headers[0].regex", limit: MaxRegexBytes},
		"tenant value":   {match: "path: /", shadow: "tenants: {header: x-t, values: [a, " + long(MaxHeaderValueBytes+1) + "]}", path: "routes[0].shadow.tenants.values[1]", limit: MaxHeaderValueBytes},
		"compare header": {match: "path: /", extra: "compare: {headers: [" + long(MaxHeaderNameBytes+1) + "]}", path: "routes[0].compare.headers[0]", limit: MaxHeaderNameBytes},
		"admission key":  {match: "path: /", extra: "admission: {rate: 1/s, maxDelay: 1m, key: \"header:" + long(MaxHeaderNameBytes+1) + "\"}", path: "routes[0].admission.key", limit: MaxHeaderNameBytes + len("header:")},
		"other string":   {match: "path: /", extra: "timeout: " + long(MaxStringBytes+1), path: "routes[0].timeout", limit: MaxStringBytes},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			shadow := "shadow: {service: b, percent: 1"
			if tc.shadow != "" {
				shadow += ", " + tc.shadow
			}
			text := "version: 1\nlisteners: [{name: in, address: \"127.0.0.1:1\"}]\nservices: {a: {endpoints: [\"127.0.0.1:2\"]}, b: {endpoints: [\"127.0.0.1:3\"]}}\nroutes:\n" +
				"  - name: r\n    primary: a\n    " + shadow + "}\n    match: {" + tc.match + "}\n"
			if tc.extra != "" {
				text += "    " + tc.extra + "\n"
			}
			_, err := Parse([]byte(text), "f")
			var perr *Error
			require.ErrorAs(t, err, &perr)
			require.Len(t, perr.Problems, 1, "%v", err)
			pr := perr.Problems[0]
			assert.Equal(t, tc.path, pr.Path)
			assert.Contains(t, []int{7, 8, 9}, pr.Line) // shadow, match, extra
			assert.Regexp(t, `^".{60}…" is \d+ bytes \(at most `+strconv.Itoa(tc.limit)+`\)$`, pr.Msg)
		})
	}
}

// TestReadFile: what is not a regular file is refused without blocking,
// and so is a file over MaxFileBytes, without reading it.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	valid, err := os.ReadFile("testdata/valid.policy.yaml")
	require.NoError(t, err)
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, valid, 0o600))

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(50<<30)) // 50 GiB, sparse: read, it would not fit
	require.NoError(t, f.Close())
	link := filepath.Join(t.TempDir(), "link.yaml")
	require.NoError(t, os.Symlink(good, link))
	fifoLink := filepath.Join(t.TempDir(), "fifo-link.yaml")
	require.NoError(t, os.Symlink(fifo, fifoLink))

	tests := map[string]struct {
		path string
		want error
		msg  string
	}{
		"regular":         {path: good},
		"symlink":         {path: link},
		"fifo":            {path: fifo, want: ErrNotRegular, msg: "not a regular file (a named pipe)"},
		"symlink to fifo": {path: fifoLink, want: ErrNotRegular, msg: "not a regular file (a named pipe)"},
		"directory":       {path: dir, want: ErrNotRegular, msg: "not a regular file (a directory)"},
		"device":          {path: os.DevNull, want: ErrNotRegular, msg: "not a regular file (a device)"},
		"too large":       {path: big, want: ErrTooLarge, msg: "policy file too large (53687091200 bytes, at most 32 MiB)"},
		"missing":         {path: filepath.Join(dir, "nope"), want: fs.ErrNotExist},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data, err := ReadFile(tc.path)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, valid, data)
				_, err = Load(tc.path)
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.NotErrorIs(t, err, ErrInvalid)
			require.Contains(t, err.Error(), tc.msg)
			require.Contains(t, err.Error(), tc.path)
			_, err = Load(tc.path)
			require.ErrorIs(t, err, tc.want)
		})
	}
}
