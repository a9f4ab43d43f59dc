package demo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shadowlab/shadowlab/examples/grpcbackend"
	"github.com/shadowlab/shadowlab/report"
)

// grpcRoute is the route scene 6 adds for the example gRPC service.
const grpcRoute = "orders-grpc"

// grpcRounds is how many times scene 6 makes each of grpcbackend.Requests.
const grpcRounds = 4

// grpcScene is scene 6: the two versions of the example gRPC service
// (bin/grpcbackend) start, a policy edit mirrors the legacy's Orders
// service to the candidate, unary and streaming calls go through Envoy,
// and the route's report must hold exactly the candidate's seeded
// differences. The legacy's messages are decoded through its server
// reflection, the candidate's with a descriptor set file.
func (d *demo) grpcScene(ctx context.Context, policyPath, apiAddr string) error {
	if d.envoy == nil {
		d.say("  (runs with `shadowlab demo` on its own services only: this deployment has no gRPC example service)")
		return nil
	}
	bin := filepath.Join(d.binDir, "grpcbackend")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("example gRPC service binary not found (run `make build`): %w", err)
	}
	addrs := map[string]string{}
	for _, version := range []string{grpcbackend.VersionLegacy, grpcbackend.VersionCandidate} {
		p, addr, err := startProc(ctx, d.dir, "grpc-"+version, "grpcbackend "+version+" listening on ", bin, "--version", version, "--listen", "127.0.0.1:0")
		if err != nil {
			return err
		}
		d.procs = append(d.procs, p)
		addrs[version] = addr
	}
	descriptors := filepath.Join(d.dir, "orders-v2.binpb")
	if out, err := exec.CommandContext(ctx, bin, "--version", grpcbackend.VersionCandidate, "--descriptor-set-out", descriptors).CombinedOutput(); err != nil {
		return fmt.Errorf("writing the candidate's descriptor set: %w\n%s", err, out)
	}
	d.say("  orders-v1 (legacy, decoded through server reflection) %s, orders-v2 (candidate, decoded with %s) %s",
		addrs[grpcbackend.VersionLegacy], filepath.Base(descriptors), addrs[grpcbackend.VersionCandidate])

	text, err := os.ReadFile(policyPath)
	if err != nil {
		return err
	}
	edited, err := withGRPCRoute(string(text), addrs[grpcbackend.VersionLegacy], addrs[grpcbackend.VersionCandidate], descriptors)
	if err != nil {
		return err
	}
	if err := writeAtomic(policyPath, []byte(edited)); err != nil {
		return err
	}
	d.say("  policy edit: services orders-v1 and orders-v2, route %s (match: {grpc: %s}), every call mirrored", grpcRoute, grpcbackend.ServiceName)

	conn, err := grpc.NewClient(d.listener, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := grpcbackend.NewClient(conn)
	if err != nil {
		return err
	}
	before, err := d.waitGRPCRoute(ctx, client, apiAddr)
	if err != nil {
		return err
	}

	failed := 0
	for range grpcRounds {
		for _, r := range grpcbackend.Requests {
			if _, err := client.Do(ctx, r); err != nil && !expectedStatus(r, err) {
				failed++
			}
		}
	}
	d.say("  %d calls (%d methods: unary and server-streaming) through Envoy, %d failed unexpectedly",
		grpcRounds*len(grpcbackend.Requests), 3, failed)

	want := grpcbackend.WantDifferences(grpcRounds)
	wantPairs := before + grpcRounds*len(grpcbackend.Requests)
	var rr report.RouteReport
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err := fetchReport(ctx, d.client, apiAddr)
		if err != nil {
			return err
		}
		rr = routeOf(rep, grpcRoute)
		if rr.Pairs >= wantPairs && maps.Equal(patternCounts(rr), want) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var out strings.Builder
	if err := report.Render(&out, report.Report{Routes: []report.RouteReport{rr}}, report.RenderOptions{MaxPaths: 10}); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		d.say("  %s", line)
	}
	var problems []string
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("%d calls failed through Envoy", failed))
	}
	if rr.Pairs < wantPairs {
		problems = append(problems, fmt.Sprintf("%d pairs reported, %d calls made", rr.Pairs, wantPairs))
	}
	have := patternCounts(rr)
	for _, key := range slices.Sorted(maps.Keys(union(have, want))) {
		if have[key] != want[key] {
			problems = append(problems, fmt.Sprintf("%s reported %d times, seeded %d", key, have[key], want[key]))
		}
	}
	return d.verdict(problems, "the gRPC report holds exactly the seeded differences: the renamed field, the changed enum value, the changed status; the reordered items are no difference under the rule")
}

