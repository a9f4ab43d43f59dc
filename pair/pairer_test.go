package pair

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// fakeRecorder keeps what the pairer concluded.
type fakeRecorder struct {
	mu    sync.Mutex
	pairs []report.Pair
	noise map[string][]compare.NoisePath
}

func (f *fakeRecorder) Record(p report.Pair) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pairs = append(f.pairs, p)
}

func (f *fakeRecorder) SetNoise(route string, n []compare.NoisePath) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noise == nil {
		f.noise = map[string][]compare.NoisePath{}
	}
	f.noise[route] = n
}

const testPolicy = `
version: 1
listeners: [{name: l, address: "127.0.0.1:10000"}]
services:
  a: {endpoints: ["127.0.0.1:1"]}
  b: {endpoints: ["127.0.0.1:2"]}
routes:
  - name: r
    match: {pathPrefix: /}
    primary: a
    shadow: {service: b, percent: 100}
    compare: {maxBodyBytes: 64}
`

var t0 = time.Date(2026, 11, 22, 17, 0, 0, 0, time.UTC)

func newTestPairer(t *testing.T, cfg Config) (*Pairer, *fakeRecorder) {
	t.Helper()
	rec := &fakeRecorder{}
	p, err := New(cfg, rec, func() time.Time { return t0 }, prometheus.NewRegistry(), zap.NewNop())
	require.NoError(t, err)
	p.Use(parseTestPolicy(t))
	return p, rec
}

func parseTestPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Parse([]byte(testPolicy), "test.yaml")
	require.NoError(t, err)
	return pol
}

func half(side wire.Side, id, path, body string, at time.Time) *Half {
	return &Half{
		Route: "r", Side: side, RequestID: id, Method: "GET", Target: path, Path: path, Fingerprint: "f" + path,
		Response: compare.Response{Status: 200, Headers: map[string]string{"content-type": "application/json"}, Body: []byte(body)},
		Latency:  time.Millisecond, At: at,
	}
}

// drain runs the comparisons the sweep queued.
func drain(p *Pairer) {
	for {
		select {
		case j := <-p.work:
			p.compare(j)
		default:
			return
		}
	}
}

func TestPairer(t *testing.T) {
	P, S := wire.SidePrimary, wire.SideShadow
	tests := map[string]struct {
		halves   []*Half
		sweepAt  time.Time
		outcomes []report.Outcome
		reason   string
	}{
		"match": {
			halves:   []*Half{half(P, "1", "/a", `{"x":1}`, t0), half(S, "1", "/a", `{"x":1}`, t0)},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Match},
		},
		"diff": {
			halves:   []*Half{half(S, "1", "/a", `{"x":2}`, t0), half(P, "1", "/a", `{"x":1}`, t0)},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Diff},
		},
		"held for the grace period": {
			halves:  []*Half{half(P, "1", "/a", `{}`, t0), half(S, "1", "/a", `{}`, t0)},
			sweepAt: t0.Add(500 * time.Millisecond),
		},
		"lone primary after the TTL": {
			halves:   []*Half{half(P, "1", "/a", `{}`, t0)},
			sweepAt:  t0.Add(31 * time.Second),
			outcomes: []report.Outcome{report.PrimaryOnly},
			reason:   "no shadow half within 30s",
		},
		"lone shadow after the TTL": {
			halves:   []*Half{half(S, "1", "/a", `{}`, t0)},
			sweepAt:  t0.Add(31 * time.Second),
			outcomes: []report.Outcome{report.ShadowOnly},
		},
		"lone half before the TTL waits": {
			halves:  []*Half{half(P, "1", "/a", `{}`, t0)},
			sweepAt: t0.Add(29 * time.Second),
		},
		"two primaries claim one id": {
			halves:   []*Half{half(P, "1", "/a", `{}`, t0), half(P, "1", "/b", `{}`, t0), half(S, "1", "/a", `{}`, t0)},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Ambiguous},
			reason:   "more than one primary half",
		},
		"a third half after completion": {
			halves:   []*Half{half(P, "1", "/a", `{}`, t0), half(S, "1", "/a", `{}`, t0), half(S, "1", "/a", `{}`, t0.Add(100*time.Millisecond))},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Ambiguous},
		},
		"halves of different requests": {
			halves:   []*Half{half(P, "1", "/a", `{}`, t0), half(S, "1", "/b", `{}`, t0)},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Ambiguous},
			reason:   "different requests",
		},
		"request not mirrored": {
			halves: []*Half{half(P, "1", "/a", `{}`, t0), func() *Half {
				h := half(S, "1", "/a", "", t0)
				h.Skip = "not mirrored: request body over the route's limit"
				return h
			}()},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Skipped},
			reason:   "not mirrored",
		},
		"shadow without a response": {
			halves: []*Half{half(P, "1", "/a", `{}`, t0), func() *Half {
				h := half(S, "1", "/a", "", t0)
				h.Incomplete = "no response (upstream reset, timed out or refused)"
				return h
			}()},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.PrimaryOnly},
			reason:   "shadow: no response",
		},
		"body over the limit": {
			halves: []*Half{half(P, "1", "/a", `{}`, t0), func() *Half {
				h := half(S, "1", "/a", "", t0)
				h.TooLarge, h.BodyBytes = true, 100
				return h
			}()},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Skipped},
			reason:   "body over the limit",
		},
		"ids pair independently": {
			halves: []*Half{
				half(P, "1", "/a", `{"x":1}`, t0), half(P, "2", "/b", `{"x":1}`, t0),
				half(S, "2", "/b", `{"x":1}`, t0), half(S, "1", "/a", `{"x":1}`, t0),
			},
			sweepAt:  t0.Add(2 * time.Second),
			outcomes: []report.Outcome{report.Match, report.Match},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, rec := newTestPairer(t, Config{})
			for _, h := range tt.halves {
				p.add(h)
			}
			p.sweep(tt.sweepAt)
			drain(p)
			var got []report.Outcome
			for _, pr := range rec.pairs {
				got = append(got, pr.Outcome)
				assert.Contains(t, pr.Reason, tt.reason)
				assert.Equal(t, "r", pr.Route)
			}
			assert.Equal(t, tt.outcomes, got)
		})
	}
}

