package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// arm is one route of the benchmark's policy as the generator loads it.
// Every route answers with the primary (legacy); the arms differ only in
// what Envoy does besides.
type arm struct {
	Name    string  `json:"arm"`              // as printed
	Route   string  `json:"route"`            // the policy route
	Path    string  `json:"path"`             // what the generator requests
	Exact   bool    `json:"-"`                // the route matches Path exactly; otherwise its prefix /<route>/
	Shadow  string  `json:"shadow,omitempty"` // the shadow service; "" mirrors nothing
	Percent float64 `json:"percent,omitempty"`
	Capture bool    `json:"capture,omitempty"` // answers compared: the shadow's through the gateway, the primary's by the plugin
	// Stage is the route's rollout stage: promoted (the shadow service,
	// the candidate, answers every request, falling back on the primary),
	// or canary (the plugin computes each user's bucket; a share of 0 %
	// measures that decision alone). "": no rollout.
	Stage string `json:"stage,omitempty"`
}

// Arms of a percent phase, in this order.
const (
	armPlain    = iota // primary only
	armMirror          // mirrored straight to the shadow, nothing compared
	armCaptured        // mirrored through the gateway, the primary's answer captured by the plugin
)

var plainArm = arm{Name: "plain", Route: "plain", Path: "/plain/item/1"}

// prefixArm is a mirrored route matched by the prefix /<route>/.
func prefixArm(name, route, shadow string, percent float64, capture bool) arm {
	return arm{Name: name, Route: route, Path: "/" + route + "/item/1", Shadow: shadow, Percent: percent, Capture: capture}
}

// percentArms are the arms of the phases at p % mirrored.
func percentArms(p float64) []arm {
	// p as it can stand in a route name: 0.5 → 0_5.
	l, pct := strings.ReplaceAll(strconv.FormatFloat(p, 'f', -1, 64), ".", "_"), fmt.Sprintf(" %g %%", p)
	return []arm{
		armPlain:    plainArm,
		armMirror:   prefixArm("mirror"+pct, "mirror-"+l, "candidate", p, false),
		armCaptured: prefixArm("captured"+pct, "captured-"+l, "candidate", p, true),
	}
}

// faultArms are plain and, p % mirrored and captured through the gateway,
// one route per broken shadow.
func faultArms(p float64, slow string) []arm {
	return []arm{
		plainArm,
		prefixArm("shadow blackholed", "fault-blackholed", "blackhole", p, true),
		prefixArm("shadow "+slow+" slow", "fault-slow", "slow", p, true),
		prefixArm("shadow refusing", "fault-refused", "refused", p, true),
	}
}

// rolloutArms are plain; a canary of 0 % (the plugin decides every
// request, the primary answers: the decision's cost); and two routes in
// the stage promoted: the candidate answering, and a candidate refusing
// connections, every request then retried on the primary.
func rolloutArms() []arm {
	return []arm{
		plainArm,
		{Name: "canary 0 %: the decision", Route: "rollout-canary", Path: "/rollout-canary/item/1", Shadow: "candidate", Stage: "canary"},
		{Name: "promoted", Route: "rollout-promoted", Path: "/rollout-promoted/item/1", Shadow: "candidate", Percent: 100, Stage: "promoted"},
		{Name: "promoted, candidate refusing: fallback", Route: "rollout-fallback", Path: "/rollout-fallback/item/1", Shadow: "refused", Percent: 100, Stage: "promoted"},
	}
}

// serveBodies are the answer sizes of the serve phase: the example API
// answers /large/{n} with {"blob": "<n bytes>"}, the same from legacy and
// candidate, so every pair is compared in full and matches.
var serveBodies = []int{1 << 10, 16 << 10}

// serveArms are the serve phase's arms: 100 % mirrored and captured, one
// route per answer size.
func serveArms() []arm {
	var arms []arm
	for _, n := range serveBodies {
		arms = append(arms, arm{Name: fmt.Sprintf("captured 100 %%, %d KiB", n>>10), Route: fmt.Sprintf("serve-%dk", n>>10),
			Path: fmt.Sprintf("/large/%d", n), Exact: true, Shadow: "candidate", Percent: 100, Capture: true})
	}
	return arms
}

// policyText is the policy of every route of arms (each once) on one
// listener.
func policyText(listener string, services map[string]string, arms []arm) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlisteners: [{name: ingress, address: %q}]\nservices:\n", listener)
	for _, name := range slices.Sorted(maps.Keys(services)) {
		fmt.Fprintf(&b, "  %s: {endpoints: [%q]}\n", name, services[name])
	}
	b.WriteString("routes:\n")
	for _, a := range distinct(arms) {
		match := "pathPrefix: /" + a.Route + "/"
		if a.Exact {
			match = "path: " + a.Path
		}
		fmt.Fprintf(&b, "  - name: %s\n    match: {%s}\n    primary: legacy\n", a.Route, match)
		if a.Shadow == "" {
			continue
		}
		if a.Stage != "" {
			fmt.Fprintf(&b, "    shadow: {service: %s, percent: %g}\n    rollout: {stage: %s, percent: 0, candidateTimeout: 2s}\n", a.Shadow, a.Percent, a.Stage)
			continue
		}
		fmt.Fprintf(&b, "    shadow: {service: %s, percent: %g, capture: %t}\n", a.Shadow, a.Percent, a.Capture)
		if a.Capture {
			b.WriteString("    compare: {ignore: [\"$.generated_at\"]}\n")
		}
	}
	return b.String()
}

// distinct is arms with each route once (its first arm).
func distinct(arms []arm) []arm {
	var out []arm
	for _, a := range arms {
		if !slices.ContainsFunc(out, func(o arm) bool { return o.Route == a.Route }) {
			out = append(out, a)
		}
	}
	return out
}
