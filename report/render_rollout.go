package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// RenderRollout writes rr as `shadowlab status` prints a route: its stage,
// its verdict, each gate with its value, threshold and what an
// inconclusive one lacks, the candidate's fallbacks by reason, then the
// same per tenant.
func RenderRollout(w io.Writer, rr RouteRollout) error {
	stage := string(rr.Stage)
	if rr.Stage == "canary" {
		stage += " " + strconv.FormatFloat(rr.Percent, 'g', -1, 64) + " %"
		if len(rr.CanaryTenants) > 0 {
			stage += " of " + strings.Join(rr.CanaryTenants, ", ")
		}
	}
	auto := ""
	if rr.AutoRollback {
		auto = ", automatic rollback on a failing gate"
	}
	fmt.Fprintf(w, "%s: %s — %s over the last %s%s\n", rr.Route, stage, strings.ToUpper(string(rr.Verdict)), windowText(rr.WindowSeconds), auto)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	gates(tw, "  ", rr.Evidence, rr.Gates)
	for _, t := range rr.Tenants {
		fmt.Fprintf(tw, "  tenant %s: %s, %d pairs\n", t.Tenant, t.Verdict, t.Pairs)
		gates(tw, "    ", t.Evidence, t.Gates)
	}
	return tw.Flush()
}

func gates(w io.Writer, indent string, e Evidence, gs []GateResult) {
	for _, g := range gs {
		value := "—"
		if g.Value != nil {
			value = gateValue(g.Gate, *g.Value)
		}
		fmt.Fprintf(w, "%s%s\t%s\t%s\t%s %s\t%s\n", indent, g.Gate, g.Verdict, value, gateOp(g.Gate), gateValue(g.Gate, g.Threshold), g.Missing)
	}
	if e.CandidateRequests > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(e.Fallbacks)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, e.Fallbacks[k]))
		}
		fb := "none"
		if len(parts) > 0 {
			fb = strings.Join(parts, ", ")
		}
		// No tab: the line ends the gates' column block instead of widening it.
		fmt.Fprintf(w, "%scandidate answered %d, fell back: %s; failed for the user: %d\n", indent, e.CandidateRequests, fb, e.Failed)
	}
}

func gateOp(gate string) string {
	if gate == GateMinPairs || gate == GateMatchRate {
		return "≥"
	}
	return "≤"
}

func gateValue(gate string, v float64) string {
	switch gate {
	case GateMinPairs:
		return strconv.Itoa(int(v))
	case GateMatchRate, GateFallbackRate:
		return strconv.FormatFloat(v*100, 'f', 2, 64) + " %"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

func windowText(seconds float64) string {
	if seconds >= 60 && int(seconds)%60 == 0 {
		return strconv.Itoa(int(seconds)/60) + " min"
	}
	return strconv.FormatFloat(seconds, 'g', -1, 64) + " s"
}
