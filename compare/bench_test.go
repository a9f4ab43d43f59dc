package compare

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}}

// benchPairs returns a few distinct realistic pairs of about size bytes:
// different noise (ids, timestamps, nonce) and two real differences each.
func benchPairs(size int) [][2]Response {
	h := map[string]string{"content-type": "application/json"}
	var out [][2]Response
	for s := range uint64(8) {
		p, q := benchPair(s+1, size)
		out = append(out, [2]Response{{Status: 200, Headers: h, Body: p}, {Status: 200, Headers: h, Body: q}})
	}
	return out
}

func BenchmarkCompare(b *testing.B) {
	rules, err := NewRules(Spec{})
	if err != nil {
		b.Fatal(err)
	}
	benchEachSize(b, func(p [2]Response) {
		if res := Compare(p[0], p[1], rules); len(res.Differences) == 0 {
			b.Fatal("no differences")
		}
	})
}

// benchEachSize runs one sub-benchmark per benchSizes, calling pair on
// their pairs in turn, and reports pairs/s.
func benchEachSize(b *testing.B, pair func(p [2]Response)) {
	for _, bs := range benchSizes {
		pairs := benchPairs(bs.size)
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(len(pairs[0][0].Body) + len(pairs[0][1].Body)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pair(pairs[i%len(pairs)])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}

func BenchmarkBaseline(b *testing.B) {
	benchEachSize(b, func(p [2]Response) {
		if diffs := baselineCompare(p[0].Body, p[1].Body); len(diffs) == 0 {
			b.Fatal("no differences")
		}
	})
}

// baselineCompare is what a straightforward comparator looks like:
// encoding/json into any, a generic recursive diff building paths as it
// goes, json.Marshal for excerpts, differences sorted by path.
func baselineCompare(a, b []byte) []Difference {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		return []Difference{{Path: "body", Kind: Body}}
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return []Difference{{Path: "body", Kind: Body}}
	}
	var out []Difference
	baselineDiff("$", "$", va, vb, &out)
	slices.SortFunc(out, func(x, y Difference) int { return strings.Compare(x.Path, y.Path) })
	return out
}

func baselineDiff(path, pattern string, a, b any, out *[]Difference) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, baselineDifference(path, pattern, TypeChanged, a, b))
			return
		}
		for k, x := range av {
			p, q := path+"."+k, pattern+"."+k
			if y, ok := bv[k]; ok {
				baselineDiff(p, q, x, y, out)
			} else {
				*out = append(*out, baselineDifference(p, q, Removed, x, nil))
			}
		}
		for k, y := range bv {
			if _, ok := av[k]; !ok {
				*out = append(*out, baselineDifference(path+"."+k, pattern+"."+k, Added, nil, y))
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			*out = append(*out, baselineDifference(path, pattern, TypeChanged, a, b))
			return
		}
		q := pattern + "[*]"
		for i := range max(len(av), len(bv)) {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i < len(av) && i < len(bv):
				baselineDiff(p, q, av[i], bv[i], out)
			case i < len(av):
				*out = append(*out, baselineDifference(p, q, Removed, av[i], nil))
			default:
				*out = append(*out, baselineDifference(p, q, Added, nil, bv[i]))
			}
		}
	default:
		if jsonType(a) != jsonType(b) {
			*out = append(*out, baselineDifference(path, pattern, TypeChanged, a, b))
		} else if a != b {
			*out = append(*out, baselineDifference(path, pattern, Changed, a, b))
		}
	}
}

func jsonType(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case float64:
		return 2
	case string:
		return 3
	}
	return 4
}

func baselineDifference(path, pattern string, k Kind, a, b any) Difference {
	d := Difference{Path: path, Pattern: pattern, Kind: k}
	if a != nil || k != Added {
		j, _ := json.Marshal(a)
		d.Primary = cut(j, MaxExcerpt)
	}
	if b != nil || k != Removed {
		j, _ := json.Marshal(b)
		d.Shadow = cut(j, MaxExcerpt)
	}
	return d
}

// BenchmarkParse measures the tokenizer alone on one 4 KiB body.
func BenchmarkParse(b *testing.B) {
	p, _ := benchPair(1, 4<<10)
	var d doc
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !d.parse(p) {
			b.Fatal("not JSON")
		}
	}
}

// BenchmarkExhibit renders both sides of a pair for its page, as the
// report does for the non-match pairs it keeps (at most
// report.Config.ExhibitsPerFlush a flush, 32 KiB a side): beside
// BenchmarkCompare, what keeping a pair's responses costs serve.
func BenchmarkExhibit(b *testing.B) {
	rules, err := NewRules(Spec{})
	if err != nil {
		b.Fatal(err)
	}
	benchEachSize(b, func(p [2]Response) {
		if e := NewExhibit(p[0], rules, 32<<10); len(e.Lines) == 0 {
			b.Fatal("no lines")
		}
		NewExhibit(p[1], rules, 32<<10)
	})
}
