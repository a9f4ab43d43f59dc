package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowlab/shadowlab/compare"
)

var update = flag.Bool("update", false, "rewrite testdata/render.golden")

// renderReport is a report like the one in the design: a route with noise,
// differences, a timed-out shadow, and an empty route.
func renderReport(t *testing.T) Report {
	r := newTestReporter(t, Config{})
	gen := changed("$.generated_at", `"2026-03-01T17:00:01Z"`, `"2026-03-01T17:00:02Z"`)
	for i := range 1204 {
		p := comparedPair("billing-records", i, gen)
		p.RequestID = fmt.Sprintf("4f1c%04x-9a2e-4c1b-8d7f-1f2e3d4c5b6a", i)
		p.PrimaryLatency = time.Duration(2000+i*10) * time.Microsecond
		p.ShadowLatency = time.Duration(3000+i*30) * time.Microsecond
		switch {
		case i < 12:
			p = otherPair("billing-records", i, PrimaryOnly, "shadow timed out")
			p.PrimaryLatency = 5 * time.Millisecond
		case i < 73:
			p.Differences = append(p.Differences, changed("$.total", "10.5", "10.51"))
		case i < 90:
			p.Differences = []compare.Difference{{Path: fmt.Sprintf("$.items[%d].currency", i%4), Pattern: "$.items[*].currency", Kind: compare.Removed, Primary: `"EUR"`}}
		case i < 95:
			p.Differences = []compare.Difference{{Path: "header:content-type", Pattern: "header:content-type", Kind: compare.Header,
				Primary: "application/json", Shadow: "application/json; charset=utf-8"}}
		case i < 96:
			p.Differences = []compare.Difference{{Path: "body", Pattern: "body", Kind: compare.Body, Primary: "line one\nline two", Shadow: ""}}
		}
		r.Record(p)
	}
	r.SetNoise("billing-records", []compare.NoisePath{{Pattern: "$.generated_at", Varied: 40, Compared: 41}, {Pattern: "$.trace", Varied: 3, Compared: 3}})
	r.Record(otherPair("reminders", 1, Skipped, "body over the limit"))
	r.SetNoise("quiet", nil)
	return r.Report()
}

func TestRenderGolden(t *testing.T) {
	rep := renderReport(t)
	cases := []struct {
		name string
		opts RenderOptions
	}{
		{"all routes", RenderOptions{}},
		{"one route, two paths", RenderOptions{Route: "billing-records", MaxPaths: 2}},
		{"empty report", RenderOptions{}},
	}
	var out bytes.Buffer
	for _, c := range cases {
		fmt.Fprintf(&out, "=== %s %+v\n", c.name, c.opts)
		r := rep
		if c.name == "empty report" {
			r = Report{}
		}
		if err := Render(&out, r, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run RenderGolden -update)", err)
	}
	if d := cmp.Diff(string(want), out.String()); d != "" {
		t.Errorf("render differs from %s (-want +got; -update rewrites it):\n%s", golden, d)
	}
}

func TestRender(t *testing.T) {
	rep := renderReport(t)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var decoded Report // what `shadowlab report` renders: the API's JSON
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		rep      Report
		opts     RenderOptions
		contains []string
		err      string
	}{
		"decoded from JSON renders alike": {
			rep:      decoded,
			contains: []string{"route billing-records: 1 204 pairs, match rate 93.0 % (1 108 match, 84 diff), 12 primary-only (shadow timed out: 12)"},
		},
		"route filter": {
			rep: rep, opts: RenderOptions{Route: "reminders"},
			contains: []string{"route reminders: 1 pair, match rate n/a (0 match, 0 diff), 1 skipped (body over the limit: 1)"},
		},
		"unknown route": {rep: rep, opts: RenderOptions{Route: "nope"}, err: `route "nope" is not in the report`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := Render(&out, tc.rep, tc.opts)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestThousands(t *testing.T) {
	tests := map[int]string{0: "0", 7: "7", 999: "999", 1000: "1 000", 1204: "1 204", 1234567: "1 234 567", -1500: "-1 500"}
	for n, want := range tests {
		t.Run(want, func(t *testing.T) {
			if got := thousands(n); got != want {
				t.Errorf("thousands(%d) = %q, want %q", n, got, want)
			}
		})
	}
}
