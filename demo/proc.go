package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/shadowlab/shadowlab/envoy"
)

// proc is a child process the demo started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // file holding its stderr (and stdout after the first line)
	exited chan struct{}
}

// startProc runs bin with args; its output goes to dir/<name>.log. When
// ready is set, startProc waits for a stdout line starting with it and
// returns the rest of that line.
func startProc(ctx context.Context, dir, name, ready, bin string, args ...string) (*proc, string, error) {
	logPath := dir + "/" + name + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first && ready != "" && strings.HasPrefix(sc.Text(), ready) {
				lines <- strings.TrimSpace(strings.TrimPrefix(sc.Text(), ready))
				first = false
				continue
			}
			fmt.Fprintln(logFile, sc.Text())
		}
		_, _ = io.Copy(logFile, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	if ready == "" {
		return p, "", nil
	}
	select {
	case line := <-lines:
		return p, line, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("%s exited during start-up:\n%s", name, p.logs())
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	case <-time.After(15 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s did not say %q within 15s:\n%s", name, ready, p.logs())
	}
}

// stop sends SIGTERM and waits, killing the process group after 5 s.
func (p *proc) stop() { envoy.Terminate(p.cmd.Process, p.exited, 5*time.Second) }

func (p *proc) logs() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
