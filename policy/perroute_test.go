package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPerRoute(t *testing.T) {
	base := `
version: 1
listeners: [{name: l, address: "127.0.0.1:1"}]
services: {a: {endpoints: ["127.0.0.1:2"]}, b: {endpoints: ["127.0.0.1:3"]}}
routes:
  - {name: plain, match: {pathPrefix: /p}, primary: a}
  - {name: m, match: {pathPrefix: /m}, primary: a, shadow: {service: b, percent: 5}}
`
	load := func(text string) *Policy {
		p, err := Parse([]byte(text), "p")
		require.NoError(t, err)
		return p
	}
	var pr PerRoute[*string]
	_, ok := pr.Get("m")
	require.False(t, ok, "nothing before the first Use")
	builds := 0
	derive := func(r *Route, old *string, had bool) (*string, bool) {
		switch {
		case r.Shadow == nil:
			return nil, false
		case had && *old == r.Shadow.Compare.Hash:
			return old, true
		}
		builds++
		return &r.Shadow.Compare.Hash, true
	}
	pr.Use(load(base), derive)
	first, ok := pr.Get("m")
	require.True(t, ok)
	_, ok = pr.Get("plain")
	require.False(t, ok, "derive said no")

	pr.Use(load(strings.Replace(base, "percent: 5", "percent: 6", 1)), derive)
	again, _ := pr.Get("m")
	require.Same(t, first, again, "an unchanged compare block keeps its state")
	pr.Use(load(strings.Replace(base, "percent: 5}}", "percent: 5}, compare: {ignore: [\"$.x\"]}}", 1)), derive)
	changed, _ := pr.Get("m")
	require.NotSame(t, first, changed)
	require.Equal(t, 2, builds)
	require.Len(t, pr.All(), 1)
}
