// Package harness starts what shadowlab's end-to-end tests, the plugin's
// Envoy tests and the benchmark commands run against: the real Envoy from a
// bootstrap, `shadowlab serve` in-process or as a process, the example
// services, and the binaries they need (built once per process). It also
// holds what the benchmarks measure with: /proc CPU sampling, the wait for
// a quiet machine, percentiles and the interleaving of arms.
//
// Everything a test or a command starts belongs to a Lab: one working
// directory, every log kept in it, everything stopped together, last
// first. A test's Lab stops at t.Cleanup and logs every log's tail if the
// test failed; a command's Lab (Main) stops when the command ends, and its
// error shows the logs' tails.
package harness

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shadowlab/shadowlab/envoy"
)

// Lab is the processes and servers started for one test or one run.
type Lab struct {
	Dir string // working directory: bootstraps, policies, logs

	mu    sync.Mutex
	stops []func()
	logs  []namedLog
}

type namedLog struct {
	name string
	read func() string
}

// New is a Lab in dir: stop it with Stop.
func New(dir string) *Lab { return &Lab{Dir: dir} }

// Test is a Lab in a temporary directory of t; it stops when t ends and,
// if t failed, logs the tail of every log.
func Test(t testing.TB) *Lab {
	l := New(t.TempDir())
	t.Cleanup(func() {
		l.Stop()
		if t.Failed() {
			t.Log(l.tails(200))
		}
	})
	return l
}

// OnStop registers f to run at Stop, before what was registered earlier.
func (l *Lab) OnStop(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stops = append(l.stops, f)
}

// keepLog registers a log, read when the logs are shown.
func (l *Lab) keepLog(name string, read func() string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logs = append(l.logs, namedLog{name, read})
}

// Stop stops everything in the lab, last started first.
func (l *Lab) Stop() {
	l.mu.Lock()
	stops := l.stops
	l.stops = nil
	l.mu.Unlock()
	for _, stop := range slices.Backward(stops) {
		stop()
	}
}

// tails is the last lines of every log in the lab.
func (l *Lab) tails(lines int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, lg := range l.logs {
		fmt.Fprintf(&b, "----- %s log -----\n%s\n", lg.name, tail(lg.read(), lines))
	}
	return b.String()
}

// finish stops the lab. Its directory is removed unless keep is set or err
// is not nil; then err comes back with the logs' tails and the directory
// named.
func (l *Lab) finish(err error, keep bool) error {
	l.Stop()
	switch {
	case err != nil:
		return fmt.Errorf("%w\n%s(logs kept in %s)", err, l.tails(40), l.Dir)
	case !keep:
		_ = os.RemoveAll(l.Dir)
	}
	return nil
}

// Proc is a child process whose stdout and stderr go to <dir>/<name>.log.
type Proc struct {
	cmd     *exec.Cmd
	log     string
	line    chan string // the first line of stdout; closed without one if none
	exited  chan struct{}
	waitErr error // of the process, once exited is closed
}

// name is base, or base-2, base-3... if the lab already has a log by that
// name (a second serve replica, say).
func (l *Lab) name(base string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 1
	for _, lg := range l.logs {
		if lg.name == base || strings.HasPrefix(lg.name, base+"-") {
			n++
		}
	}
	if n == 1 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, n)
}

// Start runs bin with args in the lab until Stop.
func (l *Lab) Start(name, bin string, args ...string) (*Proc, error) {
	p := &Proc{log: filepath.Join(l.Dir, name+".log"), line: make(chan string, 1), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = w, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { // stdout into the log, its first line also to FirstLine
		defer f.Close()
		defer r.Close()
		br := bufio.NewReader(r)
		first, err := br.ReadString('\n')
		_, _ = f.WriteString(first)
		if err == nil {
			p.line <- strings.TrimSuffix(first, "\n")
		}
		close(p.line)
		_, _ = io.Copy(f, br)
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	l.OnStop(p.Stop)
	l.keepLog(name, p.Logs)
	return p, nil
}

// FirstLine waits for the first line the process prints on stdout.
func (p *Proc) FirstLine(ctx context.Context) (string, error) {
	select {
	case line, ok := <-p.line:
		if !ok {
			return "", fmt.Errorf("closed its stdout without a line:\n%s", tail(p.Logs(), 40))
		}
		return line, nil
	case <-ctx.Done():
		return "", fmt.Errorf("printed nothing: %w\n%s", ctx.Err(), tail(p.Logs(), 40))
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop asks the process to exit (SIGTERM) and kills its process group
// after 10 s.
func (p *Proc) Stop() { envoy.Terminate(p.cmd.Process, p.exited, 10*time.Second) }

// Kill kills the process (SIGKILL: nothing is flushed politely) and waits
// for it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Logs is what the process has written so far.
func (p *Proc) Logs() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// FreeAddr is a loopback address with a port nobody listens on now.
//
// The kernel may hand out a port again as soon as it is closed, so two
// calls could name one port for two things that bind later (seen: an
// Envoy listener and serve's API, whose listener Envoy then refused). A
// port this process handed out is never handed out again.
func FreeAddr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		_ = l.Close()
		if _, dup := handedOut.LoadOrStore(addr, struct{}{}); !dup {
			return addr, nil
		}
	}
	return "", errors.New("no loopback port this process has not handed out already, in 100 tries")
}

// handedOut are the addresses FreeAddr returned.
var handedOut sync.Map

// WaitHTTP polls url (GET, every 20 ms) until ok accepts an answer or ctx
// ends.
func WaitHTTP(ctx context.Context, url string, ok func(*http.Response) bool) error {
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ok(resp) {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tail is the last lines of s.
func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("... (%d lines before)", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}

// tempLab is a Lab in a new temporary directory named after prefix.
func tempLab(prefix string) (*Lab, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return New(dir), nil
}

// Client is the benchmarks' HTTP/1.1 client: keep-alive connections, up to
// conns of them kept open per host (5 minutes idle), a connection given up
// after 2 s, nothing decompressed, each request bounded by timeout.
func Client(conns int, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}}
}

// Main is the main of a benchmark command. parse reads the flags (-h exits
// 0, a bad flag 2); run then runs until SIGINT or SIGTERM with a console
// logger on stderr named name, in a Lab of its own in a temporary
// directory. The directory is removed at the end unless *keep is set or run
// failed: then the error names it, with the logs' tails. An error is
// printed and exits 1.
func Main(name string, keep *bool, parse func(args []string, stderr io.Writer) error, run func(ctx context.Context, lab *Lab, log *zap.Logger) error) {
	err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.DisableStacktrace, zc.DisableCaller = true, true
	zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	log, err := zc.Build()
	var lab *Lab
	if err == nil {
		lab, err = tempLab(name + "-")
	}
	if err == nil {
		if *keep {
			log.Info("working directory kept", zap.String("dir", lab.Dir))
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = lab.finish(run(ctx, lab, log.Named(name)), *keep)
		stop()
		RemoveBuilt()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Checks collects the problems of a command line, to report them all at
// once.
type Checks []error

// Check adds a problem when ok is false.
func (c *Checks) Check(ok bool, format string, a ...any) {
	if !ok {
		*c = append(*c, fmt.Errorf(format, a...))
	}
}

// Err is every problem, or nil.
func (c Checks) Err() error { return errors.Join(c...) }
