package report

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RenderOptions selects what Render prints.
type RenderOptions struct {
	Route    string // only this route; "" for all
	MaxPaths int    // differences and noise rows per route; 0 means 10
}

const (
	defaultRenderPaths = 10
	minPatternWidth    = 30
	maxPatternWidth    = 60
	excerptWidth       = 24
	requestIDWidth     = 8 // runes of a request id shown, then …
)

// outcomeLabels are the non-compared outcomes in the order Render lists them.
var outcomeLabels = []struct {
	outcome Outcome
	label   string
}{
	{PrimaryOnly, "primary-only"},
	{ShadowOnly, "shadow-only"},
	{Ambiguous, "ambiguous"},
	{Skipped, "skipped"},
}

// Render writes rep as the text of `shadowlab report`: per route a summary
// line, latency, the differing patterns with a sample each, and the noise
// that was ignored.
func Render(w io.Writer, rep Report, opts RenderOptions) error {
	maxPaths := opts.MaxPaths
	if maxPaths <= 0 {
		maxPaths = defaultRenderPaths
	}
	routes := rep.Routes
	if opts.Route != "" {
		i := slices.IndexFunc(routes, func(rr RouteReport) bool { return rr.Route == opts.Route })
		inAdmission := slices.ContainsFunc(rep.Admission, func(a AdmissionReport) bool { return a.Route == opts.Route })
		switch {
		case i >= 0:
			routes = routes[i : i+1]
		case inAdmission:
			routes = nil
		default:
			return fmt.Errorf("route %q is not in the report", opts.Route)
		}
	}
	bw := bufio.NewWriter(w)
	adm := rep.Admission
	if opts.Route != "" {
		adm = slices.DeleteFunc(slices.Clone(adm), func(a AdmissionReport) bool { return a.Route != opts.Route })
	}
	if len(routes) == 0 && len(adm) == 0 {
		fmt.Fprintln(bw, "no routes have results yet")
	}
	for i, rr := range routes {
		if i > 0 {
			fmt.Fprintln(bw)
		}
		renderRoute(bw, rr, maxPaths)
	}
	if len(adm) > 0 {
		if len(routes) > 0 {
			fmt.Fprintln(bw)
		}
		renderAdmission(bw, adm)
	}
	return bw.Flush()
}

func renderRoute(w io.Writer, rr RouteReport, maxPaths int) {
	if rr.Pairs == 0 {
		fmt.Fprintf(w, "route %s: no pairs yet\n", rr.Route)
	} else {
		rate := "n/a"
		if rr.MatchRate != nil {
			rate = strconv.FormatFloat(*rr.MatchRate*100, 'f', 1, 64) + " %"
		}
		line := fmt.Sprintf("route %s: %s, match rate %s (%s match, %s diff)",
			rr.Route, plural(rr.Pairs, "pair"), rate, thousands(rr.Outcomes[Match]), thousands(rr.Outcomes[Diff]))
		for _, ol := range outcomeLabels {
			if n := rr.Outcomes[ol.outcome]; n > 0 {
				line += fmt.Sprintf(", %s %s", thousands(n), ol.label)
				if reasons := renderReasons(rr.Reasons[ol.outcome]); reasons != "" {
					line += " (" + reasons + ")"
				}
			}
		}
		fmt.Fprintln(w, line)
	}
	if rr.FoldedPairs > 0 {
		fmt.Fprintf(w, "  %s diff pairs had too many distinct difference sets to be re-classified by noise\n", thousands(rr.FoldedPairs))
	}

	if rr.Latency.Primary.Count+rr.Latency.Shadow.Count > 0 {
		fmt.Fprintf(w, "  %-13s%8s%8s%8s%8s%8s\n", "latency ms", "n", "p50", "p90", "p99", "max")
		for _, s := range []struct {
			name string
			l    SideLatency
		}{{"primary", rr.Latency.Primary}, {"shadow", rr.Latency.Shadow}} {
			if s.l.Count == 0 {
				fmt.Fprintf(w, "    %-11s%8s%8s%8s%8s%8s\n", s.name, "0", "-", "-", "-", "-")
				continue
			}
			fmt.Fprintf(w, "    %-11s%8s%8s%8s%8s%8s\n", s.name, thousands(s.l.Count), ms(s.l.P50), ms(s.l.P90), ms(s.l.P99), ms(s.l.Max))
		}
	}

	width := minPatternWidth
	for _, d := range rr.Differences[:min(len(rr.Differences), maxPaths)] {
		width = max(width, utf8.RuneCountInString(d.Pattern)+2)
	}
	for _, n := range rr.Noise[:min(len(rr.Noise), maxPaths)] {
		width = max(width, utf8.RuneCountInString(n.Pattern)+2)
	}
	width = min(width, maxPatternWidth)

	if len(rr.Differences) > 0 {
		fmt.Fprintf(w, "  %s%-12s%7s  %s\n", pad("differences", width+2), "kind", "count", "sample (request id: primary → shadow)")
		for _, d := range rr.Differences[:min(len(rr.Differences), maxPaths)] {
			sample := ""
			if len(d.Samples) > 0 {
				s := d.Samples[0]
				sample = fmt.Sprintf("%s: %s → %s", shorten(s.RequestID, requestIDWidth+1), excerpt(s.Primary), excerpt(s.Shadow))
			}
			fmt.Fprintf(w, "    %s%-12s%7s  %s\n", pad(shorten(d.Pattern, width-2), width), d.Kind, thousands(d.Count), sample)
		}
		if n := len(rr.Differences) - maxPaths; n > 0 {
			fmt.Fprintf(w, "    … %s more\n", thousands(n))
		}
	}
	if len(rr.Marks) > 0 {
		fmt.Fprintf(w, "  %s%15s\n", pad("marks echoed by the shadow (shadowlab's own headers, not counted)", width+2), "pairs")
		for _, m := range rr.Marks[:min(len(rr.Marks), maxPaths)] {
			fmt.Fprintf(w, "    %s%15s\n", pad(shorten(m.Pattern, width-2), width), thousands(m.Count))
		}
	}
	if len(rr.Noise) > 0 {
		fmt.Fprintf(w, "  %s%15s%12s\n", pad("noise (ignored)", width+2), "varied/compared", "suppressed")
		for _, n := range rr.Noise[:min(len(rr.Noise), maxPaths)] {
			fmt.Fprintf(w, "    %s%15s%12s\n", pad(shorten(n.Pattern, width-2), width),
				thousands(n.Varied)+"/"+thousands(n.Compared), thousands(n.Suppressed))
		}
		if n := len(rr.Noise) - maxPaths; n > 0 {
			fmt.Fprintf(w, "    … %s more\n", thousands(n))
		}
	}
}

func renderReasons(reasons map[string]int) string {
	type rc struct {
		reason string
		n      int
	}
	var list []rc
	for r, n := range reasons {
		list = append(list, rc{r, n})
	}
	slices.SortFunc(list, func(a, b rc) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.reason, b.reason)) })
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = x.reason + ": " + thousands(x.n)
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// thousands formats n with a space between groups of three digits: 1 204.
// thousandsU is thousands for counts that may exceed an int.
func thousandsU(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func excerpt(s string) string {
	if s == "" {
		return "(none)"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return shorten(s, excerptWidth)
}

// shorten cuts s to n runes, the last one an ellipsis.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// pad left-aligns s in n runes (fmt pads by bytes).
func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}
