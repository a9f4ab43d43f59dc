package policy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRouteFor(t *testing.T) {
	p, err := Parse([]byte(`version: 1
listeners: [{name: edge, address: "127.0.0.1:10000"}]
services:
  a: {endpoints: ["127.0.0.1:1"]}
routes:
  - {name: exact, match: {path: /v1/orders}, primary: a}
  - {name: regex, match: {pathRegex: "/v1/orders/[0-9]+"}, primary: a}
  - {name: beta, match: {pathPrefix: /v1, headers: [{name: x-beta, present: true}]}, primary: a}
  - {name: writes, match: {pathPrefix: /v1, methods: [POST, PUT]}, primary: a}
  - {name: gold, match: {pathPrefix: /v1, headers: [{name: x-tier, regex: "gold|platinum"}]}, primary: a}
  - {name: notfree, match: {pathPrefix: /v1, headers: [{name: x-plan, exact: free, invert: true}]}, primary: a}
  - {name: rest, match: {pathPrefix: /}, primary: a}
`), "t.yaml")
	require.NoError(t, err)
	cases := []struct {
		method, target string
		header         http.Header
		want           string
	}{
		{"GET", "/v1/orders", nil, "exact"},
		{"GET", "/v1/orders?x=1", nil, "exact"},                            // exact path ignores the query
		{"GET", "/v1/orders/12?x=1", nil, "regex"},                         // so does the regex
		{"GET", "/v1/orders/12x", http.Header{"X-Plan": {"free"}}, "rest"}, // the regex matches the whole path
		{"GET", "/v1/items", http.Header{"X-Beta": {""}}, "beta"},
		{"POST", "/v1/items", nil, "writes"},
		{"GET", "/v1/items", http.Header{"X-Tier": {"gold"}}, "gold"},
		{"GET", "/v1/items", http.Header{"X-Tier": {"golden"}, "X-Plan": {"free"}}, "rest"},
		{"GET", "/v1/items", http.Header{"X-Tier": {"gold", "x"}}, "notfree"}, // values joined: "gold,x"
		{"GET", "/v1/items", nil, "notfree"},                                  // an inverted exact matches an absent header
		{"GET", "/v1x", nil, "notfree"},                                       // a prefix is a string prefix, as in Envoy
		{"GET", "/other", nil, "rest"},
	}
	for _, c := range cases {
		h := c.header
		r := p.RouteFor(Request{Method: c.method, Target: c.target, Header: func(n string) []string { return h.Values(n) }})
		require.NotNil(t, r, "%s %s", c.method, c.target)
		assert.Equal(t, c.want, r.Name, "%s %s %v", c.method, c.target, c.header)
	}
	hand := &Route{Match: Match{PathRegex: "/a+"}}
	assert.True(t, hand.Matches(Request{Method: "GET", Target: "/aaa", Header: func(string) []string { return nil }}), "a Route built by hand compiles its match")
}

func TestSplitMethods(t *testing.T) {
	tests := map[string]struct {
		methods          []string
		safe, unsafe     []string
		unsafeMeansOther bool
	}{
		"any method":    {nil, SafeMethods, nil, true},
		"reads only":    {[]string{"GET", "HEAD"}, []string{"GET", "HEAD"}, []string{}, false},
		"writes only":   {[]string{"POST", "PUT"}, nil, []string{"POST", "PUT"}, false},
		"mixed":         {[]string{"POST", "GET", "DELETE"}, []string{"GET"}, []string{"POST", "DELETE"}, false},
		"custom method": {[]string{"PURGE"}, nil, []string{"PURGE"}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			safe, unsafe := SplitMethods(tt.methods)
			assert.Equal(t, tt.safe, safe)
			assert.Equal(t, tt.unsafe, unsafe)
			assert.Equal(t, tt.unsafeMeansOther, unsafe == nil)
		})
	}
}
