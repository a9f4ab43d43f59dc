package report

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
)

// recordMix records a bit of everything: matches, diffs (some folded past
// MaxSignatures 4), noise, non-compared outcomes with reasons, latencies.
func recordMix(r *Reporter) {
	gen := changed("$.generated_at", `"a"`, `"b"`)
	for i := range 40 {
		switch i % 5 {
		case 0:
			r.Record(comparedPair("billing", i))
		case 1:
			r.Record(comparedPair("billing", i, gen))
		case 2:
			r.Record(comparedPair("billing", i, gen, changed("$.total", "10.5", "10.51")))
		case 3:
			r.Record(comparedPair("billing", i, compare.Difference{Path: "$.items[1]", Pattern: "$.items[*]", Kind: compare.Added, Shadow: `{"id":2}`}))
		case 4:
			r.Record(comparedPair("billing", i, changed("$.n"+string(rune('a'+i%3)), "1", "2"))) // new signatures: fold
		}
	}
	r.Record(otherPair("billing", 100, PrimaryOnly, "shadow timed out"))
	r.Record(otherPair("billing", 101, Ambiguous, "two primary halves"))
	r.Record(otherPair("reminders", 102, Skipped, "body over the limit"))
	r.Record(Pair{Route: "reminders", RequestID: "slow", Outcome: Match, PrimaryLatency: 12 * time.Minute, ShadowLatency: 3 * time.Microsecond, At: t0})
	r.SetNoise("billing", noise("$.generated_at"))
	r.SetNoise("empty", noise("$.ts"))
}

func TestPersistence(t *testing.T) {
	tests := map[string]struct {
		flushBeforeClose bool
		changeAfterFlush bool
	}{
		"flushed by Close":          {},
		"explicit flush":            {flushBeforeClose: true},
		"changes after a flush too": {flushBeforeClose: true, changeAfterFlush: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.db")
			cfg := Config{DBPath: path, MaxSignatures: 4}
			r := newTestReporter(t, cfg)
			recordMix(r)
			if tc.flushBeforeClose {
				if err := r.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.changeAfterFlush {
				r.Record(comparedPair("billing", 500, changed("$.total", "1", "2")))
				r.SetNoise("billing", noise("$.generated_at", "$.items[*]"))
			}
			before := r.Report()
			pairsBefore, err := r.Pairs(t.Context(), PairsQuery{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}

			r2 := newTestReporter(t, cfg)
			after := r2.Report()
			// History and tenants are kept in memory only.
			for i := range before.Routes {
				before.Routes[i].History.Buckets, before.Routes[i].Tenants = []HistoryBucket{}, []RouteTenant{}
			}
			if d := cmp.Diff(before, after); d != "" {
				t.Errorf("report after reopening (-before +after):\n%s", d)
			}
			pairsAfter, err := r2.Pairs(t.Context(), PairsQuery{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			wantPairs := 35 // recordMix's non-match pairs
			if tc.changeAfterFlush {
				wantPairs++
			}
			if len(pairsAfter) != wantPairs {
				t.Errorf("%d recent pairs after reopening, want %d", len(pairsAfter), wantPairs)
			}
			if tc.flushBeforeClose && !tc.changeAfterFlush {
				if d := cmp.Diff(pairsBefore, pairsAfter); d != "" {
					t.Errorf("pairs after reopening (-before +after):\n%s", d)
				}
			}
			if len(after.Routes) != 3 || after.Routes[0].FoldedPairs == 0 || len(after.Routes[0].Noise) == 0 ||
				after.Routes[0].Latency.Primary.Count == 0 || len(pairsAfter) == 0 {
				t.Errorf("the mix did not exercise everything: %+v", after)
			}

			// Recording continues on the loaded aggregates.
			r2.Record(comparedPair("billing", 600))
			if got, want := mustRoute(t, r2, "billing").Pairs, before.Routes[0].Pairs+1; got != want {
				t.Errorf("pairs after one more: %d, want %d", got, want)
			}
		})
	}
}

func TestStoreErrors(t *testing.T) {
	tests := map[string]struct {
		setup func(t *testing.T, path string)
		want  string
	}{
		"not a database": {
			setup: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: "not a readable SQLite database",
		},
		"newer schema": {
			setup: func(t *testing.T, path string) {
				r, err := New(Config{DBPath: path}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				execSQL(t, path, "PRAGMA user_version = 99")
			},
			want: fmt.Sprintf("schema version 99 is newer than this shadowlab supports (%d)", storeVersion),
		},
		"another application's database": {
			setup: func(t *testing.T, path string) { execSQL(t, path, "CREATE TABLE accounts (id INTEGER)") },
			want:  "not a shadowlab report store",
		},
		"damaged rows": {
			setup: func(t *testing.T, path string) {
				r, err := New(Config{DBPath: path}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				execSQL(t, path, "INSERT INTO signatures VALUES ('r', '9:oops', 1)")
			},
			want: "bad signature",
		},
		"a directory": {
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "report store",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.db")
			tc.setup(t, path)
			r, err := New(Config{DBPath: path}, nil)
			if err == nil {
				_ = r.Close()
				t.Fatal("New accepted the store")
			}
			if !errors.Is(err, ErrStore) {
				t.Errorf("error %q does not wrap ErrStore", err)
			}
			for _, want := range []string{path, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func execSQL(t *testing.T, path, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

func TestStoreIsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.db")
	r := newTestReporter(t, Config{DBPath: path})
	r.Record(comparedPair("r", 1, changed("$.a", "1", "2")))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no WAL file: %v", err)
	}
}

// A store written before the fine delay buckets (schema 3, 17 coarse
// buckets per row) opens with each coarse count in the fine bucket of the
// same bound; a row of a layout this shadowlab does not know is refused,
// naming the row.
func TestStoreCoarseDelayBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.db")
	r := newTestReporter(t, Config{DBPath: path})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	coarse := `{"admitted":1,"delayed":3,"rejected":0,"observed_delay":0,"observed_reject":0,"abandoned":0,"fail_open":0,` +
		`"delay_buckets":[0,0,0,0,0,0,0,2,0,0,0,0,0,0,0,0,1],"delay_sum_ms":7204000}`
	execSQL(t, path, `DROP TABLE exhibits; DROP INDEX pairs_by_request; ALTER TABLE admission DROP COLUMN layout; PRAGMA user_version = 3;
		INSERT INTO admission (scope, route, key, counts) VALUES ('local', 'jobs', '', '`+coarse+`')`)
	r = newTestReporter(t, Config{DBPath: path})
	got := r.Admission()
	if len(got) != 1 || got[0].Delayed != 3 || got[0].Released != 3 {
		t.Fatalf("got %+v", got)
	}
	c := got[0].Counts
	if c.DelayBuckets[wire.DelayBucket(2500*time.Millisecond)] != 2 || c.DelayBuckets[len(wire.DelayBucketsMs)] != 1 {
		t.Fatalf("coarse buckets not moved to their fine bounds: %v", c.DelayBuckets)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	execSQL(t, path, `UPDATE admission SET layout = 7`)
	_, err := New(Config{DBPath: path}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), `admission counts of local/jobs/"": unknown delay bucket layout 7`) {
		t.Fatalf("got %v", err)
	}
}
