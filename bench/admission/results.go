package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// results is everything a run measured.
type results struct {
	Machine     harness.Machine
	Module      moduleInfo
	Params      config
	Startup     startup
	Cost        []costPhase
	Bursts      []burstResult
	Release     *releaseDetail // of the delay arm
	RSSAfterKiB int            // Envoy with the plugin after every phase
	HWMKiB      int
}

type startSample struct {
	Ready  time.Duration    // exec to /ready LIVE
	RSSKiB int              // at ready
	CPU    harness.CPUUsage // meanwhile
}

type startup struct {
	Plain, Plugin []startSample
}

type costArm struct {
	Requests, Errors int // recorded
	Sent             int // every request, recorded or not
	Lat              harness.Latency
	NotHeld          harness.Latency // the requests the plugin did not hold
	EnvoyUs          float64         // Envoy CPU time per request sent, µs; 0 if unread
}

type costPhase struct {
	Name    string
	Seconds float64
	Arms    [numArms]costArm
	Decided int // requests of the plugin arm the upstream saw (warm-up excluded)
	Held    int // of which the plugin held until a tick
	// CASRetries counts the plugin's shared-data compare-and-swap retries
	// during the phase (Envoy's counter; the warm-up excluded).
	CASRetries int64
	CPU        harness.CPUUsage
	Quiet      bool // a quiet second came before the phase
}

// burstResult is one arm of the bursts.
type burstResult struct {
	Name, Route string
	N           int
	WarmFailed  int // connections the warm-up could not open
	Quiet       bool
	CPU         harness.CPUUsage

	OK, TooMany, Other, Errors int // final answers: 200, 429, another status, no answer
	Attempts                   int
	Reused                     int // attempts sent on a connection open already
	Reached                    int // requests the upstream saw
	PeakSliding                int // most arrivals in any 1 s window
	// PeakSent is the most requests Envoy sent upstream in any 1 s window
	// (its access log), -1 if the log was missing.
	PeakSent          int
	PerSecond         []int // arrivals per second from the burst instant
	LastArrival       time.Duration
	Lat               harness.Latency // of the 200s, from the burst instant
	RejectLat         harness.Latency // of the final 429s, from the burst instant
	AttemptsPerSecond []int           // sent by the clients, per second from the burst instant
	PeakAttempts      int             // most attempts sent in any 1 s window

	t0       time.Time
	arrivals []arrival
}

// summarize fills br from the clients' shots and the upstream's arrivals.
func (br *burstResult) summarize(t0 time.Time, shots []shot, arrivals []arrival) {
	br.t0, br.arrivals = t0, arrivals
	var ok, rejected, sent []time.Duration
	for _, s := range shots {
		br.Attempts += len(s.attempts)
		br.Reused += s.reused
		sent = append(sent, s.attempts...)
		switch {
		case s.err != nil:
			br.Errors++
		case s.status == http.StatusOK:
			br.OK++
			ok = append(ok, s.done)
		case s.status == http.StatusTooManyRequests:
			br.TooMany++
			rejected = append(rejected, s.done)
		default:
			br.Other++
		}
	}
	br.Lat, br.RejectLat = harness.Summarize(ok), harness.Summarize(rejected)
	br.AttemptsPerSecond = perSecond(sent)
	br.PeakAttempts, _ = mostInWindow(sent, time.Second)
	at := make([]time.Duration, len(arrivals))
	for i, a := range arrivals {
		at[i] = a.at.Sub(t0)
	}
	br.Reached = len(at)
	br.PeakSliding, _ = mostInWindow(at, time.Second)
	br.PerSecond = perSecond(at)
	if len(at) > 0 {
		br.LastArrival = at[len(at)-1] // mostInWindow sorted them
	}
}

// peakAligned is the most arrivals in one second counted from the burst.
func (br *burstResult) peakAligned() int { return slices.Max(append([]int{0}, br.PerSecond...)) }

// sendPeak fills br.PeakSent from Envoy's access log.
func (br *burstResult) sendPeak(logged map[string]logLine) {
	rows := joinRows(br, logged)
	if len(rows) < len(br.arrivals) {
		br.PeakSent = -1
		return
	}
	sent := make([]time.Duration, len(rows))
	for i, r := range rows {
		sent[i] = r.Sent
	}
	br.PeakSent, _ = mostInWindow(sent, time.Second)
}

// logLine is one line of Envoy's access log (bootstrap.go's format).
type logLine struct {
	route  string
	start  time.Time     // Envoy saw the request's first byte (wall clock)
	toSend time.Duration // from then to Envoy sending it upstream; -1: never sent
	heldMs int           // the plugin's header; -1 if absent
	status int
}

// readAccessLog reads Envoy's access log by request id.
func readAccessLog(path string) (map[string]logLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]logLine{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseAccessLog(f)
}

func parseAccessLog(r io.Reader) (map[string]logLine, error) {
	out := map[string]logLine{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) != 6 {
			return nil, fmt.Errorf("access log line %d: %d fields, want 6: %q", n, len(f), sc.Text())
		}
		l := logLine{route: f[1], toSend: -1, heldMs: -1}
		sec, frac, _ := strings.Cut(f[2], ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		us, err2 := strconv.ParseInt(frac, 10, 64)
		var err3, err4, err5 error
		if f[3] != "-" {
			var d int64
			d, err3 = strconv.ParseInt(f[3], 10, 64)
			l.toSend = time.Duration(d) * time.Microsecond
		}
		if f[4] != "-" {
			l.heldMs, err4 = strconv.Atoi(f[4])
		}
		l.status, err5 = strconv.Atoi(f[5])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(frac) != 6 {
			return nil, fmt.Errorf("access log line %d: %q: %v", n, sc.Text(), err)
		}
		l.start = time.Unix(s, us*1000)
		out[f[0]] = l
	}
	return out, sc.Err()
}

