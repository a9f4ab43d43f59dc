package policy

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy returns a valid policy with n mirrored routes.
func bigPolicy(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nlisteners: [{name: ingress, address: 0.0.0.0:10000}]\n")
	b.WriteString("services:\n  legacy: {endpoints: [\"127.0.0.1:8081\"]}\n  candidate: {endpoints: [\"127.0.0.1:8082\"]}\nroutes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    match: {pathPrefix: /r/%d, methods: [GET]}\n    primary: legacy\n", i, i)
		fmt.Fprintf(&b, "    shadow: {service: candidate, percent: 10, tenants: {header: x-tenant, values: [acme]}}\n")
		fmt.Fprintf(&b, "    compare: {ignore: [\"$.generated_at\", \"$.items[*].id\"]}\n")
	}
	return []byte(b.String())
}

func BenchmarkParse10kRoutes(b *testing.B) {
	data := bigPolicy(10_000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, "big"); err != nil {
			b.Fatal(err)
		}
	}
}
