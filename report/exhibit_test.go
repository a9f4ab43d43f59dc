package report

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
)

// withResponses gives p both sides' responses, the shadow's price n.
func withResponses(t *testing.T, p Pair, n int) Pair {
	t.Helper()
	rules, err := compare.NewRules(compare.Spec{Headers: []string{"content-type"}})
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"content-type": "application/json"}
	p.Responses = &Responses{
		Primary: &compare.Response{Status: 200, Headers: h, Body: []byte(`{"price":1,"token":"abc123"}`)},
		Shadow:  &compare.Response{Status: 200, Headers: h, Body: []byte(`{"price":` + strings.Repeat("9", n) + `,"token":"abc123"}`)},
		Rules:   rules,
	}
	return p
}

// A diff pair's responses are kept, redacted, and its page reads them with
// the changed field's line; the budget per flush bounds the rest, samples
// always count.
func TestPairResponses(t *testing.T) {
	r := newTestReporter(t, Config{ExhibitsPerFlush: 1, MaxSamplesPerPath: 2})
	for n := 1; n <= 4; n++ {
		r.Record(withResponses(t, comparedPair("billing", n, changed("$.price", "1", "9")), n))
	}
	pairs := flushedPairs(t, r, "billing")
	got := map[string]bool{}
	for _, p := range pairs {
		got[p.RequestID] = p.Evidence
	}
	// req-0001 and req-0002 are the samples; req-0003 takes the budget's
	// one; req-0004 finds it spent.
	want := map[string]bool{"req-0001": true, "req-0002": true, "req-0003": true, "req-0004": false}
	for id, ev := range want {
		if got[id] != ev {
			t.Errorf("%s: evidence %v, want %v (all: %v)", id, got[id], ev, got)
		}
	}
	one, err := r.Pairs(t.Context(), PairsQuery{Route: "billing", RequestID: "req-0001"})
	if err != nil || len(one) != 1 {
		t.Fatalf("by request id: %v %v", one, err)
	}

	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	var pd PairDetail
	getJSON(t, srv.URL+"/api/v1/pairs/"+strconv.FormatInt(one[0].ID, 10), 200, &pd)
	if pd.Primary == nil || pd.Shadow == nil || pd.EvidenceNote != "" {
		t.Fatalf("no responses: %+v", pd)
	}
	if len(pd.Differences) != 1 || pd.Differences[0].Path != "$.price" || pd.Differences[0].Shadow != "9" {
		t.Errorf("differences %+v", pd.Differences)
	}
	var price, token bool
	for _, l := range pd.Shadow.Lines {
		price = price || l.Path == "$.price" && l.Text == `"price": 9,`
		token = token || l.Path == "$.token" && l.Redacted && strings.Contains(l.Text, compare.Redacted)
	}
	if !price || !token {
		t.Errorf("shadow lines %+v", pd.Shadow.Lines)
	}
	var raw strings.Builder
	_ = json.NewEncoder(&raw).Encode(pd)
	if strings.Contains(raw.String(), "abc123") {
		t.Errorf("a secret reached the page: %s", raw.String())
	}

	last := pairs[0] // newest: req-0004, not kept
	getJSON(t, srv.URL+"/api/v1/pairs/"+strconv.FormatInt(last.ID, 10), 200, &pd)
	if pd.Primary != nil || !strings.Contains(pd.EvidenceNote, "not kept") {
		t.Errorf("req-0004: %+v", pd)
	}
	for url, status := range map[string]int{"/api/v1/pairs/999": 404, "/api/v1/pairs/x": 400, "/api/v1/pairs/0": 400, "/api/v1/pairs/1?x=1": 400} {
		var e map[string]string
		getJSON(t, srv.URL+url, status, &e)
		if e["error"] == "" {
			t.Errorf("%s: no error message", url)
		}
	}
}