func TestPairerAmbiguousAbsorbsLateHalves(t *testing.T) {
	p, rec := newTestPairer(t, Config{})
	p.add(half(wire.SidePrimary, "1", "/a", `{}`, t0))
	p.add(half(wire.SidePrimary, "1", "/b", `{}`, t0))
	p.sweep(t0.Add(2 * time.Second))
	require.Len(t, rec.pairs, 1)
	p.add(half(wire.SideShadow, "1", "/a", `{}`, t0.Add(3*time.Second)))
	p.add(half(wire.SideShadow, "1", "/b", `{}`, t0.Add(3*time.Second)))
	p.sweep(t0.Add(4 * time.Second))
	drain(p)
	assert.Len(t, rec.pairs, 1, "late halves of an ambiguous id are absorbed, never paired")
	p.sweep(t0.Add(31 * time.Second))
	assert.Empty(t, p.pending)
}

func TestPairerBounds(t *testing.T) {
	t.Run("pending ids: the oldest lone half is evicted", func(t *testing.T) {
		p, _ := newTestPairer(t, Config{MaxPending: 2})
		for _, id := range []string{"1", "2", "3"} {
			p.add(half(wire.SidePrimary, id, "/a", `{}`, t0))
		}
		assert.Len(t, p.pending, 2)
		assert.NotContains(t, p.pending, pairKey{"r", "1"})
		assert.Equal(t, 1.0, testutil.ToFloat64(p.dropped.WithLabelValues(dropEvicted)))
	})
	t.Run("pending bytes", func(t *testing.T) {
		p, _ := newTestPairer(t, Config{MaxPendingBytes: 1000})
		p.add(half(wire.SidePrimary, "1", "/a", string(make([]byte, 400)), t0))
		p.add(half(wire.SidePrimary, "2", "/a", string(make([]byte, 400)), t0))
		assert.Len(t, p.pending, 1)
		assert.Contains(t, p.pending, pairKey{"r", "2"})
		p.sweep(t0.Add(31 * time.Second))
		assert.Zero(t, p.bytes, "bytes are given back")
		assert.Empty(t, p.byRoute)
	})
	t.Run("a complete pair is never evicted", func(t *testing.T) {
		p, _ := newTestPairer(t, Config{MaxPending: 1})
		p.add(half(wire.SidePrimary, "1", "/a", `{}`, t0))
		p.add(half(wire.SideShadow, "1", "/a", `{}`, t0))
		p.add(half(wire.SidePrimary, "2", "/a", `{}`, t0))
		assert.Contains(t, p.pending, pairKey{"r", "1"})
		assert.Equal(t, 1.0, testutil.ToFloat64(p.dropped.WithLabelValues(dropPendingFull)))
	})
	t.Run("queue never blocks", func(t *testing.T) {
		p, _ := newTestPairer(t, Config{QueueSize: 1})
		p.Offer(*half(wire.SidePrimary, "1", "/a", `{}`, t0))
		p.Offer(*half(wire.SidePrimary, "2", "/a", `{}`, t0)) // queue full: dropped, not blocked
		p.Offer(Half{Route: "r", Side: wire.SidePrimary})     // no id
		assert.Equal(t, 1.0, testutil.ToFloat64(p.dropped.WithLabelValues(dropQueueFull)))
		assert.Equal(t, 1.0, testutil.ToFloat64(p.dropped.WithLabelValues(dropNoID)))
	})
}

