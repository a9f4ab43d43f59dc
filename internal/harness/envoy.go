package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/xds"
)

// EnvoyConfig starts one Envoy.
type EnvoyConfig struct {
	Bootstrap   []byte // YAML; its admin port may be 0 (DynamicBootstrap, StaticBootstrap)
	LogLevel    string // default info
	Concurrency int    // worker threads; default 2
	// CPUs pins Envoy to a CPU list as taskset -c takes it ("1", "0,2-3"),
	// inherited by all its threads; "": any CPU.
	CPUs string
}

// Envoy is a running Envoy (its own --base-id, admin on a random port).
type Envoy struct {
	*envoy.Process
	Ready time.Duration // from exec to /ready LIVE
}

// Envoy starts Envoy in a directory of its own in the lab and waits until
// its admin interface says /ready LIVE (the initial xDS fetch is done).
func (l *Lab) Envoy(ctx context.Context, cfg EnvoyConfig) (*Envoy, error) {
	bin, err := EnvoyBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(l.Dir, "envoy-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	p, err := startPinned(cfg.CPUs, func() (*envoy.Process, error) {
		return envoy.Start(ctx, envoy.Config{Bin: bin, Bootstrap: cfg.Bootstrap, Dir: dir, LogLevel: cfg.LogLevel, Concurrency: cfg.Concurrency})
	})
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(p.Logs(), 100))
	}
	e := &Envoy{Process: p, Ready: time.Since(t0)}
	l.OnStop(func() { _ = p.Stop() })
	l.keepLog(filepath.Base(dir), p.Logs)
	return e, nil
}

// startPinned runs start on an OS thread pinned to cpus, so that the
// process it forks inherits the affinity, then unpins the thread.
func startPinned(cpus string, start func() (*envoy.Process, error)) (*envoy.Process, error) {
	if cpus == "" {
		return start()
	}
	set, err := cpuSet(cpus)
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("pinning envoy to CPUs %v: %w", cpus, err)
	}
	defer func() { _ = unix.SchedSetaffinity(0, &was) }()
	return start()
}

// PinProcess pins every thread of this process to cpus (a CPU list as
// EnvoyConfig.CPUs takes it). Threads created later inherit the affinity,
// and so do the processes this one starts (Envoy excepted: Lab.Envoy pins
// it to its own CPUs).
func PinProcess(cpus string) error {
	set, err := cpuSet(cpus)
	if err != nil {
		return err
	}
	// A thread created while the first pass ran may have copied the old
	// affinity: the second pass catches it.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pinning thread %d to CPUs %v: %w", tid, cpus, err)
			}
		}
	}
	return nil
}

// AllowedCPUs is the CPU list process pid may run on, as the kernel says
// (Cpus_allowed_list of /proc/<pid>/status).
func AllowedCPUs(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Cpus_allowed_list in /proc/%d/status", pid)
}

// cpuSet parses a CPU list: CPUs and ranges of them, comma-separated.
func cpuSet(list string) (unix.CPUSet, error) {
	var set unix.CPUSet
	for part := range strings.SplitSeq(list, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.Atoi(from)
		hi := lo
		if isRange && err == nil {
			hi, err = strconv.Atoi(to)
		}
		if err != nil || lo < 0 || hi < lo || hi >= 1024 {
			return set, fmt.Errorf("CPU list %q: bad %q", list, part)
		}
		for c := lo; c <= hi; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// DynamicBootstrap is the bootstrap of an Envoy that takes everything from
// shadowlab serve's xDS port (xds.Bootstrap), admin on a random port.
func DynamicBootstrap(nodeID, xdsAddr string, delta bool) ([]byte, error) {
	b, err := xds.Bootstrap(xds.BootstrapConfig{NodeID: nodeID, XDSAddress: xdsAddr, AdminAddress: "127.0.0.1:0", Delta: delta})
	if err != nil {
		return nil, err
	}
	return xds.MessageYAML(b)
}

// Stats are Envoy's counters and gauges whose names match the RE2 filter.
func (e *Envoy) Stats(ctx context.Context, filter string) (map[string]int64, error) {
	body, code, err := e.Admin(ctx, http.MethodGet, "/stats?filter="+url.QueryEscape(filter))
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
			out[k] = n
		}
	}
	return out, nil
}
