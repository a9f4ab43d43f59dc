package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
)

func TestRunUsage(t *testing.T) {
	tests := map[string]struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		"no flags":        {args: nil, wantCode: exitUsage, wantStderr: "-name is required"},
		"blank name":      {args: []string{"-name", "  "}, wantCode: exitUsage, wantStderr: "-name is required"},
		"unknown flag":    {args: []string{"-name", "x", "-port", "1"}, wantCode: exitUsage, wantStderr: "flag provided but not defined: -port"},
		"extra arguments": {args: []string{"-name", "x", "extra"}, wantCode: exitUsage, wantStderr: `unexpected arguments ["extra"]`},
		"help":            {args: []string{"-h"}, wantCode: exitOK, wantStderr: "usage: backend -name NAME"},
		"bad address":     {args: []string{"-name", "x", "-addr", "not an address"}, wantCode: exitFailure, wantStderr: "backend x: listen on"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			assert.Equal(t, tc.wantCode, code)
			assert.Contains(t, stderr.String(), tc.wantStderr)
			assert.Empty(t, stdout.String(), "stdout carries only the listening line")
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	codes := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"-name", "candidate"}, outW, &stderr)
		outW.Close()
		codes <- code
	}()

	lines := bufio.NewScanner(outR)
	require.True(t, lines.Scan(), "no listening line")
	addr, ok := strings.CutPrefix(lines.Text(), "listening ")
	require.True(t, ok, "line %q", lines.Text())
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)

	resp, err := http.Get("http://" + addr + "/hello")
	require.NoError(t, err)
	var reply backend.Reply
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&reply))
	resp.Body.Close()
	assert.Equal(t, "candidate", reply.Service)

	cancel()
	select {
	case code := <-codes:
		assert.Equal(t, exitOK, code, "stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	assert.False(t, lines.Scan(), "unexpected second line %q", lines.Text())
	assert.Empty(t, stderr.String())
}

// TestBinarySignals builds the command and stops it with real signals.
func TestBinarySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "backend")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	tests := map[string]struct {
		sig os.Signal
	}{
		"SIGINT":  {sig: os.Interrupt},
		"SIGTERM": {sig: syscall.SIGTERM},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-name", "legacy")
			// A file, not a buffer: the child writes it while the test reads.
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			require.NoError(t, err)
			defer stderr.Close()
			cmd.Stderr = stderr
			errText := func() string {
				b, _ := os.ReadFile(stderr.Name())
				return string(b)
			}
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())

			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan(), "no listening line; stderr: %s", errText())
			addr, ok := strings.CutPrefix(lines.Text(), "listening ")
			require.True(t, ok, "line %q", lines.Text())
			resp, err := http.Get("http://" + addr + backend.ControlPrefix + "health")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)

			require.NoError(t, cmd.Process.Signal(tc.sig))
			assert.False(t, lines.Scan(), "unexpected second line %q", lines.Text())
			require.NoError(t, cmd.Wait(), "stderr: %s", errText())
			assert.Equal(t, 0, cmd.ProcessState.ExitCode())
			assert.Empty(t, errText())
		})
	}
}