// Every drop reason is a series at 0 before the first drop: dashboards show
// it and an increase() alert sees the first drop.
func TestPairerDropReasonsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(Config{}, &fakeRecorder{}, func() time.Time { return t0 }, reg, zap.NewNop())
	require.NoError(t, err)
	want := `# HELP shadowlab_capture_dropped_total Halves or pairs dropped before comparison, by reason.
# TYPE shadowlab_capture_dropped_total counter
shadowlab_capture_dropped_total{reason="comparator_full"} 0
shadowlab_capture_dropped_total{reason="malformed_batch"} 0
shadowlab_capture_dropped_total{reason="no_request_id"} 0
shadowlab_capture_dropped_total{reason="pending_evicted"} 0
shadowlab_capture_dropped_total{reason="pending_full"} 0
shadowlab_capture_dropped_total{reason="queue_full"} 0
shadowlab_capture_dropped_total{reason="unknown_route"} 0
`
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "shadowlab_capture_dropped_total"))
}

// TestPairerFloodOfLoneHalves: a flood of lone halves (invented ids) on
// one route fills pending; pairs of another route are still paired and
// compared, and the flood evicts its own oldest halves.
func TestPairerFloodOfLoneHalves(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		body string
	}{
		"by count": {cfg: Config{MaxPending: 100}, body: `{}`},
		"by bytes": {cfg: Config{MaxPendingBytes: 100 * 600}, body: string(make([]byte, 80))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, rec := newTestPairer(t, tc.cfg)
			at := t0
			for i := range 1000 {
				at = t0.Add(time.Duration(i) * 10 * time.Millisecond)
				h := half(wire.SideShadow, fmt.Sprint("flood-", i), "/a", tc.body, at)
				h.Route = "flood"
				p.add(h)
				if i%10 == 0 { // a real pair on r now and then, swept as Run would
					id := fmt.Sprint("real-", i)
					p.add(half(wire.SidePrimary, id, "/b", `{"a":1}`, at))
					p.add(half(wire.SideShadow, id, "/b", `{"a":1}`, at))
					p.sweep(at)
					drain(p)
				}
			}
			p.sweep(at.Add(2 * time.Second))
			drain(p)
			var matches int
			for _, pr := range rec.pairs {
				if pr.Route == "r" && pr.Outcome == report.Match {
					matches++
				}
			}
			assert.Equal(t, 100, matches, "every real pair compared")
			assert.Positive(t, testutil.ToFloat64(p.dropped.WithLabelValues(dropEvicted)))
			assert.Zero(t, testutil.ToFloat64(p.dropped.WithLabelValues(dropPendingFull)))
			assert.LessOrEqual(t, p.bytes, p.cfg.MaxPendingBytes)
			assert.LessOrEqual(t, len(p.pending), p.cfg.MaxPending)
			assert.NotContains(t, p.pending, pairKey{"flood", "flood-0"}, "the oldest went first")
			assert.Contains(t, p.pending, pairKey{"flood", "flood-999"})
		})
	}
}

// TestPairerLearnsNoise: a field that varies between answers to the same
// request is published as noise.
func TestPairerLearnsNoise(t *testing.T) {
	p, rec := newTestPairer(t, Config{})
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		body := func(side string) string { return `{"id":7,"ts":"` + side + at.String() + `"}` }
		id := string(rune('a' + i))
		p.add(half(wire.SidePrimary, id, "/same", body("p"), at))
		p.add(half(wire.SideShadow, id, "/same", body("s"), at))
		p.sweep(at.Add(2 * time.Second))
		drain(p)
	}
	p.publishNoise()
	require.NotEmpty(t, rec.noise["r"])
	assert.Equal(t, "$.ts", rec.noise["r"][0].Pattern)
}

func TestCaptureHandler(t *testing.T) {
	p, _ := newTestPairer(t, Config{})
	srv := httptest.NewServer(p.CaptureHandler())
	t.Cleanup(srv.Close)
	post := func(body []byte) int {
		resp, err := http.Post(srv.URL, wire.CaptureContentType, bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	var batch []byte
	batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: "r", RequestID: "1", Method: "GET", Target: "/a?x=1", Status: 200,
		LatencyMicros: 1500, BodyBytes: 2, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte("{}")})
	batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: "r", RequestID: "2", Method: "GET", Target: "/b", Flags: wire.FlagIncomplete})
	batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: "elsewhere", RequestID: "3", Status: 200})
	require.Equal(t, 204, post(batch))
	require.Len(t, p.in, 2, "the unknown route's record is dropped")
	h := <-p.in
	assert.Equal(t, Half{Route: "r", Side: wire.SidePrimary, RequestID: "1", Method: "GET", Target: "/a?x=1", Path: "/a",
		Response: compare.Response{Status: 200, Headers: map[string]string{"content-type": "application/json"}, Body: []byte("{}")},
		Latency:  1500 * time.Microsecond, BodyBytes: 2, At: t0}, h)
	h = <-p.in
	assert.Equal(t, "no response (upstream reset, timed out or refused)", h.Incomplete)

	require.Equal(t, 400, post(batch[:len(batch)-1]), "all or nothing")
	require.Empty(t, p.in)
}
