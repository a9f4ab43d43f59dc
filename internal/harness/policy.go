package harness

import (
	"fmt"
	"strings"
)

// LargePolicy is the policy of n routes the scale test and bench/xdsscale
// serve: a probe route at probePath, a route "edited" (prefix /edited/)
// mirrored at percent to tenants (a YAML list's items, "acme, initech"),
// and n-2 routes r0, r1, … each confined to its own first segment and
// mirrored to two tenants. listener, legacy and candidate are addresses,
// or the e2e templates' placeholders.
func LargePolicy(n int, listener, legacy, candidate, probePath, tenants string, percent int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlisteners: [{name: ingress, address: %q}]\n", listener)
	fmt.Fprintf(&b, "services:\n  legacy: {endpoints: [%q]}\n  candidate: {endpoints: [%q]}\nroutes:\n", legacy, candidate)
	fmt.Fprintf(&b, "  - {name: probe, match: {path: %s}, primary: legacy}\n", probePath)
	fmt.Fprintf(&b, "  - {name: edited, match: {pathPrefix: /edited/}, primary: legacy, shadow: {service: candidate, percent: %d, tenants: {header: x-tenant, values: [%s]}}}\n", percent, tenants)
	for i := range n - 2 {
		fmt.Fprintf(&b, "  - {name: r%d, match: {pathPrefix: /r%d/, methods: [GET, POST]}, primary: legacy, shadow: {service: candidate, percent: %d, tenants: {header: x-tenant, values: [acme, globex]}}}\n", i, i, i%100)
	}
	return []byte(b.String())
}
