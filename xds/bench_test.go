package xds

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shadowlab/shadowlab/policy"
)

// bigPolicy is a policy with n mirrored routes, each for two tenants.
func bigPolicy(b testing.TB, n int) *policy.Policy {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("version: 1\nlisteners: [{name: ingress, address: \"127.0.0.1:10000\"}]\n")
	sb.WriteString("services:\n  legacy: {endpoints: [\"127.0.0.1:8081\"]}\n  candidate: {endpoints: [\"127.0.0.1:8082\"]}\nroutes:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - name: r%d\n    match: {pathPrefix: /r%d/, methods: [GET, POST]}\n    primary: legacy\n", i, i)
		fmt.Fprintf(&sb, "    shadow: {service: candidate, percent: %d, tenants: {header: x-tenant, values: [acme, globex]}}\n", i%100)
	}
	p, err := policy.Parse([]byte(sb.String()), "big.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkTranslate10k: translation, validation and snapshot of a
// 10 000-route policy, the work of one policy edit after parsing.
func BenchmarkTranslate10k(b *testing.B) {
	p := bigPolicy(b, 10_000)
	b.ResetTimer()
	for b.Loop() {
		res, err := Translate(p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := res.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}
