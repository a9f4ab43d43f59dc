package xds

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/shadowlab/shadowlab/policy"
)

// A rollout's stage, share and tenants live in the routes only: moving a
// route from shadow to canary, raising its share, switching a tenant on or
// promoting it changes no listener (whose update would drain connections,
// leaving their users on the previous stage meanwhile).
func TestRolloutEditsChangeNoListener(t *testing.T) {
	data, err := os.ReadFile("testdata/rollout.policy.yaml")
	require.NoError(t, err)
	stages := []string{"stage: shadow\n      percent: 10", "stage: canary\n      percent: 10", "stage: canary\n      percent: 20", "stage: promoted\n      percent: 20"}
	var first *Resources
	for i, st := range stages {
		text := strings.Replace(string(data), "stage: canary\n      percent: 10", st, 1)
		if i < 2 { // then a tenant is switched on too
			text = strings.Replace(text, "values: [acme, globex]}\n      idempotent", "values: [acme]}\n      idempotent", 1)
		}
		p, err := policy.Parse([]byte(text), "rollout.policy.yaml")
		require.NoError(t, err, st)
		res, err := Translate(p, goldenOptions)
		require.NoError(t, err, st)
		if first == nil {
			first = res
			continue
		}
		require.Len(t, res.Listeners, len(first.Listeners))
		for i := range res.Listeners {
			require.True(t, proto.Equal(first.Listeners[i], res.Listeners[i]), "%s changed listener %s", st, res.Listeners[i].Name)
		}
		require.False(t, proto.Equal(first.Routes[0], res.Routes[0]), "%s changed no route", st)
	}
}
