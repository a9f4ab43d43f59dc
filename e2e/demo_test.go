package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs `shadowlab demo` as `make demo` does: built binaries, real
// processes, real Envoy. It must pass its own checks and exit 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	bin, err := envoyBin()
	require.NoError(t, err)
	dir := t.TempDir()
	for pkg, name := range map[string]string{"../cmd/shadowlab": "shadowlab", "../examples/cmd/backend": "backend"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		require.NoError(t, err, "go build %s: %s", pkg, out)
	}
	plugin, err := wasmPlugin()
	require.NoError(t, err)
	code, err := os.ReadFile(plugin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shadowlab.wasm"), code, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "shadowlab"), "demo", "--requests", "300")
	cmd.Env = append(cmd.Environ(), "ENVOY_BIN="+bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	t.Logf("demo took %v:\n%s", time.Since(start), stdout.String())
	assert.Contains(t, stdout.String(), "ok: the shadow saw only what the policy selects")
	assert.Contains(t, stdout.String(), "every answer came from the primary (legacy): true")
	assert.Contains(t, stdout.String(), "ok: the burst was spread under the limit, and nothing was lost")
	assert.Regexp(t, `local\s+jobs\s+-\s+\d+\s+\d+\s+0\s+0\s+0\s+0`, stdout.String(), "the admission report counts the burst")
}