// releaseRow is one request of the delay arm, offsets from the burst
// instant (wall clock, as Envoy's log has it).
type releaseRow struct {
	ID        string
	Admission string
	Decided   time.Duration // Envoy saw the request
	HeldMs    int           // the plugin's header, -1 if it was not held
	Sent      time.Duration // Envoy sent it upstream
	Arrived   time.Duration // the upstream saw it
}

// releaseDetail splits the delay arm's spread into Envoy's sends (release
// by the plugin, then Envoy's router) and the upstream's arrivals.
type releaseDetail struct {
	Joined, Missing int // arrivals with and without an access log line
	Held            int // the rest passed at once
	// Held requests are sent in groups, one per tick that released them:
	// the time between groups, and the most sent within 1 ms.
	BetweenTicks    harness.Latency
	MostAtOnce      int
	Decided         harness.Latency // when Envoy saw the requests
	PeakSent        int             // most sends in any 1 s window
	PeakSentFrom    time.Duration
	PeakArrived     int // most arrivals in any 1 s window (wall clock)
	PeakArrivedFrom time.Duration
	SentInPeak      int             // sends in that arrival window
	Lag             harness.Latency // arrival − send
	ResumeToSend    harness.Latency // for held requests: send − (decision + held-ms)
	// When the densest window of sends (of arrivals) holds more than the
	// limit: its first and last requests.
	SendEdge, ArrivalEdge []releaseRow
	Limit                 int
}

// releaseOf joins the delay arm's arrivals with Envoy's access log.
func releaseOf(br *burstResult, logged map[string]logLine, limit int) *releaseDetail {
	d := &releaseDetail{Limit: limit}
	rows := joinRows(br, logged)
	d.Joined, d.Missing = len(rows), len(br.arrivals)-len(rows)
	if len(rows) == 0 {
		return d
	}
	var decided, sent, arrived, lag, resume []time.Duration
	for _, r := range rows {
		decided = append(decided, r.Decided)
		sent = append(sent, r.Sent)
		arrived = append(arrived, r.Arrived)
		lag = append(lag, r.Arrived-r.Sent)
		if r.HeldMs >= 0 {
			d.Held++
			resume = append(resume, r.Sent-r.Decided-time.Duration(r.HeldMs)*time.Millisecond)
		}
	}
	d.Decided, d.Lag, d.ResumeToSend = harness.Summarize(decided), harness.Summarize(lag), harness.Summarize(resume)
	var heldSent []time.Duration
	for _, r := range rows {
		if r.HeldMs >= 0 {
			heldSent = append(heldSent, r.Sent)
		}
	}
	d.MostAtOnce, _ = mostInWindow(heldSent, time.Millisecond)
	d.BetweenTicks = harness.Summarize(groupGaps(heldSent, time.Millisecond))
	d.PeakSent, d.PeakSentFrom = mostInWindow(sent, time.Second)
	d.PeakArrived, d.PeakArrivedFrom = mostInWindow(arrived, time.Second)
	d.SentInPeak = inWindow(sent, d.PeakArrivedFrom, time.Second)
	if d.PeakSent > limit {
		d.SendEdge = edgeRows(rows, d.PeakSentFrom, func(r releaseRow) time.Duration { return r.Sent })
	}
	if d.PeakArrived > limit {
		d.ArrivalEdge = edgeRows(rows, d.PeakArrivedFrom, func(r releaseRow) time.Duration { return r.Arrived })
	}
	return d
}

// edgeRows is the first and last 4 rows (by at) of the 1 s window from
// from.
func edgeRows(rows []releaseRow, from time.Duration, at func(releaseRow) time.Duration) []releaseRow {
	var in []releaseRow
	for _, r := range rows {
		if t := at(r); t >= from && t < from+time.Second {
			in = append(in, r)
		}
	}
	slices.SortFunc(in, func(a, b releaseRow) int { return cmp.Compare(at(a), at(b)) })
	if len(in) > 8 {
		in = append(in[:4], in[len(in)-4:]...)
	}
	return in
}

// joinRows is a burst arm's requests that both the upstream and Envoy's
// access log saw, by arrival.
func joinRows(br *burstResult, logged map[string]logLine) []releaseRow {
	t0 := br.t0.Round(0) // wall clock, like Envoy's
	var rows []releaseRow
	for _, a := range br.arrivals {
		l, ok := logged[a.id]
		if !ok || l.toSend < 0 {
			continue
		}
		dec := l.start.Sub(t0)
		rows = append(rows, releaseRow{
			ID: a.id, Admission: a.admission, Decided: dec, HeldMs: a.heldMs,
			Sent: dec + l.toSend, Arrived: a.at.Round(0).Sub(t0),
		})
	}
	slices.SortFunc(rows, func(a, b releaseRow) int { return cmp.Compare(a.Arrived, b.Arrived) })
	return rows
}

// writeTrace writes a burst arm's forwarded requests as CSV, offsets in ms
// from the burst instant.
func writeTrace(path string, br *burstResult, logged map[string]logLine) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,admission,decided_ms,held_ms,sent_ms,arrived_ms,lag_ms")
	for _, r := range joinRows(br, logged) {
		fmt.Fprintf(w, "%s,%s,%.3f,%d,%.3f,%.3f,%.3f\n", r.ID, r.Admission, harness.Ms(r.Decided), r.HeldMs, harness.Ms(r.Sent), harness.Ms(r.Arrived), harness.Ms(r.Arrived-r.Sent))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
