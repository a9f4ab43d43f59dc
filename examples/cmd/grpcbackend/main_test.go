package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shadowlab/shadowlab/examples/grpcbackend"
)

func TestRunUsage(t *testing.T) {
	tests := map[string]struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		"no flags":        {args: nil, wantCode: exitUsage, wantStderr: "--version is required"},
		"unknown version": {args: []string{"--version", "beta"}, wantCode: exitUsage, wantStderr: `--version must be legacy or candidate (got "beta")`},
		"unknown flag":    {args: []string{"--version", "legacy", "--port", "1"}, wantCode: exitUsage, wantStderr: "flag provided but not defined: -port"},
		"extra arguments": {args: []string{"--version", "legacy", "extra"}, wantCode: exitUsage, wantStderr: `unexpected arguments ["extra"]`},
		"negative pad":    {args: []string{"--version", "legacy", "--pad", "-1"}, wantCode: exitUsage, wantStderr: "--pad must not be negative (got -1)"},
		"cert only":       {args: []string{"--version", "legacy", "--tls-cert", "c.pem"}, wantCode: exitUsage, wantStderr: "set both --tls-cert and --tls-key"},
		"help":            {args: []string{"-h"}, wantCode: exitOK, wantStderr: "usage: grpcbackend --version"},
		"bad address":     {args: []string{"--version", "legacy", "--listen", "not an address"}, wantCode: exitFailure, wantStderr: "grpcbackend legacy: listen on"},
		"bad descriptor set path": {
			args:     []string{"--version", "legacy", "--descriptor-set-out", filepath.Join(t.TempDir(), "missing", "set.pb")},
			wantCode: exitFailure, wantStderr: "write descriptor set",
		},
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

func TestDescriptorSetOut(t *testing.T) {
	tests := map[string]struct {
		version string
		field5  protoreflect.Name
	}{
		"legacy":    {version: grpcbackend.VersionLegacy, field5: "total_cents"},
		"candidate": {version: grpcbackend.VersionCandidate, field5: "total"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "orders.pb")
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"--version", tc.version, "--descriptor-set-out", out}, &stdout, &stderr)
			require.Equal(t, exitOK, code, "stderr: %s", stderr.String())
			assert.Empty(t, stdout.String())

			b, err := os.ReadFile(out)
			require.NoError(t, err)
			set := &descriptorpb.FileDescriptorSet{}
			require.NoError(t, proto.Unmarshal(b, set))
			files, err := protodesc.NewFiles(set)
			require.NoError(t, err, "the set holds its imports")
			d, err := files.FindDescriptorByName("shop.v1.Order")
			require.NoError(t, err)
			assert.Equal(t, tc.field5, d.(protoreflect.MessageDescriptor).Fields().ByNumber(5).Name())
			_, err = files.FindDescriptorByName(grpcbackend.ServiceName)
			assert.NoError(t, err)
		})
	}
}

// serve runs the command in-process with args until the test ends, and
// returns the address of its ready line.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		code := run(ctx, args, outW, &stderr)
		outW.Close()
		exit <- code
	}()
	lines := bufio.NewScanner(outR)
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			assert.Equal(t, exitOK, code, "stderr: %s", stderr.String())
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
		assert.False(t, lines.Scan(), "unexpected second line %q", lines.Text())
	})

	require.True(t, lines.Scan(), "no ready line")
	version := args[slices.Index(args, "--version")+1]
	addr, ok := strings.CutPrefix(lines.Text(), "grpcbackend "+version+" listening on ")
	require.True(t, ok, "line %q", lines.Text())
	return addr
}

// client dials addr in plaintext.
func client(t *testing.T, addr, version string) *grpcbackend.Client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c, err := grpcbackend.NewVersionClient(conn, version)
	require.NoError(t, err)
	return c
}

func TestRunServesUntilCancelled(t *testing.T) {
	addr := serve(t, "--version", "candidate", "--listen", "127.0.0.1:0", "--pad", "300")
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)

	got, err := client(t, addr, grpcbackend.VersionCandidate).GetOrder(t.Context(), "o-2")
	require.NoError(t, err)
	var order struct {
		Status string   `json:"status"`
		Total  string   `json:"total"`
		Tags   []string `json:"tags"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &order))
	assert.Equal(t, "IN_TRANSIT", order.Status)
	assert.Equal(t, "38700", order.Total)
	require.Len(t, order.Tags, 3)
	assert.Len(t, order.Tags[2], 300)
}

func TestRunFaultFlags(t *testing.T) {
	t.Run("unavailable", func(t *testing.T) {
		addr := serve(t, "--version", "legacy", "--listen", "127.0.0.1:0", "--unavailable")
		_, err := client(t, addr, grpcbackend.VersionLegacy).GetOrder(t.Context(), "o-1")
		assert.Equal(t, codes.Unavailable, status.Code(err))
	})
	t.Run("hang", func(t *testing.T) {
		addr := serve(t, "--version", "legacy", "--listen", "127.0.0.1:0", "--hang")
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := client(t, addr, grpcbackend.VersionLegacy).GetOrder(ctx, "o-1")
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	})
}

// TestBinarySignals builds the command and stops it with real signals.
func TestBinarySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "grpcbackend")
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
			cmd := exec.CommandContext(ctx, bin, "--version", "legacy", "--listen", "127.0.0.1:0")
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
			require.True(t, lines.Scan(), "no ready line; stderr: %s", errText())
			addr, ok := strings.CutPrefix(lines.Text(), "grpcbackend legacy listening on ")
			require.True(t, ok, "line %q", lines.Text())
			got, err := client(t, addr, grpcbackend.VersionLegacy).GetOrder(t.Context(), "o-1")
			require.NoError(t, err)
			assert.Contains(t, got, `"total_cents":"2550"`)

			require.NoError(t, cmd.Process.Signal(tc.sig))
			assert.False(t, lines.Scan(), "unexpected second line %q", lines.Text())
			require.NoError(t, cmd.Wait(), "stderr: %s", errText())
			assert.Equal(t, 0, cmd.ProcessState.ExitCode())
			assert.Empty(t, errText())
		})
	}
}
