package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/shadowlab/shadowlab/bench/internal/measure"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/envoy"
)

// The machine may be shared with other people's tests: what else ran during
// a phase is reported next to what was measured. Linux counts CPU time in
// USER_HZ ticks (100 a second) in /proc/stat and /proc/<pid>/stat.
const userHZ = 100

// cpuSample is the machine's busy and stolen ticks and ours (this process
// and Envoy) at one instant.
type cpuSample struct {
	at                time.Time
	busy, steal, ours uint64
}

func sampleCPU(pids ...int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	var err error
	if s.busy, s.steal, err = measure.SystemTicks(); err != nil {
		return s, err
	}
	for _, pid := range pids {
		n, err := measure.PidTicks(pid)
		if err != nil {
			return s, err
		}
		s.ours += n
	}
	return s, nil
}

// cpuUsage is the CPU used between two samples, in cores.
type cpuUsage struct {
	Ours, Others, Steal float64
}

func (s cpuSample) usage(later cpuSample) cpuUsage {
	wall := later.at.Sub(s.at).Seconds()
	if wall <= 0 {
		return cpuUsage{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / userHZ / wall }
	u := cpuUsage{Ours: cores(later.ours - s.ours), Steal: cores(later.steal - s.steal)}
	u.Others = max(cores(later.busy-s.busy)-u.Ours, 0)
	return u
}

// quietLimit is how much CPU others may take (processes and hypervisor, in
// cores) before a phase is flagged as disturbed.
const quietLimit = 0.1

func (u cpuUsage) disturbed() bool { return u.Others+u.Steal > quietLimit }

// waitQuiet waits, up to limit, for a second in which the whole machine
// (us included) used less than quietLimit cores. It reports whether it got
// one.
func waitQuiet(ctx context.Context, limit time.Duration, pids ...int) (bool, error) {
	deadline := time.Now().Add(limit)
	prev, err := sampleCPU(pids...)
	if err != nil {
		return false, err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := sampleCPU(pids...)
		if err != nil {
			return false, err
		}
		if u := prev.usage(cur); u.Ours+u.Others+u.Steal < quietLimit {
			return true, nil
		}
		prev = cur
	}
	return false, nil
}

// memKiB reads a field of /proc/<pid>/status given in kB (VmRSS, VmHWM).
func memKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strings.CutSuffix(strings.TrimSpace(v), " kB")
			return strconv.Atoi(kb)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// moduleInfo is the plugin module that was measured.
type moduleInfo struct {
	Path   string
	Bytes  int64
	SHA256 string // first 12 hex digits
	Source string // where it was built from
	Build  time.Duration
}

// buildModule builds the plugin from ./wasm of the working tree into dir,
// as `make build` does.
func buildModule(ctx context.Context, dir string) (moduleInfo, error) {
	m := moduleInfo{Path: dir + "/shadowlab.wasm"}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", m.Path, "./wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		return m, fmt.Errorf("building the plugin: %w\n%s", err, out)
	}
	m.Build = time.Since(t0)
	m.Source = "./wasm of the working tree"
	if head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Source += " at " + strings.TrimSpace(string(head))
		if st, err := exec.Command("git", "status", "--porcelain", "--", "wasm", "admission").Output(); err == nil && len(st) > 0 {
			m.Source += ", with uncommitted changes in wasm/ or admission/"
		}
	}
	return m, m.describe()
}

// describe fills in the size and hash of the module at m.Path.
func (m *moduleInfo) describe() error {
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	m.Bytes, m.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])[:12]
	return nil
}

// pluginCounters reads the plugin's admission counters from Envoy
// (wasmcustom.shadowlab_admission_<name>, summed over its VMs), by name.
func pluginCounters(ctx context.Context, p *envoy.Process) (map[string]int64, error) {
	const prefix = "wasmcustom.shadowlab_admission_"
	body, code, err := p.Admin(ctx, "GET", "/stats?filter=^"+prefix)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("envoy /stats: %d %s", code, strings.TrimSpace(body))
	}
	out := map[string]int64{}
	for line := range strings.Lines(body) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			out[strings.TrimPrefix(k, prefix)] = n
		}
	}
	return out, nil
}
