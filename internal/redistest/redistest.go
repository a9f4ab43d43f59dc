// Package redistest starts a real redis-server for tests and benchmarks:
// Debian's, on a free loopback port, in memory only. It imports nothing of
// shadowlab's, so the packages the harness builds on can use it too.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0

	t    testing.TB // nil outside a test (New)
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	logs []string
}

// Start starts redis-server (no RDB, no AOF) and waits until it answers
// PING; it is killed when t ends, and its log is shown if t failed. `make
// test` installs redis-server when it is missing (examples/compose/docker.sh
// ensure); without it the test fails saying so.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			for _, p := range s.logs {
				b, _ := os.ReadFile(p)
				t.Logf("----- %s -----\n%s", filepath.Base(p), b)
			}
		}
	})
	return s
}

// New starts redis-server as Start does, outside a test: its logs go to
// dir; stop it with Stop.
func New(dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Addr: addr, URL: "redis://" + addr + "/0", dir: dir}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: `make test` installs Debian's redis-server (examples/compose/docker.sh ensure); or apt-get install redis-server")
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	log := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", len(s.logs)+1))
	s.logs = append(s.logs, log)
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	s.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--loglevel", "warning")
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := s.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(log)
			return fmt.Errorf("redis-server exited:\n%s", b)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %w", s.Addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL: its data is gone, as after a crash) and
// waits for it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a new, empty server on the same port (a test's: Start).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Ping sends PING in the Redis protocol and expects PONG.
func (s *Server) Ping(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(buf[:n])); got != "+PONG" {
		return fmt.Errorf("answered %q", got)
	}
	return nil
}
