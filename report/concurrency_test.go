package report

import (
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrency records from many goroutines while reports, the HTTP API,
// noise updates and flushes run; go test -race checks the locking, and the
// totals must add up.
func TestConcurrency(t *testing.T) {
	tests := map[string]struct {
		dbPath bool
	}{
		"in memory": {},
		"file":      {dbPath: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := Config{MaxSignatures: 8, MaxPatternsPerRoute: 6, MaxMetricPatterns: 3}
			if tc.dbPath {
				cfg.DBPath = filepath.Join(t.TempDir(), "report.db")
			}
			r := newTestReporter(t, cfg)
			srv := httptest.NewServer(r.Handler())
			defer srv.Close()

			const writers, perWriter = 8, 300
			var recording sync.WaitGroup
			for w := range writers {
				recording.Go(func() {
					route := fmt.Sprintf("route-%d", w%3)
					for i := range perWriter {
						n := w*perWriter + i
						switch i % 4 {
						case 0:
							r.Record(comparedPair(route, n))
						case 1, 2:
							r.Record(comparedPair(route, n, changed(fmt.Sprintf("$.f%d", n%11), "1", "2"), changed("$.ts", "1", "2")))
						case 3:
							r.Record(otherPair(route, n, PrimaryOnly, "timeout"))
						}
					}
				})
			}
			var stop atomic.Bool
			var readers sync.WaitGroup
			readers.Go(func() {
				for !stop.Load() {
					_ = r.Report()
					r.SetNoise("route-1", noise("$.ts"))
				}
			})
			readers.Go(func() {
				for !stop.Load() {
					for _, u := range []string{"/api/v1/report", "/api/v1/pairs?limit=10", "/metrics", "/api/v1/routes/route-0"} {
						resp, err := srv.Client().Get(srv.URL + u)
						if err != nil {
							t.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				}
			})
			readers.Go(func() {
				for !stop.Load() {
					if err := r.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			})
			recording.Wait()
			stop.Store(true)
			readers.Wait()

			total := 0
			for _, rr := range r.Report().Routes {
				total += rr.Pairs
				sum := 0
				for _, n := range rr.Outcomes {
					sum += n
				}
				if sum != rr.Pairs {
					t.Errorf("%s: outcomes add up to %d, pairs %d", rr.Route, sum, rr.Pairs)
				}
			}
			if total != writers*perWriter {
				t.Errorf("%d pairs recorded, want %d", total, writers*perWriter)
			}
		})
	}
}
