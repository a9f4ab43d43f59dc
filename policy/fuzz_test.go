package policy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, that every failure is an *Error
// with at least one problem, and that a policy it accepts compiles the same
// again (same hashes) with every route reachable by name; and that
// yamlNodeBound is never below the nodes yaml.v3 builds.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "---\n", "version: 1\n", "version: 1\nx: &a 1\nlisteners: *a\n", "a: [1\n",
		"version: 1\nversion: 1\nroutes: [{name: r, name: s}]\n", "[: , ?, {a, b}]\n", "- - ? : -\n", "version: 1\n# caf\xe9\n", "a: \x01\n", "a: *b\n",
		"version: 1\nlisteners: [{name: a, address: '[::1]:1'}]\nservices: {s: {endpoints: ['h.example:1']}, t: {endpoints: ['127.0.0.1:2']}}\n" +
			"routes: [{name: r, match: {pathRegex: '/a.*', headers: [{name: x, present: true}]}, primary: s, shadow: {service: t, percent: 1.5}}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil {
			if n, bound := countNodes(&doc), yamlNodeBound(data); n > bound {
				t.Fatalf("%d YAML nodes, over the bound %d", n, bound)
			}
		}
		p, err := Parse(data, "fuzz")
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not an *Error wrapping ErrInvalid: %v", err)
			}
			if len(perr.Problems) == 0 {
				t.Fatal("*Error without problems")
			}
			for _, pr := range perr.Problems {
				if pr.Msg == "" || pr.Line < 0 {
					t.Fatalf("bad problem %+v", pr)
				}
			}
			return
		}
		again, err := Parse(data, "fuzz")
		if err != nil || again.Hash != p.Hash {
			t.Fatalf("parsed again: hash %q, then %q (%v)", p.Hash, again.Hash, err)
		}
		for i, r := range p.Routes {
			if p.Route(r.Name) != r || r.Hash != again.Routes[i].Hash || r.Primary == nil {
				t.Fatalf("route %q not compiled the same", r.Name)
			}
			if r.Shadow != nil && (r.Shadow.Service == nil || r.Shadow.Compare.Rules == nil) {
				t.Fatalf("route %q: shadow not compiled", r.Name)
			}
		}
	})
}
