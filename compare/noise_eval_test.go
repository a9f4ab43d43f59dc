package compare

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shadowlab/shadowlab/wire"
)

// expected is a seeded real difference: the pair must report every one of
// these (Pattern, Kind) as a difference that is not noise.
type expected struct {
	name  string
	diffs []Difference // Pattern and Kind only
}

// TestNoiseEvaluation runs synthetic mirrored traffic through a Learner
// and Compare and measures what the budget asks for (DESIGN.md: ≤ 1 %
// false differences, ≥ 99 % of seeded real differences found).
//
// The API: GET /orders/{id}, ids drawn Zipf-like from 3 000 orders, so
// popular requests repeat and the long tail is seen once. Every response
// has stable fields (the order), and noise that changes on every response
// of either service: request_id (a UUID), generated_at and every line's
// reserved_at (timestamps), meta.nonce, meta.server_time_ms; noise that is
// harder to learn: meta.served_by (one of 3 replicas: it repeats a third
// of the time), order.discount.expires_at (on a tenth of the orders only),
// meta.recommendations (0 to 3 random entries: elements come and go). The
// shadow
// also returns tags in any order (an unordered array in the rules) and
// prices off by less than the tolerance, which are not differences, and
// these seeded real differences:
//   - renamed field: customer → customer_name for 3 % of orders (always
//     for those orders);
//   - extra field: loyalty_tier for 2 % of orders (always for those);
//   - dropped noisy field: meta.nonce is missing for 2.5 % of orders (its
//     value is noise, its absence is not);
//   - float beyond tolerance: lines[0].unit_price + 0.05 in 2 % of
//     responses (at random);
//   - changed value: status "on_hold" in 2 % of responses (at random);
//   - failure: 503 with an error body in 0.5 % of responses.
//
// Differences are classified as the report does: at the end, with the
// patterns learned from all the traffic, by Learner.IsNoiseDiff. A reported difference is false
// when it is not one of the pair's seeded differences (pairs with a seeded
// failure are left out of the false count: everything differs there).
func TestNoiseEvaluation(t *testing.T) {
	const (
		orders   = 3000
		requests = 30000
		lines    = 3
	)
	rules := mustRules(t, Spec{
		NumericTolerance: 0.01,
		UnorderedArrays:  []string{"$.order.lines[*].tags"},
	})
	learner := NewLearner(LearnerConfig{}, rules)

	rng := rand.New(rand.NewPCG(2026, 3))
	zipf := rand.NewZipf(rng, 1.1, 1, orders-1)
	primaryGen, shadowGen := newAPIGen(11), newAPIGen(12)
	primaryGen.lineNoise, shadowGen.lineNoise = true, true
	primaryGen.richNoise, shadowGen.richNoise = true, true
	h := map[string]string{"content-type": "application/json"}

	type pair struct {
		diffs    []Difference
		seeded   []expected
		failure  bool
		noiseNow []bool // IsNoise at the time of the pair, for the online figure
	}
	pairs := make([]pair, 0, requests)
	seededCount := map[string]int{}
	asked := map[int]int{}
	for range requests {
		id := int(zipf.Uint64()) + 1
		asked[id]++
		o := orderFor(id, lines)
		fp := fmt.Sprintf("GET /orders/%d", id)

		var v variant
		var seeded []expected
		if id%33 == 0 {
			v.renameCustomer = true
			seeded = append(seeded, expected{"renamed field", []Difference{{Pattern: "$.order.customer", Kind: Removed}, {Pattern: "$.order.customer_name", Kind: Added}}})
		}
		if id%40 == 11 {
			v.dropNonce = true
			seeded = append(seeded, expected{"dropped noisy field", []Difference{{Pattern: "$.meta.nonce", Kind: Removed}}})
		}
		if id%50 == 7 {
			v.extraField = true
			seeded = append(seeded, expected{"extra field", []Difference{{Pattern: "$.order.loyalty_tier", Kind: Added}}})
		}
		switch x := rng.Float64(); {
		case x < 0.02:
			v.priceDelta = 0.05
			seeded = append(seeded, expected{"float beyond tolerance", []Difference{{Pattern: "$.order.lines[*].unit_price", Kind: Changed}}})
		case x < 0.10:
			v.priceDelta = 0.004 // within tolerance: not a difference
		}
		if rng.Float64() < 0.02 {
			v.changedStatus = true
			seeded = append(seeded, expected{"changed value", []Difference{{Pattern: "$.order.status", Kind: Changed}}})
		}
		primary := Response{Status: 200, Headers: h, Body: primaryGen.render(o, variant{})}
		shadow := Response{Status: 200, Headers: h, Body: shadowGen.render(shuffleTags(o, rng), v)}
		failure := rng.Float64() < 0.005
		if failure {
			shadow = Response{Status: 503, Headers: h, Body: []byte(`{"error":"unavailable","request_id":"` + shadowGen.uuid() + `"}`)}
			seeded = []expected{{"failure", []Difference{{Pattern: "status", Kind: Status}}}}
		}
		for _, s := range seeded {
			seededCount[s.name]++
		}

		learner.Observe(wire.SidePrimary, fp, primary)
		learner.Observe(wire.SideShadow, fp, shadow)
		res := Compare(primary, shadow, rules)
		if res.Skipped != "" {
			t.Fatalf("skipped: %s", res.Skipped)
		}
		p := pair{diffs: res.Differences, seeded: seeded, failure: failure}
		for _, d := range res.Differences {
			p.noiseNow = append(p.noiseNow, learner.IsNoiseDiff(d))
		}
		pairs = append(pairs, p)
	}

	// The report classifies with the published list, by Pattern and Kind.
	published := map[string][]Kind{}
	for _, np := range learner.Noise() {
		published[np.Pattern] = np.Kinds
	}
	var (
		noiseDiffs, falseDiffs, falsePairs, comparedPairs int
		onlineFalsePairs, patternOnlyFound                int
		found                                             = map[string]int{}
	)
	for _, p := range pairs {
		var real, realByPattern []Difference
		onlineFalse := false
		for i, d := range p.diffs {
			noise := learner.IsNoiseDiff(d)
			if noise != slices.Contains(published[d.Pattern], d.Kind) {
				t.Fatalf("IsNoiseDiff(%+v) = %v disagrees with Noise()", d, noise)
			}
			if !noise {
				real = append(real, d)
			}
			if !learner.IsNoise(d.Pattern) {
				realByPattern = append(realByPattern, d)
			}
			if !p.noiseNow[i] && !explained(d, p.seeded) {
				onlineFalse = true
			}
		}
		for _, s := range p.seeded {
			if all(s.diffs, real) {
				found[s.name]++
			}
			if all(s.diffs, realByPattern) {
				patternOnlyFound++
			}
		}
		if p.failure {
			continue
		}
		comparedPairs++
		falsePair := false
		for _, d := range p.diffs {
			if explained(d, p.seeded) {
				continue
			}
			noiseDiffs++
			if !learner.IsNoiseDiff(d) {
				falseDiffs++
				falsePair = true
				if falseDiffs <= 5 {
					t.Logf("false difference: %+v", d)
				}
			}
		}
		if falsePair {
			falsePairs++
		}
		if onlineFalse {
			onlineFalsePairs++
		}
	}

	st := learner.Stats()
	once := 0
	for _, n := range asked {
		if n == 1 {
			once++
		}
	}
	t.Logf("traffic: %d pairs, %d distinct orders asked (%d only once), %d self-comparisons, %d patterns tracked",
		len(pairs), len(asked), once, st.Comparisons, st.Patterns)
	for _, np := range learner.Noise() {
		t.Logf("learned noise: %-32s varied %5d of %5d", np.Pattern, np.Varied, np.Compared)
	}
	falseDiffRate := ratio(falseDiffs, noiseDiffs)
	falsePairRate := ratio(falsePairs, comparedPairs)
	t.Logf("false differences: %d of %d noise differences (%.3f %%); pairs with a false difference: %d of %d (%.3f %%)",
		falseDiffs, noiseDiffs, 100*falseDiffRate, falsePairs, comparedPairs, 100*falsePairRate)
	t.Logf("(classified online, at the time of each pair instead of at report time: %d pairs with a false difference, %.3f %%)",
		onlineFalsePairs, 100*ratio(onlineFalsePairs, comparedPairs))
	totalSeeded, totalFound := 0, 0
	for _, name := range sortedKeys(seededCount) {
		t.Logf("seeded %-24s found %5d of %5d (%.2f %%)", name, found[name], seededCount[name], 100*ratio(found[name], seededCount[name]))
		totalSeeded += seededCount[name]
		totalFound += found[name]
	}
	foundRate := ratio(totalFound, totalSeeded)
	t.Logf("seeded real differences found: %d of %d (%.2f %%)", totalFound, totalSeeded, 100*foundRate)
	t.Logf("(classified by pattern alone, ignoring Kinds: %d of %d, %.2f %%)", patternOnlyFound, totalSeeded, 100*ratio(patternOnlyFound, totalSeeded))

	if falseDiffRate > 0.01 || falsePairRate > 0.01 {
		t.Errorf("false differences above 1 %%: %.3f %% of noise differences, %.3f %% of pairs", 100*falseDiffRate, 100*falsePairRate)
	}
	if foundRate < 0.99 {
		t.Errorf("found %.2f %% of seeded real differences, want at least 99 %%", 100*foundRate)
	}
	wantNoise := []string{
		"$.generated_at", "$.meta.nonce", "$.meta.recommendations[*]", "$.meta.recommendations[*].score",
		"$.meta.recommendations[*].sku", "$.meta.served_by", "$.meta.server_time_ms",
		"$.order.discount.expires_at", "$.order.lines[*].reserved_at", "$.request_id",
	}
	var gotNoise []string
	for _, np := range learner.Noise() {
		gotNoise = append(gotNoise, np.Pattern)
	}
	if !slices.Equal(gotNoise, wantNoise) {
		t.Errorf("learned noise %q, want %q", gotNoise, wantNoise)
	}
}

