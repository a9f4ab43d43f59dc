package demo

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
)

// The compose demo's policy is the demo's, on the compose file's ports:
// the traffic container runs the same scenes against it.
func TestComposePolicyIsTheDemoPolicy(t *testing.T) {
	want, err := RenderPolicy("127.0.0.1:10000", "127.0.0.1:18101", "127.0.0.1:18102")
	require.NoError(t, err)
	got, err := os.ReadFile("../examples/compose/policy/policy.yaml")
	require.NoError(t, err)
	assert.Equal(t, withoutHeader(string(want)), withoutHeader(string(got)),
		"examples/compose/policy/policy.yaml drifted from demo/policy.yaml.tmpl")
	_, err = policy.Parse(got, "policy.yaml")
	require.NoError(t, err)
}

// withoutHeader drops the leading comment lines, which say where each file
// is used.
func withoutHeader(s string) string {
	lines := strings.Split(s, "\n")
	for len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		lines = lines[1:]
	}
	return strings.Join(lines, "\n")
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:10000":  "127.0.0.1:10000",
		"[::]:10000":     "127.0.0.1:10000",
		":10000":         "127.0.0.1:10000",
		"10.0.0.1:80":    "10.0.0.1:80",
		"localhost:8080": "localhost:8080",
		"not an address": "not an address",
	} {
		assert.Equal(t, want, dialable(in), in)
	}
}