// Past MaxExhibits the oldest responses go; samples' stay up to
// MaxPinnedExhibits.
func TestPairResponsesTrimmed(t *testing.T) {
	r := newTestReporter(t, Config{MaxExhibits: 2, MaxPinnedExhibits: 1, MaxSamplesPerPath: 2})
	for n := 1; n <= 6; n++ {
		r.Record(withResponses(t, comparedPair("billing", n, changed("$.price", "1", "9")), n))
		flushedPairs(t, r, "billing")
	}
	pairs := flushedPairs(t, r, "billing")
	var kept []string
	for _, p := range pairs {
		if p.Evidence {
			kept = append(kept, p.RequestID)
		}
	}
	// req-0001 pinned (the first sample), req-0002 a sample past the
	// pinned cap, aged out; the two most recent.
	if strings.Join(kept, ",") != "req-0006,req-0005,req-0001" {
		t.Errorf("kept %v", kept)
	}
	if err := r.Reset("billing"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := r.store.db.QueryRow("SELECT count(*) FROM exhibits").Scan(&n); err != nil || n != 0 {
		t.Errorf("after reset: %d exhibits (%v)", n, err)
	}
}

// History buckets and tenants are re-classified with the noise, like the
// totals.
func TestHistoryAndTenants(t *testing.T) {
	r := newTestReporter(t, Config{})
	for n := range 30 {
		p := comparedPair("billing", n, changed("$.ts", "1", "2"))
		if n%3 == 0 {
			p = comparedPair("billing", n, changed("$.price", "1", "2"))
		}
		p.Tenant = []string{"acme", "globex"}[n%2]
		r.Record(p)
	}
	r.Record(otherPair("billing", 31, PrimaryOnly, "late"))
	rr := mustRoute(t, r, "billing")
	if len(rr.History.Buckets) != 4 || rr.History.BucketSeconds != 10 { // t0+0..31 s
		t.Fatalf("history %+v", rr.History)
	}
	b := rr.History.Buckets[0]
	if b.Start != t0 || b.Match != 0 || b.Diff != 10 || b.Other != 0 || len(b.Differences) != 2 {
		t.Errorf("first bucket %+v", b)
	}
	r.SetNoise("billing", noise("$.ts"))
	rr = mustRoute(t, r, "billing")
	b = rr.History.Buckets[0]
	if b.Match != 6 || b.Diff != 4 || len(b.Differences) != 1 || b.Differences[0].Pattern != "$.price" {
		t.Errorf("first bucket after noise %+v", b)
	}
	if last := rr.History.Buckets[3]; last.Other != 1 {
		t.Errorf("last bucket %+v", last)
	}
	if len(rr.Tenants) != 2 || rr.Tenants[0].Tenant != "acme" || rr.Tenants[0].Pairs != 15 || rr.Tenants[0].Outcomes[Diff] != 5 {
		t.Errorf("tenants %+v", rr.Tenants)
	}
}

// Arrivals count decisions per second, oldest first, bounded.
func TestAdmissionArrivals(t *testing.T) {
	r := newTestReporter(t, Config{})
	now := t0
	r.now = func() time.Time { return now }
	r.AddAdmission(wire.ScopeGlobal, "jobs", "", wire.Counts{Admitted: 3, Delayed: 2})
	r.AddAdmission(wire.ScopeGlobal, "jobs", "", wire.Counts{Rejected: 1})
	now = now.Add(time.Second)
	var released wire.Counts
	released.Released(20 * time.Millisecond)
	r.AddAdmission(wire.ScopeGlobal, "jobs", "", released)
	got := r.Admission()[0].Arrivals
	want := []Arrival{{At: t0.Unix(), N: 6}, {At: t0.Unix() + 1, Released: 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("arrivals %+v, want %+v", got, want)
	}
	for range maxArrivalSeconds + 5 {
		now = now.Add(time.Second)
		r.AddAdmission(wire.ScopeGlobal, "jobs", "", wire.Counts{Admitted: 1})
	}
	if got := r.Admission()[0].Arrivals; len(got) != maxArrivalSeconds || got[len(got)-1].At != now.Unix() {
		t.Errorf("%d seconds kept, last %+v", len(got), got[len(got)-1])
	}
}

// flushedPairs flushes r and lists route's recent pairs.
func flushedPairs(t *testing.T, r *Reporter, route string) []PairRecord {
	t.Helper()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	pairs, err := r.Pairs(t.Context(), PairsQuery{Route: route})
	if err != nil {
		t.Fatal(err)
	}
	return pairs
}

// getJSON reads url, checks its status and decodes its body into v.
func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d", url, resp.StatusCode, status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// With NoExhibits no response is kept, and the pair's page says why.
func TestNoPairResponses(t *testing.T) {
	r := newTestReporter(t, Config{NoExhibits: true})
	r.Record(withResponses(t, comparedPair("billing", 1, changed("$.price", "1", "9")), 1))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	pairs, err := r.Pairs(t.Context(), PairsQuery{})
	if err != nil || len(pairs) != 1 || pairs[0].Evidence {
		t.Fatalf("pairs %+v %v", pairs, err)
	}
	pd, ok, err := r.Pair(t.Context(), pairs[0].ID)
	if err != nil || !ok || pd.Primary != nil || !strings.Contains(pd.EvidenceNote, "--pair-responses 0") || len(pd.Differences) != 1 {
		t.Errorf("pair %+v %v %v", pd, ok, err)
	}
}

// The report of every route, which the overview polls, carries the last
// 15 minutes of history without patterns; one route's report the hour.
func TestOverviewHistory(t *testing.T) {
	r := newTestReporter(t, Config{})
	r.Record(comparedPair("billing", 1, changed("$.price", "1", "2")))
	later := comparedPair("billing", 2, changed("$.price", "1", "2"))
	later.At = t0.Add(20 * time.Minute)
	r.Record(later)
	r.now = func() time.Time { return t0.Add(21 * time.Minute) }
	all := r.Report().Routes[0].History.Buckets
	if len(all) != 1 || !all[0].Start.Equal(t0.Add(20*time.Minute)) || len(all[0].Differences) != 0 || all[0].Diff != 1 {
		t.Errorf("overview history %+v", all)
	}
	one := mustRoute(t, r, "billing").History.Buckets
	if len(one) != 2 || len(one[0].Differences) != 1 {
		t.Errorf("route history %+v", one)
	}
}
