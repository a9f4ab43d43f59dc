package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/shadowlab/shadowlab/internal/harness"
)

const (
	composeDir     = "../examples/compose"
	composeProject = "shadowlab-e2e"
	prometheusAddr = "127.0.0.1:19090"
)

// TestCompose runs the compose demo as `make compose-demo` does, on the real
// Docker engine (installed with apt-get and started here when missing; a
// dockerd started here is stopped at the end, none other): images built
// offline, the deployment up, the demo's traffic and verdicts from the
// traffic container, then every dashboard panel's query against the real
// Prometheus, the alert rules loaded and checked by promtool, one alert made
// to fire by a refused policy edit, and everything taken down. Then Ctrl-C
// in the middle of `run.sh demo` must leave nothing behind.
func TestCompose(t *testing.T) {
	envoyBin, err := harness.EnvoyBin()
	require.NoError(t, err)
	t.Setenv("ENVOY_BIN", envoyBin) // images.sh takes the Envoy the tests run
	t.Setenv("COMPOSE_PROJECT_NAME", composeProject)

	step := func(name string, args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := script(t, args...)
		require.NoError(t, err, "%s:\n%s", name, out)
		t.Logf("%s: %v", name, time.Since(start).Round(100*time.Millisecond))
		return out
	}
	step("docker engine", "docker.sh", "ensure")
	t.Cleanup(func() {
		if out, err := script(t, "docker.sh", "stop"); err != nil {
			t.Errorf("docker.sh stop: %v\n%s", err, out)
		}
	})
	images := step("images built offline", "images.sh")
	t.Logf("images:\n%s", images)

	_, _ = script(t, "run.sh", "down") // what a failed earlier run left
	policyDir := t.TempDir()
	original, err := os.ReadFile(filepath.Join(composeDir, "policy", "policy.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(policyDir, "policy.yaml"), original, 0o644))
	t.Setenv("SHADOWLAB_POLICY_DIR", policyDir)
	t.Cleanup(func() {
		if out, err := script(t, "run.sh", "down"); err != nil {
			t.Errorf("run.sh down: %v\n%s", err, out)
		}
	})
	step("up", "run.sh", "up")

	out := step("traffic", "run.sh", "traffic")
	t.Logf("the traffic container printed:\n%s", out)
	for _, ok := range []string{
		"ok: the shadow saw only what the policy selects",
		"ok: the burst was spread under the limit, and nothing was lost",
		"ok: the report holds exactly the seeded differences",
		"Envoy (not restarted) applied it in",
		"ok: the canary's failures were absorbed by the fallback and counted",
	} {
		assert.Contains(t, out, ok)
	}
	assert.NotContains(t, out, "PROBLEM")
	after, err := os.ReadFile(filepath.Join(policyDir, "policy.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(original), string(after), "the demo puts the policy back after its edit")

	t.Run("dashboard queries", func(t *testing.T) { checkDashboardQueries(t) })
	t.Run("alert rules", func(t *testing.T) { checkAlertRules(t, policyDir, original) })

	step("down", "run.sh", "down")
	assertNothingLeft(t)

	t.Run("ctrl-c", func(t *testing.T) { interruptDemo(t) })
}

// script runs one of examples/compose's scripts and returns its output.
func script(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(composeDir, args[0]), args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// checkDashboardQueries runs every panel's query of the dashboard, as
// Grafana would with every route selected, against the compose run's
// Prometheus, and fails for any that returns nothing.
func checkDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(composeDir, "grafana", "dashboards", "shadowlab.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []panel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var queries []panelQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, target := range p.Targets {
				if target.Expr != "" {
					queries = append(queries, panelQuery{p.Title, target.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	require.NotEmpty(t, queries, "the dashboard has no queries")

	expand := strings.NewReplacer("$route", ".*", "${route}", ".*", "$__rate_interval", "1m", "${__rate_interval}", "1m", "$__range", "5m", "$__interval", "15s")
	// rate() needs two scrapes after the traffic: give Prometheus up to a
	// minute before calling a query empty.
	deadline := time.Now().Add(time.Minute)
	for _, q := range queries {
		expr := expand.Replace(q.expr)
		for {
			n, err := promQuery(expr)
			require.NoError(t, err, "panel %q: %s", q.title, expr)
			if n > 0 {
				t.Logf("panel %q: %d series", q.title, n)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("panel %q returned nothing: %s", q.title, expr)
				break
			}
			time.Sleep(2 * time.Second)
		}
	}
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // in collapsed rows
}

type panelQuery struct{ title, expr string }

// promQuery runs an instant query and returns how many series it gave.
func promQuery(expr string) (int, error) {
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := promGet("/api/v1/query?query="+url.QueryEscape(expr), &res); err != nil {
		return 0, err
	}
	if res.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", res.Error)
	}
	var series []json.RawMessage
	if err := json.Unmarshal(res.Data.Result, &series); err != nil {
		return 1, nil // a scalar or a string
	}
	return len(series), nil
}

func promGet(path string, into any) error {
	resp, err := http.Get("http://" + prometheusAddr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return nil
}

// checkAlertRules checks the shipped rules with promtool (from the
// Prometheus image), that Prometheus loaded every one, and that the
// refused-configuration alert fires when a broken policy is written.
func checkAlertRules(t *testing.T, policyDir string, original []byte) {
	abs, err := filepath.Abs(filepath.Join(composeDir, "prometheus"))
	require.NoError(t, err)
	for _, args := range [][]string{{"check", "rules", "/etc/prometheus/alerts.yml"}, {"check", "config", "/etc/prometheus/prometheus.yml"}} {
		cmd := exec.Command("docker", append([]string{"run", "--rm", "--network", "none", "-v", abs + ":/etc/prometheus:ro",
			"--entrypoint", "/usr/local/bin/promtool", "shadowlab/prometheus:2.42.0"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}

	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err := os.ReadFile(filepath.Join(composeDir, "prometheus", "alerts.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &file))
	shipped, refusedAlert := map[string]bool{}, ""
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			shipped[r.Alert] = true
			if strings.Contains(r.Expr, "shadowlab_policy_refused_total") {
				refusedAlert = r.Alert
			}
		}
	}
	require.NotEmpty(t, refusedAlert, "no alert on shadowlab_policy_refused_total")

	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, promGet("/api/v1/rules?type=alert", &rules))
	loaded := map[string]bool{}
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			loaded[r.Name] = true
			assert.NotEqual(t, "err", r.Health, "rule %s", r.Name)
		}
	}
	for name := range shipped {
		assert.True(t, loaded[name], "Prometheus did not load alert %s", name)
	}

	// A broken edit: serve refuses it (and keeps serving the last good
	// policy), the counter rises, the alert fires.
	broken := bytes.Replace(original, []byte("percent: 50"), []byte("percent: 150"), 1)
	require.NotEqual(t, original, broken)
	path := filepath.Join(policyDir, "policy.yaml")
	require.NoError(t, os.WriteFile(path+".tmp", broken, 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
	defer func() {
		require.NoError(t, os.WriteFile(path+".tmp", original, 0o644))
		require.NoError(t, os.Rename(path+".tmp", path))
	}()
	start := time.Now()
	for {
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		require.NoError(t, promGet("/api/v1/alerts", &alerts))
		firing := false
		for _, a := range alerts.Data.Alerts {
			firing = firing || (a.Labels["alertname"] == refusedAlert && a.State == "firing")
		}
		if firing {
			t.Logf("%s firing %v after the broken edit", refusedAlert, time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("%s did not fire within 90 s of a refused edit: %+v", refusedAlert, alerts.Data.Alerts)
		}
		time.Sleep(2 * time.Second)
	}
}

// assertNothingLeft fails if a container, network or volume of the
// project is left.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	for _, kind := range []string{"container", "network", "volume"} {
		args := []string{kind, "ls", "-q", "--filter", "label=com.docker.compose.project=" + composeProject}
		if kind == "container" {
			args = []string{"ps", "-a", "-q", "--filter", "label=com.docker.compose.project=" + composeProject}
		}
		out, err := exec.Command("docker", args...).CombinedOutput()
		require.NoError(t, err, "docker %v: %s", args, out)
		assert.Empty(t, strings.TrimSpace(string(out)), "%ss left behind", kind)
	}
}

// interruptDemo starts `run.sh demo` as `make compose-demo` does, presses
// Ctrl-C (SIGINT to its process group, as a terminal would) once the
// traffic runs, and checks that nothing is left.
func interruptDemo(t *testing.T) {
	t.Setenv("SHADOWLAB_POLICY_DIR", "") // run.sh demo makes and removes its own copy
	os.Unsetenv("SHADOWLAB_POLICY_DIR")
	copies := filepath.Join(os.TempDir(), "shadowlab-compose-*")
	before, _ := filepath.Glob(copies)
	cmd := exec.Command(filepath.Join(composeDir, "run.sh"), "demo")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	var out bytes.Buffer
	var mu sync.Mutex
	scene := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "scene 1") {
				once.Do(func() { close(scene) })
			}
		}
	}()
	select {
	case <-scene:
	case <-time.After(3 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("run.sh demo never reached scene 1:\n%s", out.String())
	}
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("run.sh demo after Ctrl-C: %v", err)
	case <-time.After(2 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("run.sh demo did not stop within 2 min of Ctrl-C")
	}
	pw.Close()
	mu.Lock()
	t.Logf("run.sh demo printed:\n%s", out.String())
	mu.Unlock()
	assertNothingLeft(t)
	after, _ := filepath.Glob(copies)
	assert.ElementsMatch(t, before, after, "run.sh demo's policy copy left behind")
}