// shuffleTags returns o with every line's tags in a random order.
func shuffleTags(o order, rng *rand.Rand) order {
	o.Lines = slices.Clone(o.Lines)
	for i := range o.Lines {
		tags := slices.Clone(o.Lines[i].Tags)
		rng.Shuffle(len(tags), func(a, b int) { tags[a], tags[b] = tags[b], tags[a] })
		o.Lines[i].Tags = tags
	}
	return o
}

// explained reports whether d is one of the seeded differences.
func explained(d Difference, seeded []expected) bool {
	for _, s := range seeded {
		for _, e := range s.diffs {
			if d.Pattern == e.Pattern && d.Kind == e.Kind {
				return true
			}
		}
	}
	return false
}

// all reports whether every wanted (Pattern, Kind) is among got.
func all(want, got []Difference) bool {
	for _, w := range want {
		if !slices.ContainsFunc(got, func(d Difference) bool { return d.Pattern == w.Pattern && d.Kind == w.Kind }) {
			return false
		}
	}
	return true
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestNoiseLimits shows what the learner cannot do (NOISE.md, "Limits"),
// so that the documented behaviour stays true.
func TestNoiseLimits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	h := map[string]string{"content-type": "application/json"}
	resp := func(body string) Response { return Response{Status: 200, Headers: h, Body: []byte(body)} }
	cache := func() string {
		if rng.Float64() < 0.2 {
			return "miss"
		}
		return "hit"
	}

	t.Run("rarely varying field is reported", func(t *testing.T) {
		l := NewLearner(LearnerConfig{}, nil)
		reported := 0
		const n = 2000
		for i := range n {
			fp := fmt.Sprint(i % 50)
			p, s := resp(`{"cache":"`+cache()+`"}`), resp(`{"cache":"`+cache()+`"}`)
			l.Observe(wire.SidePrimary, fp, p)
			l.Observe(wire.SideShadow, fp, s)
			for _, d := range Compare(p, s, nil).Differences {
				if !l.IsNoiseDiff(d) {
					reported++
				}
			}
		}
		t.Logf("a field that is %q in 20 %% of responses differs in %.1f %% of pairs, all reported (noise: %+v)", "miss", 100*ratio(reported, n), l.Noise())
		if l.IsNoise("$.cache") {
			t.Error("learned as noise")
		}
	})
	t.Run("real change on a noise path is hidden", func(t *testing.T) {
		l := NewLearner(LearnerConfig{}, nil)
		for i := range 10 {
			l.Observe(wire.SidePrimary, "a", resp(fmt.Sprintf(`{"at":"2026-03-14T09:00:%02dZ"}`, i)))
		}
		d := Compare(resp(`{"at":"2026-03-14T09:00:00Z"}`), resp(`{"at":1773478800}`), nil).Differences[0]
		t.Logf("%s %s %s → %s is noise: %v", d.Path, d.Kind, d.Primary, d.Shadow, l.IsNoiseDiff(d))
		if !l.IsNoiseDiff(d) {
			t.Error("expected the documented limit: hidden")
		}
	})
	t.Run("fingerprint without identity makes per-user data noise", func(t *testing.T) {
		l := NewLearner(LearnerConfig{}, nil)
		for i := range 10 {
			l.Observe(wire.SidePrimary, "GET /me", resp(fmt.Sprintf(`{"user":"u%d"}`, i%3)))
		}
		t.Logf("GET /me fingerprinted without the caller's identity: $.user is noise: %v", l.IsNoise("$.user"))
		if !l.IsNoise("$.user") {
			t.Error("expected the documented limit: per-user field learned as noise")
		}
	})
}
