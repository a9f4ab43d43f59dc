package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// rolloutRoute is the demo policy's route that scene 5 rolls out.
const rolloutRoute = "catalog"

// rollout is scene 5: the catalog route moves from shadow to a sticky
// canary and on to promotion with the real CLI, on its gates. The
// candidate's catalog fails one endpoint (the export, 1 request in 50):
// in canary, Envoy retries each of those on the legacy service, so users
// see no error, and the fallbacks are counted, under the gate's limit.
func (d *demo) rollout(ctx context.Context, policyPath, apiAddr string) error {
	api := "http://" + apiAddr
	d.say("  shadow: the candidate is mirrored to and compared")
	if _, err := d.catalogTraffic(ctx, 120, 0); err != nil {
		return err
	}
	rr, err := d.waitGates(ctx, api, func(rr report.RouteRollout) bool { return rr.Pairs >= 120 })
	if err != nil {
		return err
	}
	d.printRollout(rr)
	if err := d.cli(ctx, "promote", "--policy", policyPath, "--server", api, "--percent", "20", rolloutRoute); err != nil {
		return err
	}
	if err := d.waitCandidate(ctx, true); err != nil {
		return err
	}

	d.say("  canary: 20 %% of the users (by x-user), sticky; the candidate's export fails and falls back")
	sent, err := d.catalogTraffic(ctx, 500, 1)
	if err != nil {
		return err
	}
	d.say("  %d requests: %d answered by the candidate, %d by the legacy service, %d errors for the users",
		sent.total, sent.candidate, sent.total-sent.candidate, sent.errors)
	// The pairs of the users outside the canary (still mirrored) are
	// complete once the pairer's grace for a late half has passed.
	shadowed := rr.Pairs + sent.total - sent.toCandidate
	rr, err = d.waitGates(ctx, api, func(rr report.RouteRollout) bool {
		return rr.CandidateRequests >= sent.toCandidate && rr.Pairs >= shadowed
	})
	if err != nil {
		return err
	}
	d.printRollout(rr)
	if err := d.cli(ctx, "promote", "--policy", policyPath, "--server", api, rolloutRoute); err != nil {
		return err
	}
	if err := d.waitCandidate(ctx, false); err != nil {
		return err
	}
	d.say("  promoted: the candidate answers everyone; the legacy service stays behind it as the fallback")
	var problems []string
	if sent.errors > 0 {
		problems = append(problems, fmt.Sprintf("%d users got an error during the canary", sent.errors))
	}
	if rr.Pairs < shadowed {
		problems = append(problems, fmt.Sprintf("%d pairs compared, want %d: the users outside the canary were not all mirrored", rr.Pairs, shadowed))
	}
	if rr.Fallbacks[report.Reason5xx] != sent.exportsToCandidate {
		problems = append(problems, fmt.Sprintf("%d fallbacks counted for %d failed exports", rr.Fallbacks[report.Reason5xx], sent.exportsToCandidate))
	}
	return d.verdict(problems, "the canary's failures were absorbed by the fallback and counted, and the route was promoted on passing gates")
}

// catalogSent is what catalogTraffic sent and saw.
type catalogSent struct {
	total, candidate, errors        int
	toCandidate, exportsToCandidate int // the requests sent to the candidate (the fallbacks included)
}

// catalogTraffic sends n catalog requests from 200 users, one in 50 an
// export, and counts who answered.
func (d *demo) catalogTraffic(ctx context.Context, n int, round int) (catalogSent, error) {
	var s catalogSent
	for i := range n {
		user := fmt.Sprintf("user-%d", (i*7+round*13)%200)
		path := fmt.Sprintf("/catalog/items/%d", i)
		export := i%50 == 49
		if export {
			path = "/catalog/export"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.listener+path, nil)
		if err != nil {
			return s, err
		}
		req.Header.Set("x-user", user)
		resp, err := d.client.Do(req)
		if err != nil {
			return s, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.total++
		switch {
		case resp.StatusCode != http.StatusOK:
			s.errors++
		case resp.Header.Get(backend.HeaderBackend) == "candidate":
			s.candidate++
		}
		if round == 1 && canaryUser(user, 200_000) {
			s.toCandidate++
			if export {
				s.exportsToCandidate++
			}
		}
	}
	return s, nil
}

// canaryUser reports whether a user (its x-user) is in a canary of
// perMillion: the plugin's own decision (wire.InCanary).
func canaryUser(user string, perMillion uint32) bool { return wire.InCanary("user:"+user, perMillion) }

func (d *demo) printRollout(rr report.RouteRollout) {
	var out strings.Builder
	_ = report.RenderRollout(&out, rr)
	d.say("  $ shadowlab status %s", rr.Route)
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		d.say("    %s", line)
	}
}

// waitGates reads the route's gates until done says its evidence is in.
func (d *demo) waitGates(ctx context.Context, api string, done func(report.RouteRollout) bool) (report.RouteRollout, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var rr report.RouteRollout
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/rollout/"+rolloutRoute, nil)
		if err != nil {
			return rr, err
		}
		resp, err := d.client.Do(req)
		if err != nil {
			return rr, err
		}
		err = json.NewDecoder(resp.Body).Decode(&rr)
		resp.Body.Close()
		if err != nil {
			return rr, err
		}
		if done(rr) || time.Now().After(deadline) {
			return rr, nil
		}
		select {
		case <-ctx.Done():
			return rr, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cli runs shadowlab itself with args, printing the command and its output.
func (d *demo) cli(ctx context.Context, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	shown := append([]string{"shadowlab"}, args...)
	d.say("  $ %s", strings.Join(shown, " "))
	out, err := exec.CommandContext(ctx, self, args...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		d.say("    %s", line)
	}
	if err != nil {
		return fmt.Errorf("shadowlab %s: %w", args[0], err)
	}
	return nil
}

// waitCandidate waits until the candidate answers the first of the 200
// users that is (inCanary) or is not in a 20 % canary: the canary started,
// or the route was promoted.
func (d *demo) waitCandidate(ctx context.Context, inCanary bool) error {
	for i := range 200 {
		if u := fmt.Sprintf("user-%d", i); canaryUser(u, 200_000) == inCanary {
			return d.waitAnswered(ctx, u, "candidate")
		}
	}
	return fmt.Errorf("no user of 200 with canary %v at 20 %%", inCanary)
}

func (d *demo) waitAnswered(ctx context.Context, user, by string) error {
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.listener+"/catalog/items/1", nil)
		if err != nil {
			return err
		}
		req.Header.Set("x-user", user)
		resp, err := d.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get(backend.HeaderBackend) == by {
			d.say("  Envoy (not restarted) applied it in %v (file written → first answer by the %s)", time.Since(start).Round(time.Millisecond), by)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("user %s never answered by the %s", user, by)
}
