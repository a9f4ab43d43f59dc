package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The machine may be shared: what else ran during a phase is reported next
// to what was measured. Linux counts CPU time in UserHZ ticks in both
// /proc/stat and /proc/<pid>/stat.
const UserHZ = 100

// QuietLimit is how much CPU others may take (processes and hypervisor, in
// cores) before a phase is flagged as disturbed.
const QuietLimit = 0.1

// CPUSample is the machine's busy and stolen ticks and those of some
// processes at one instant.
type CPUSample struct {
	At          time.Time
	Busy, Steal uint64
	Procs       []uint64 // of the pids asked for, in their order
}

// SampleCPU reads the machine's ticks and those of pids.
func SampleCPU(pids ...int) (CPUSample, error) {
	s := CPUSample{At: time.Now(), Procs: make([]uint64, len(pids))}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if s.Busy, s.Steal, err = busyTicks(line); err != nil {
		return s, err
	}
	for i, pid := range pids {
		if s.Procs[i], err = PidTicks(pid); err != nil {
			return s, err
		}
	}
	return s, nil
}

// PidTicks is the CPU time (user + system) process pid has used so far.
func PidTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	n, err := processTicks(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return n, nil
}

// CPUTime is the CPU used over one span of time or the sum of several.
type CPUTime struct {
	Wall        float64 // seconds
	Busy, Steal uint64
	Procs       []uint64
}

// Until is what was used from s to later.
func (s CPUSample) Until(later CPUSample) CPUTime {
	d := CPUTime{Wall: later.At.Sub(s.At).Seconds(), Busy: later.Busy - s.Busy, Steal: later.Steal - s.Steal, Procs: make([]uint64, len(s.Procs))}
	for i := range d.Procs {
		d.Procs[i] = later.Procs[i] - s.Procs[i]
	}
	return d
}

// Usage is the CPU used from s to later, in cores.
func (s CPUSample) Usage(later CPUSample) CPUUsage { return s.Until(later).Usage() }

// Add adds o to d.
func (d *CPUTime) Add(o CPUTime) {
	d.Wall += o.Wall
	d.Busy += o.Busy
	d.Steal += o.Steal
	if d.Procs == nil {
		d.Procs = make([]uint64, len(o.Procs))
	}
	for i := range d.Procs {
		d.Procs[i] += o.Procs[i]
	}
}

// Ours is the ticks of every process sampled.
func (d CPUTime) Ours() uint64 {
	var t uint64
	for _, p := range d.Procs {
		t += p
	}
	return t
}

// Cores is ticks spread over d's wall time: 1 is one core busy throughout.
func (d CPUTime) Cores(ticks uint64) float64 {
	if d.Wall <= 0 {
		return 0
	}
	return float64(ticks) / UserHZ / d.Wall
}

// CPUUsage is the CPU used during a span, in cores.
type CPUUsage struct {
	Ours   float64 // the processes sampled
	Others float64 // every other process on the machine
	Steal  float64 // given by the hypervisor to other machines
}

// Usage is d in cores.
func (d CPUTime) Usage() CPUUsage {
	u := CPUUsage{Ours: d.Cores(d.Ours()), Steal: d.Cores(d.Steal)}
	u.Others = max(d.Cores(d.Busy)-u.Ours, 0)
	return u
}

// Disturbed tells whether others took more than QuietLimit.
func (u CPUUsage) Disturbed() bool { return u.Others+u.Steal > QuietLimit }

// WaitQuiet waits, up to limit, for a second in which the whole machine
// (pids included) used less than QuietLimit cores, and reports whether it
// got one. A machine that stays busy is only logged: the caller measures
// anyway and reports the CPU others took.
func WaitQuiet(ctx context.Context, limit time.Duration, log *zap.Logger, pids ...int) (bool, error) {
	start := time.Now()
	prev, err := SampleCPU(pids...)
	if err != nil {
		return false, err
	}
	var last CPUUsage
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := SampleCPU(pids...)
		if err != nil {
			return false, err
		}
		last = prev.Usage(cur)
		if last.Ours+last.Others+last.Steal < QuietLimit {
			if waited := time.Since(start); waited > 2*time.Second {
				log.Info("the machine is quiet", zap.Duration("waited", waited.Round(time.Second)))
			}
			return true, nil
		}
		if prev.At.Sub(start) < time.Second {
			log.Info("waiting for a quiet machine", zap.Duration("at_most", limit), zap.Float64("others_cores", last.Others), zap.Float64("steal_cores", last.Steal))
		}
		prev = cur
	}
	if limit > 0 {
		log.Warn("the machine stayed busy; measuring anyway", zap.Duration("waited", limit),
			zap.Float64("others_cores", last.Others), zap.Float64("steal_cores", last.Steal))
	}
	return false, nil
}

// MemKiB reads a field of /proc/<pid>/status given in kB (VmRSS, VmHWM).
func MemKiB(pid int, field string) (int, error) {
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

// busyTicks reads /proc/stat's aggregate "cpu" line: busy is user, nice,
// system, irq and softirq (guest time is already in user); steal is steal.
func busyTicks(line string) (busy, steal uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			steal = n
		default:
			busy += n
		}
	}
	return busy, steal, nil
}

// processTicks is utime + stime of a /proc/<pid>/stat line. The command
// name, in parentheses, may hold spaces and parentheses: fields are counted
// after the last ')'.
func processTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// CPUHog runs n busy loops, each its own process at normal priority, so
// that they compete with Envoy, serve and the services as any other load
// would (a saturated machine), until stop is called or for at most limit
// (whole seconds, at least one).
func CPUHog(n int, limit time.Duration) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			if c.Process != nil {
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				_ = c.Wait()
				c.Process = nil
			}
		}
	}
	secs := strconv.Itoa(max(int(limit.Seconds()), 1))
	for range n {
		c := exec.Command("timeout", secs, "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("cpu hog: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}
