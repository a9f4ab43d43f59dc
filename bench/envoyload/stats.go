package main

import (
	"math"
	"time"
)

// The pure parts of the benchmark: the open-loop schedule, ratios and the
// cost per pair. Time is always an offset from the start of a phase, so
// tests are step tables.

// schedule is an open-loop schedule: request i is due at offset i/rate,
// whatever happened to the requests before it.
type schedule struct {
	rate float64 // requests per second, > 0
}

// offset is when request i is due, from the start of the phase.
func (s schedule) offset(i int) time.Duration {
	return time.Duration(math.Round(float64(i) * float64(time.Second) / s.rate))
}

// count is how many requests are due before d: the i >= 0 with offset(i) < d.
func (s schedule) count(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	n := int(math.Ceil(d.Seconds() * s.rate))
	for n > 0 && s.offset(n-1) >= d { // float rounding at the edge
		n--
	}
	for s.offset(n) < d {
		n++
	}
	return n
}

// ratio is a/b, or 0 when b is 0 (no data is not a ratio).
func ratio[T ~int | ~int64 | ~float64](a, b T) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// pairCost is what one mirrored request (a pair, when it is compared) costs
// in CPU µs, from the arms of one percent phase.
//
// An arm's Envoy µs per request is plain's plus share (the fraction Envoy
// really mirrored) × what a mirrored request adds. So per pair: mirroring
// = (mirror − plain) / share(mirror), capture = (captured − plain) /
// share(captured) − mirroring; with equal shares, (captured
// − mirror) / share. serve's is its CPU time in the arm's slices over the
// pairs it compared (one shed or without a shadow costs less: not counted).
type pairCost struct {
	Mirroring float64 `json:"envoy_mirroring_us"` // Envoy: mirroring alone, beyond plain
	Capture   float64 `json:"envoy_capture_us"`   // Envoy: the plugin's capture, beyond mirroring
	Serve     float64 `json:"serve_us"`           // serve, through the gateway: forward, receive, pair, compare, store
}

// beyondPlain is what arm adds to Envoy's CPU per request it mirrored:
// (arm − plain) / share; 0 when nothing was mirrored.
func beyondPlain(plainUs, armUs, share float64) float64 {
	if share <= 0 {
		return 0
	}
	return (armUs - plainUs) / share
}

// perPair spreads usPerRequest over sent requests onto pairs; 0 without
// pairs.
func perPair(usPerRequest float64, sent, pairs int) float64 {
	if pairs <= 0 {
		return 0
	}
	return usPerRequest * float64(sent) / float64(pairs)
}

// costOf is the cost per pair of a percent phase's arms (armPlain …
// armCaptured).
func costOf(arms []armResult) pairCost {
	plain := arms[armPlain].CPU.EnvoyUs
	envoy := func(a armResult) float64 { return beyondPlain(plain, a.CPU.EnvoyUs, a.Share) }
	serve := func(a armResult) float64 { return perPair(a.CPU.ServeUs, a.Sent, a.Report.compared()) }
	c := pairCost{Mirroring: envoy(arms[armMirror])}
	c.Capture, c.Serve = envoy(arms[armCaptured])-c.Mirroring, serve(arms[armCaptured])
	return c
}

// pairsPerCore is how many pairs one core of serve handles a second at us
// µs per pair.
func pairsPerCore(us float64) float64 {
	if us <= 0 {
		return 0
	}
	return 1e6 / us
}
