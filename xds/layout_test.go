package xds

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
)

func TestSegment(t *testing.T) {
	tests := []struct {
		m   policy.Match
		seg string
		ok  bool
		why string
	}{
		{policy.Match{Path: "/orders"}, "orders", true, "exact path, one segment"},
		{policy.Match{Path: "/orders/7/items"}, "orders", true, "exact path"},
		{policy.Match{Path: "/"}, "", true, "the root"},
		{policy.Match{PathPrefix: "/orders/"}, "orders", true, "prefix closing its segment"},
		{policy.Match{PathPrefix: "/orders/open"}, "orders", true, "prefix past its segment"},
		{policy.Match{PathPrefix: "/shop.v1.Orders/"}, "shop.v1.Orders", true, "a gRPC service"},
		{policy.Match{PathPrefix: "/orders"}, "", false, "prefix inside its segment: /ordersX too"},
		{policy.Match{PathPrefix: "/"}, "", false, "catch-all"},
		{policy.Match{PathRegex: "/orders/[0-9]+"}, "", false, "regex"},
	}
	for _, tt := range tests {
		seg, ok := Segment(tt.m)
		assert.Equal(t, tt.ok, ok, tt.why)
		assert.Equal(t, tt.seg, seg, tt.why)
	}
}

// segmentPolicy has n mirrored routes over n/4 segments (10 %, unless edit
// gives route i's shadow settings after its service), and a catch-all last
// when span.
func segmentPolicy(t testing.TB, n int, edit func(i int) string, span bool) *policy.Policy {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nlisteners: [{name: ingress, address: \"127.0.0.1:10000\"}, {name: admin, address: \"127.0.0.1:10001\"}]\n")
	b.WriteString("services:\n  legacy: {endpoints: [\"127.0.0.1:8081\"]}\n  candidate: {endpoints: [\"127.0.0.1:8082\"]}\nroutes:\n")
	for i := range n {
		shadow := ", percent: 10"
		if edit != nil && edit(i) != "" {
			shadow = edit(i)
		}
		fmt.Fprintf(&b, "  - {name: r%d, listeners: [ingress], match: {pathPrefix: /s%d/r%d/}, primary: legacy, shadow: {service: candidate%s}}\n", i, i/4, i, shadow)
	}
	b.WriteString("  - {name: other, listeners: [admin], match: {path: /metrics}, primary: legacy}\n")
	if span {
		b.WriteString("  - {name: rest, listeners: [ingress], match: {pathPrefix: /}, primary: legacy}\n")
	}
	p, err := policy.Parse([]byte(b.String()), "segments.yaml")
	require.NoError(t, err)
	return p
}

// TestScopedWhenEveryRouteHasASegment: the listener is scoped from ScopeAt
// routes on, only when each route is confined to a segment; a listener
// below it or with a catch-all keeps one table.
func TestScopedWhenEveryRouteHasASegment(t *testing.T) {
	opts := Options{ScopeAt: 8}
	res, err := Translate(segmentPolicy(t, 16, nil, false), opts)
	require.NoError(t, err)
	assert.Equal(t, 4, len(res.Scopes), "ingress: 16 routes over 4 segments")
	assert.Equal(t, 5, len(res.Routes), "4 segments, and admin's one table (1 route < ScopeAt)")

	res, err = Translate(segmentPolicy(t, 16, nil, true), opts)
	require.NoError(t, err)
	assert.Empty(t, res.Scopes, "a catch-all matches any segment: one table")

	res, err = Translate(segmentPolicy(t, 16, nil, false), Options{ScopeAt: -1})
	require.NoError(t, err)
	assert.Empty(t, res.Scopes)
}

// TestTranslatorIncremental: a translator that saw earlier policies gives
// exactly what a new one gives, edit after edit (routes edited, added,
// removed, moved to a segment of their own, reordered).
func TestTranslatorIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, opts := range []Options{goldenOptions, scopedOptions} {
		tr := NewTranslator(opts)
		for step := range 12 {
			n := 20 + rng.IntN(20)
			percent := rng.IntN(3)
			p := segmentPolicy(t, n, func(i int) string {
				if i%7 == step%7 {
					return fmt.Sprintf(", percent: %d, tenants: {header: x-t, values: [t%d]}", 10+percent, percent)
				}
				return ""
			}, step%5 == 4)
			got, err := tr.Translate(p)
			require.NoError(t, err)
			want, err := Translate(p, opts)
			require.NoError(t, err)
			gy, err := got.YAML()
			require.NoError(t, err)
			wy, err := want.YAML()
			require.NoError(t, err)
			require.Equal(t, string(wy), string(gy), "step %d", step)
			gs, err := got.Snapshot()
			require.NoError(t, err)
			ws, err := want.Snapshot()
			require.NoError(t, err)
			assert.Equal(t, ws.VersionMap, gs.VersionMap, "step %d", step)
			assert.LessOrEqual(t, len(tr.routes), 2*len(p.Routes), "only the current policy's pieces are kept")
		}
	}
}

// TestOneRouteEditChangesOneResource: in a scoped listener, editing one
// route, its percentage too, changes its segment's route configuration and
// nothing else; in one table, editing a percentage changes its runtime
// layer and nothing else.
func TestOneRouteEditChangesOneResource(t *testing.T) {
	tr := NewTranslator(scopedOptions)
	before, err := tr.Translate(segmentPolicy(t, 400, nil, false))
	require.NoError(t, err)
	changed := func(after *Resources) map[types.ResponseType][]string {
		out := map[types.ResponseType][]string{}
		for typ, vs := range after.versions {
			for name, v := range vs {
				if before.versions[typ][name] != v {
					out[typ] = append(out[typ], name)
				}
			}
			for name := range before.versions[typ] {
				if _, ok := vs[name]; !ok {
					out[typ] = append(out[typ], name+" (removed)")
				}
			}
		}
		return out
	}

	tenant, err := tr.Translate(segmentPolicy(t, 400, func(i int) string {
		if i == 137 {
			return ", percent: 10, tenants: {header: x-t, values: [acme]}"
		}
		return ""
	}, false))
	require.NoError(t, err)
	assert.Equal(t, map[types.ResponseType][]string{types.Route: {"routes/ingress/s34"}}, changed(tenant))

	// A percentage is in the routes of a scoped listener, and over RTDS for
	// one table.
	edited := segmentPolicy(t, 400, func(i int) string {
		if i == 137 {
			return ", percent: 55"
		}
		return ""
	}, false)
	for _, tt := range []struct {
		opts Options
		want map[types.ResponseType][]string
	}{
		{scopedOptions, map[types.ResponseType][]string{types.Route: {"routes/ingress/s34"}}},
		{func() Options { o := goldenOptions; o.ScopeAt = -1; return o }(), map[types.ResponseType][]string{types.Runtime: {RuntimeShardName(RuntimeShard("r137"))}}},
	} {
		tr = NewTranslator(tt.opts)
		before, err = tr.Translate(segmentPolicy(t, 400, nil, false))
		require.NoError(t, err)
		pct, err := tr.Translate(edited)
		require.NoError(t, err)
		assert.Equal(t, tt.want, changed(pct), "scope at %d", tt.opts.ScopeAt)
	}
}
