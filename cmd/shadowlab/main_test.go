package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRun(t *testing.T) {
	tests := map[string]struct {
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string
		stdoutNone bool
	}{
		"no command":      {args: nil, code: exitUsage, stderr: []string{"usage: shadowlab"}},
		"unknown command": {args: []string{"mirror"}, code: exitUsage, stderr: []string{`unknown command "mirror"`}},
		"help":            {args: []string{"help"}, code: exitOK, stdout: []string{"validate FILE"}},
		"validate ok": {
			args:   []string{"validate", "../../examples/policy.yaml"},
			code:   exitOK,
			stdout: []string{"ok: 1 listener(s), 2 service(s), 3 route(s), 2 mirrored; hash "},
		},
		"validate broken lists every problem with its line": {
			args:       []string{"validate", "../../policy/testdata/broken.policy.yaml"},
			code:       exitFailed,
			stdoutNone: true,
			stderr: []string{
				"10 problem(s)",
				"broken.policy.yaml:6: listeners[0].address: port must be between 1 and 65535 (got 99999)",
				`broken.policy.yaml:7: listeners[0].trustRequestId: field "trustRequestId" not known`,
				"broken.policy.yaml:11: services.billing-legacy.connectTimeout: invalid duration",
				`broken.policy.yaml:19: routes[0].shadow.service: unknown service "billing-v3"`,
				"broken.policy.yaml:20: routes[0].shadow.percent: must be between 0 and 100 (got 150)",
				"broken.policy.yaml:22: routes[0].compare.ignore[0]: invalid JSON path",
				`broken.policy.yaml:23: routes[1].name: duplicate route name "billing-records" (first at line 15)`,
				"broken.policy.yaml:24: routes[1].match.pathRegex: invalid RE2 regular expression",
				"broken.policy.yaml:26: routes[1].shadow.percent: required",
				`broken.policy.yaml:29: routes[1].admission.rate: invalid rate "100/fortnight"`,
			},
		},
		"validate missing file": {args: []string{"validate", "nope.yaml"}, code: exitFailed, stderr: []string{"nope.yaml"}},
		"validate two files":    {args: []string{"validate", "a", "b"}, code: exitUsage, stderr: []string{"usage: shadowlab validate FILE"}},
		"translate": {
			args:   []string{"translate", "../../examples/policy.yaml"},
			code:   exitOK,
			stdout: []string{"name: shadow/billing-records", "runtime_key: shadowlab.mirror.billing-records", "value: billing-invoices"},
		},
		"translate broken": {args: []string{"translate", "../../policy/testdata/broken.policy.yaml"}, code: exitFailed, stdoutNone: true},
		"bootstrap": {
			args:   []string{"bootstrap", "--node-id", "n1", "--xds-address", "127.0.0.1:18001", "--delta"},
			code:   exitOK,
			stdout: []string{"id: n1", "api_type: DELTA_GRPC", "port_value: 18001", "rtds_layer:"},
		},
		"bootstrap bad address": {args: []string{"bootstrap", "--xds-address", "nowhere"}, code: exitFailed, stderr: []string{"xds address"}},
		"serve without policy":  {args: []string{"serve"}, code: exitUsage, stderr: []string{"--policy FILE"}},
		"serve broken policy":   {args: []string{"serve", "--policy", "../../policy/testdata/broken.policy.yaml"}, code: exitFailed, stderr: []string{"10 problem(s)"}},
		"serve bad log level":   {args: []string{"serve", "--policy", "x", "--log-level", "loud"}, code: exitUsage, stderr: []string{"--log-level"}},
		"serve bad flag":        {args: []string{"serve", "--polcy", "x"}, code: exitUsage, stderr: []string{"flag provided but not defined"}},
		"serve address in use":  {args: []string{"serve", "--policy", "../../examples/policy.yaml", "--xds-address", "256.0.0.1:1"}, code: exitFailed},
		"demo bad flag":         {args: []string{"demo", "--requests", "many"}, code: exitUsage},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			assert.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, s := range tt.stdout {
				assert.Contains(t, stdout.String(), s)
			}
			for _, s := range tt.stderr {
				assert.Contains(t, stderr.String(), s)
			}
			if tt.stdoutNone {
				assert.Empty(t, strings.TrimSpace(stdout.String()))
			}
		})
	}
}
