package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shadowlab/shadowlab/compare"
)

func TestRedaction(t *testing.T) {
	const secret = "s3cr3t"
	tests := map[string]struct {
		diff       compare.Difference
		wantSample [2]string // primary, shadow excerpts kept
	}{
		"authorization": {
			diff:       compare.Difference{Path: "header:authorization", Pattern: "header:authorization", Kind: compare.Header, Primary: "Bearer " + secret, Shadow: "Bearer x" + secret},
			wantSample: [2]string{compare.Redacted, compare.Redacted},
		},
		"cookie, upper case": {
			diff:       compare.Difference{Path: "header:Cookie", Pattern: "header:Cookie", Kind: compare.Header, Primary: "sid=" + secret},
			wantSample: [2]string{compare.Redacted, ""},
		},
		"set-cookie": {
			diff:       compare.Difference{Path: "header:set-cookie", Pattern: "header:set-cookie", Kind: compare.Header, Shadow: "sid=" + secret + "; HttpOnly"},
			wantSample: [2]string{"", compare.Redacted},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			path := filepath.Join(t.TempDir(), "report.db")
			r, err := New(Config{DBPath: path, FlushInterval: time.Hour}, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			r.Record(comparedPair("r", 1, tc.diff, changed("$.a", "1", "2")))
			r.Record(comparedPair("r", 2, tc.diff))
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}

			rr := mustRoute(t, r, "r")
			for _, d := range rr.Differences {
				if d.Pattern != tc.diff.Pattern {
					continue
				}
				if got := [2]string{d.Samples[0].Primary, d.Samples[0].Shadow}; got != tc.wantSample {
					t.Errorf("sample excerpts %q, want %q", got, tc.wantSample)
				}
			}

			var everything bytes.Buffer // all that leaves the process or is kept
			for _, e := range logs.All() {
				b, _ := json.Marshal(e.ContextMap())
				fmt.Fprintln(&everything, e.Message, string(b))
			}
			rep, _ := json.Marshal(r.Report())
			everything.Write(rep)
			if err := Render(&everything, r.Report(), RenderOptions{}); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(r.Handler())
			defer srv.Close()
			for _, u := range []string{"/metrics", "/api/v1/report", "/api/v1/pairs", "/api/v1/routes/r"} {
				resp, err := srv.Client().Get(srv.URL + u)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(&everything, resp.Body)
				_ = resp.Body.Close()
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{path, path + "-wal"} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				everything.Write(b)
			}
			if !strings.Contains(everything.String(), "req-0001") || logs.Len() == 0 {
				t.Fatal("the test collected nothing")
			}
			if i := strings.Index(everything.String(), secret); i >= 0 {
				s := everything.String()
				t.Errorf("secret leaked: …%s…", s[max(0, i-80):min(len(s), i+20)])
			}
		})
	}
}

func TestLogs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	r, err := New(Config{FlushInterval: time.Hour}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	r.SetNoise("r", noise("$.generated_at"))
	var diffs []compare.Difference
	for i := range 7 {
		diffs = append(diffs, changed(fmt.Sprintf("$.f%d", i), "1", "2"))
	}
	r.Record(comparedPair("r", 1, diffs...))
	r.Record(comparedPair("r", 2, changed("$.generated_at", "1", "2"))) // noise only: Debug
	r.Record(comparedPair("r", 3))                                      // match: not logged
	r.Record(otherPair("r", 4, PrimaryOnly, "shadow timed out"))

	tests := map[string]struct {
		message string
		fields  map[string]any
	}{
		"diff": {message: "pair differs", fields: map[string]any{
			logRoute: "r", logRequestID: "req-0001", logDiffCount: int64(7),
			logDifferences: []any{"$.f0 (changed)", "$.f1 (changed)", "$.f2 (changed)", "$.f3 (changed)", "$.f4 (changed)"},
		}},
		"not compared": {message: "pair not compared", fields: map[string]any{
			logRoute: "r", logRequestID: "req-0004", logOutcome: "primary_only", logReason: "shadow timed out",
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			entries := logs.FilterMessage(tc.message).All()
			if len(entries) != 1 {
				t.Fatalf("%d %q entries, want 1", len(entries), tc.message)
			}
			if entries[0].Level != zapcore.InfoLevel {
				t.Errorf("level %v", entries[0].Level)
			}
			got, _ := json.Marshal(entries[0].ContextMap())
			want, _ := json.Marshal(tc.fields)
			if string(got) != string(want) {
				t.Errorf("fields %s, want %s", got, want)
			}
		})
	}
}
