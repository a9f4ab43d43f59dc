package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// TestDemo runs `shadowlab demo` as `make demo` does: built binaries, real
// processes, real Envoy. It must pass its own checks and exit 0.
func TestDemo(t *testing.T) {
	bin, shadowlab := demoBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The default traffic, as `make demo`: with half of it, a route mirrored at
	// 50 % for two tenants can see too few repeats of one request for the
	// noise to be learned (seen once in a fresh-clone run).
	cmd := exec.CommandContext(ctx, shadowlab, "demo")
	cmd.Env = append(cmd.Environ(), "ENVOY_BIN="+bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	t.Logf("demo took %v:\n%s", time.Since(start), stdout.String())
	assert.Contains(t, stdout.String(), "ok: the shadow saw only what the policy selects")
	assert.Contains(t, stdout.String(), "every answer came from the primary (legacy): true")
	assert.Contains(t, stdout.String(), "ok: the burst was spread under the limit, and nothing was lost")
	assert.Contains(t, stdout.String(), "ok: the canary's failures were absorbed by the fallback and counted, and the route was promoted on passing gates")
	assert.Contains(t, stdout.String(), "ok: the gRPC report holds exactly the seeded differences")
	assert.Regexp(t, `local\s+jobs\s+-\s+\d+\s+\d+\s+0\s+0\s+0\s+0`, stdout.String(), "the admission report counts the burst")
	assert.Regexp(t, `(?m)^operator page: http://127\.0\.0\.1:\d+/ui/$`, stdout.String(), "the demo ends with the page's address")
	assert.Contains(t, stdout.String(), "`shadowlab demo --keep`", "without --keep it says how to keep it up")
	assert.NotContains(t, stdout.String(), "keeping everything up", "without --keep nothing is kept up")
}

// demoBinaries builds what `shadowlab demo` runs (the example services and
// the plugin beside shadowlab) and returns Envoy's binary and shadowlab's.
func demoBinaries(t *testing.T) (envoyBin, shadowlab string) {
	t.Helper()
	envoyBin, err := harness.EnvoyBin()
	require.NoError(t, err)
	shadowlab, err = harness.BuildShadowlab()
	require.NoError(t, err)
	for _, build := range []func() (string, error){harness.BuildBackend, harness.BuildGRPCBackend, harness.BuildPlugin} {
		_, err = build() // the demo runs them from beside itself
		require.NoError(t, err)
	}
	return envoyBin, shadowlab
}
