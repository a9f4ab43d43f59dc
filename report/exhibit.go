package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/shadowlab/shadowlab/compare"
)

// maxDetailDifferences bounds the differences a pair's page lists.
const maxDetailDifferences = 200

// PairDetail is one recent non-match pair with what its page shows: the
// JSON body of GET /api/v1/pairs/{id}.
type PairDetail struct {
	PairRecord
	// Differences are the pair's first maxDetailDifferences differences
	// with their excerpts (redacted) when its responses were kept, else
	// PairRecord's.
	Differences []DetailDifference `json:"differences"`
	// Primary and Shadow are the responses, redacted and bounded
	// (compare.Exhibit); null when that side is missing or the responses
	// were not kept (EvidenceNote says which).
	Primary      *compare.Exhibit `json:"primary"`
	Shadow       *compare.Exhibit `json:"shadow"`
	EvidenceNote string           `json:"evidence_note,omitempty"`
}

// DetailDifference is one difference of a pair, with its excerpts.
type DetailDifference struct {
	PairDifference
	Primary string `json:"primary"`
	Shadow  string `json:"shadow"`
}

// exhibitRow is a pair's responses waiting for the store.
type exhibitRow struct {
	pinned bool // a sample's: kept past MaxExhibits (up to MaxPinnedExhibits)
	doc    exhibitDoc
}

// exhibitDoc is the stored form (column body, JSON).
type exhibitDoc struct {
	Primary     *compare.Exhibit   `json:"primary"`
	Shadow      *compare.Exhibit   `json:"shadow"`
	Differences []DetailDifference `json:"differences"`
}

// newExhibitRow renders a pair's evidence.
func (r *Reporter) newExhibitRow(p *Pair, ev *Responses, pinned bool) *exhibitRow {
	row := &exhibitRow{pinned: pinned}
	for _, side := range []struct {
		resp *compare.Response
		into **compare.Exhibit
	}{{ev.Primary, &row.doc.Primary}, {ev.Shadow, &row.doc.Shadow}} {
		if side.resp != nil {
			e := compare.NewExhibit(*side.resp, ev.Rules, r.cfg.MaxExhibitBytes)
			*side.into = &e
		}
	}
	for _, d := range p.Differences[:min(len(p.Differences), maxDetailDifferences)] {
		row.doc.Differences = append(row.doc.Differences, DetailDifference{
			PairDifference: PairDifference{Path: d.Path, Pattern: d.Pattern, Kind: d.Kind},
			Primary:        redactExcerpt(d.Path, d.Primary), Shadow: redactExcerpt(d.Path, d.Shadow),
		})
	}
	return row
}

// Pair reads one recent non-match pair with its responses; false when the
// store no longer has it.
func (r *Reporter) Pair(ctx context.Context, id int64) (PairDetail, bool, error) {
	var rec *storedPair
	err := r.store.pairs(ctx, pairFilter{id: id}, func(sp storedPair) bool {
		rec = &sp
		return false
	})
	if err != nil || rec == nil {
		return PairDetail{}, false, err
	}
	noise := r.noiseOf(rec.rec.Route)
	pr := classify(*rec, noise)
	out := PairDetail{PairRecord: pr}
	body, err := r.store.exhibit(ctx, id)
	switch {
	case err != nil:
		return PairDetail{}, false, err
	case body == "" && r.cfg.NoExhibits:
		out.EvidenceNote = "serve keeps no responses (--pair-responses 0): the differences' excerpts are what there is"
	case body == "":
		out.EvidenceNote = fmt.Sprintf("the responses were not kept: serve keeps them for the last %d non-match pairs, the first samples of each difference, and at most %d pairs a %v", r.cfg.MaxExhibits, r.cfg.ExhibitsPerFlush, r.cfg.FlushInterval)
	default:
		var doc exhibitDoc
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return PairDetail{}, false, fmt.Errorf("pair %d: responses: %w", id, err)
		}
		out.Primary, out.Shadow, out.Differences = doc.Primary, doc.Shadow, doc.Differences
		switch {
		case out.Primary == nil && out.Shadow == nil:
			out.EvidenceNote = "neither response arrived"
		case out.Primary == nil:
			out.EvidenceNote = "the primary's response did not arrive"
		case out.Shadow == nil:
			out.EvidenceNote = "the shadow's response did not arrive"
		}
	}
	if out.Differences == nil {
		out.Differences = make([]DetailDifference, 0, len(pr.Differences))
		for _, d := range pr.Differences {
			out.Differences = append(out.Differences, DetailDifference{PairDifference: d})
		}
	}
	for i := range out.Differences {
		d := &out.Differences[i]
		n, ok := noise[d.Pattern]
		d.Noise = ok && noiseCovers(n, d.Kind)
	}
	return out, true, nil
}

// noiseOf is a copy of a route's current noise.
func (r *Reporter) noiseOf(route string) map[string]compare.NoisePath {
	set := map[string]compare.NoisePath{}
	r.mu.RLock()
	rs := r.routes[route]
	r.mu.RUnlock()
	if rs != nil {
		rs.mu.Lock()
		maps.Copy(set, rs.noise)
		rs.mu.Unlock()
	}
	return set
}

// classify re-classifies a stored diff pair with the route's noise: a
// match when every difference (all of them known) lies on noise.
func classify(sp storedPair, noise map[string]compare.NoisePath) PairRecord {
	rec := sp.rec
	if rec.Outcome != Diff {
		return rec
	}
	all := sp.complete
	for _, k := range sp.keys {
		if n, ok := noise[k.pattern]; !ok || !noiseCovers(n, k.kind) {
			all = false
		}
	}
	if all {
		rec.Outcome = Match
	}
	for i := range rec.Differences {
		d := &rec.Differences[i]
		n, ok := noise[d.Pattern]
		d.Noise = ok && noiseCovers(n, d.Kind)
	}
	return rec
}

// exhibit reads a pair's stored responses; "" when none are kept.
func (s *store) exhibit(ctx context.Context, id int64) (string, error) {
	var body string
	err := s.db.QueryRowContext(ctx, "SELECT body FROM exhibits WHERE pair_id = ?", id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return body, err
}
