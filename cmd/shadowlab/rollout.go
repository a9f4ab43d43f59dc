package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	neturl "net/url"
	"strconv"
	"strings"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
)

// apiFlags are the flags of the commands that read serve's API.
type apiFlags struct {
	server, tokenFile, caFile *string
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		server:    fs.String("server", "http://127.0.0.1:18080", "base URL of shadowlab serve's API (--api-address)"),
		tokenFile: fs.String("token-file", "", "file holding the API's read token (serve --api-read-token-file)"),
		caFile:    fs.String("ca-file", "", "CA of serve's certificate, for an https:// --server"),
	}
}

// rollouts reads /api/v1/rollout[/route] from serve.
func (a apiFlags) get(ctx context.Context, route string) ([]byte, error) {
	client, token, err := apiClient(*a.tokenFile, *a.caFile)
	if err != nil {
		return nil, err
	}
	url := strings.TrimRight(*a.server, "/") + "/api/v1/rollout"
	if route != "" {
		url += "/" + neturl.PathEscape(route)
	}
	return httpGet(ctx, client, url, token)
}

// statusCmd prints each rolled-out route's stage and gates.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("status", stderr)
	api := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print /api/v1/rollout's JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: shadowlab status [--server URL] [--json] [ROUTE]")
		return exitUsage
	}
	body, err := api.get(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab status: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		_, _ = stdout.Write(body)
		return exitOK
	}
	var routes []report.RouteRollout
	if fs.NArg() == 1 {
		var rr report.RouteRollout
		err = json.Unmarshal(body, &rr)
		routes = []report.RouteRollout{rr}
	} else {
		var rep report.RolloutReport
		err = json.Unmarshal(body, &rep)
		routes = rep.Routes
	}
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab status: reading the API's answer: %v\n", err)
		return exitFailed
	}
	if len(routes) == 0 {
		fmt.Fprintln(stdout, "no route has a rollout block")
	}
	for _, rr := range routes {
		if err := report.RenderRollout(stdout, rr); err != nil {
			fmt.Fprintf(stderr, "shadowlab status: %v\n", err)
			return exitFailed
		}
	}
	return exitOK
}

// promoteCmd moves a route one step on (shadow → canary → promoted),
// raises its canary's percentage, or switches its canary on for one more
// tenant — only through passing gates unless forced — by editing the
// policy file, which serve follows.
func promoteCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("promote", stderr)
	api := addAPIFlags(fs)
	path := fs.String("policy", "", "the policy file serve follows (required)")
	percent := fs.String("percent", "", "the canary's share of users, 0–100: from shadow, the canary's start (default the rollout's percent, else 10); in canary, the new share instead of promoting")
	tenant := fs.String("tenant", "", "switch the canary on for this tenant, if its own gates pass")
	force := fs.Bool("force", false, "promote through failing or inconclusive gates (and without serve's verdict)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: shadowlab promote --policy FILE [--percent N] [--tenant T] [--force] [--server URL] ROUTE")
		return exitUsage
	}
	route := fs.Arg(0)
	r, ok := policyRoute("promote", *path, route, stderr)
	switch {
	case !ok:
		return exitFailed
	case r.Rollout == nil:
		fmt.Fprintf(stderr, "shadowlab promote: route %q has no rollout block: add `rollout: {stage: shadow}` so that serve judges its gates, and promote once they pass\n", route)
		return exitFailed
	}
	var edit policy.RolloutEdit
	var pct *float64
	if *percent != "" {
		v, err := strconv.ParseFloat(*percent, 64)
		if err != nil || v < 0 || v > 100 {
			fmt.Fprintf(stderr, "shadowlab promote: --percent: a number from 0 to 100 (got %q)\n", *percent)
			return exitUsage
		}
		pct = &v
	}
	stage, what := r.Rollout.Stage, ""
	switch {
	case *tenant != "":
		if stage != policy.StageCanary {
			fmt.Fprintf(stderr, "shadowlab promote: --tenant switches a canary on for a tenant; route %q is in %s\n", route, stage)
			return exitFailed
		}
		edit.AddTenant, edit.Percent = *tenant, pct
		what = "canary on for tenant " + *tenant
	case stage == policy.StageShadow:
		next := policy.StageCanary
		edit.Stage = &next
		if pct == nil {
			v := r.Rollout.Percent
			if v == 0 {
				v = 10
			}
			pct = &v
		}
		edit.Percent = pct
		what = fmt.Sprintf("shadow → canary at %s %%", strconv.FormatFloat(*pct, 'g', -1, 64))
	case stage == policy.StageCanary && pct != nil:
		edit.Percent = pct
		what = fmt.Sprintf("canary %s %% → %s %%", strconv.FormatFloat(r.Rollout.Percent, 'g', -1, 64), strconv.FormatFloat(*pct, 'g', -1, 64))
	case stage == policy.StageCanary:
		next := policy.StagePromoted
		edit.Stage = &next
		what = "canary → promoted"
	default:
		fmt.Fprintf(stderr, "shadowlab promote: route %q is already promoted\n", route)
		return exitFailed
	}
	if !*force {
		if code, ok := checkGates(ctx, api, route, *tenant, stderr); !ok {
			return code
		}
	}
	return writeEdit(*path, route, edit, what, stdout, stderr)
}