// waitGRPCRoute makes calls until the new route's pairs reach the report,
// and returns how many there are then.
func (d *demo) waitGRPCRoute(ctx context.Context, client *grpcbackend.Client, apiAddr string) (int, error) {
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		_, _ = client.Do(ctx, grpcProbe)
		rep, err := fetchReport(ctx, d.client, apiAddr)
		if err != nil {
			return 0, err
		}
		if rr := routeOf(rep, grpcRoute); rr.Pairs > 0 {
			// The probes' pairs may still be arriving: let them land.
			time.Sleep(1500 * time.Millisecond)
			rep, err = fetchReport(ctx, d.client, apiAddr)
			if err != nil {
				return 0, err
			}
			rr = routeOf(rep, grpcRoute)
			d.say("  Envoy (pid %d, not restarted) mirrored and shadowlab compared the first call %v after the edit",
				d.envoy.Pid(), time.Since(start).Round(time.Millisecond))
			return rr.Pairs, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, errors.New("the gRPC route was never mirrored and compared")
}

// grpcProbe is a call both versions answer alike: its pairs add no
// difference to the report.
var grpcProbe = grpcbackend.Request{Method: "CancelOrder", Arg: "o-1"}

// expectedStatus reports whether err is the status the legacy service
// answers r with (GetOrder of an unknown order: NOT_FOUND).
func expectedStatus(r grpcbackend.Request, err error) bool {
	return r.Method == "GetOrder" && r.Arg == "o-9" && status.Code(err) == codes.NotFound
}

// withGRPCRoute adds the gRPC services and route to the demo's policy:
// the services after the candidate, the route before the catch-all.
func withGRPCRoute(policy, legacy, candidate, descriptors string) (string, error) {
	const servicesAnchor = "  candidate: {endpoints: ["
	const routesAnchor = "  # Not mirrored.\n  - name: static"
	i := strings.Index(policy, servicesAnchor)
	j := strings.Index(policy, routesAnchor)
	if i < 0 || j < 0 {
		return "", errors.New("demo policy changed: scene 6 finds no place for the gRPC service")
	}
	i += strings.IndexByte(policy[i:], '\n') + 1
	services := fmt.Sprintf(`  orders-v1: {endpoints: [%q], grpc: {reflection: true}}
  orders-v2: {endpoints: [%q], grpc: {descriptors: %q}}
`, legacy, candidate, descriptors)
	route := fmt.Sprintf(`  # Scene 6: the Orders gRPC service, every call mirrored (every gRPC call is
  # a POST: the candidate gets them marked dry-run), items compared by sku.
  - name: %s
    match: {grpc: %s}
    primary: orders-v1
    shadow: {service: orders-v2, percent: 100, unsafeMethods: true}
    compare: {unorderedArrays: [%q, %q]}
`, grpcRoute, grpcbackend.ServiceName, grpcbackend.UnorderedItems[0], grpcbackend.UnorderedItems[1])
	return policy[:i] + services + policy[i:j] + route + policy[j:], nil
}

func routeOf(rep report.Report, route string) report.RouteReport {
	for _, r := range rep.Routes {
		if r.Route == route {
			return r
		}
	}
	return report.RouteReport{}
}

// patternCounts maps "pattern kind" to count.
func patternCounts(r report.RouteReport) map[string]int {
	out := map[string]int{}
	for _, p := range r.Differences {
		out[p.Pattern+" "+string(p.Kind)] = p.Count
	}
	return out
}