// checkGates asks serve for route's verdict (or tenant's) and refuses
// anything but pass, printing the gates.
func checkGates(ctx context.Context, api apiFlags, route, tenant string, stderr io.Writer) (int, bool) {
	body, err := api.get(ctx, route)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab promote: serve's verdict is needed (or --force): %v\n", err)
		return exitFailed, false
	}
	var rr report.RouteRollout
	if err := json.Unmarshal(body, &rr); err != nil {
		fmt.Fprintf(stderr, "shadowlab promote: reading serve's verdict: %v\n", err)
		return exitFailed, false
	}
	verdict, who := rr.Verdict, "route "+strconv.Quote(route)
	if tenant != "" {
		verdict, who = report.Inconclusive, "tenant "+strconv.Quote(tenant)+" of route "+strconv.Quote(route)
		for _, t := range rr.Tenants {
			if t.Tenant == tenant {
				verdict = t.Verdict
			}
		}
	}
	if verdict == report.Pass {
		return exitOK, true
	}
	fmt.Fprintf(stderr, "shadowlab promote: refused: the gates of %s are %s (--force to promote anyway)\n", who, verdict)
	_ = report.RenderRollout(stderr, rr)
	return exitFailed, false
}

// rollbackCmd returns a route to shadow: the primary answers everyone.
func rollbackCmd(args []string, stdout, stderr io.Writer) int {
	fs := flagSet("rollback", stderr)
	path := fs.String("policy", "", "the policy file serve follows (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: shadowlab rollback --policy FILE ROUTE")
		return exitUsage
	}
	route := fs.Arg(0)
	r, ok := policyRoute("rollback", *path, route, stderr)
	switch {
	case !ok:
		return exitFailed
	case !r.Candidate():
		fmt.Fprintf(stdout, "route %q is in shadow already: the primary answers everyone\n", route)
		return exitOK
	}
	shadow := policy.StageShadow
	return writeEdit(*path, route, policy.RolloutEdit{Stage: &shadow}, string(r.Rollout.Stage)+" → shadow", stdout, stderr)
}

// policyRoute loads the policy file at path and returns its route, or says
// what is wrong.
func policyRoute(cmd, path, route string, stderr io.Writer) (*policy.Route, bool) {
	p, ok := loadPolicy(path, stderr)
	if !ok {
		return nil, false
	}
	r := p.Route(route)
	if r == nil {
		fmt.Fprintf(stderr, "shadowlab %s: %s has no route %q\n", cmd, path, route)
	}
	return r, r != nil
}

// writeEdit applies edit to the policy file at path atomically.
func writeEdit(path, route string, edit policy.RolloutEdit, what string, stdout, stderr io.Writer) int {
	if err := policy.EditFile(path, route, edit); err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "route %s: %s (%s written; serve follows it)\n", route, what, path)
	return exitOK
}
