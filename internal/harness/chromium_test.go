package harness

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChromiumBin(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "chromium")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, nil, 0o644))
	tests := map[string]struct {
		env, path string
		want      string
		err       string
	}{
		"CHROMIUM_BIN":                {env: exe, path: t.TempDir(), want: exe},
		"CHROMIUM_BIN missing":        {env: filepath.Join(dir, "nope"), err: "is not an executable file"},
		"CHROMIUM_BIN not executable": {env: plain, err: "is not an executable file"},
		"on PATH":                     {path: dir, want: exe},
		"nowhere":                     {path: t.TempDir(), err: "e2e/chromium.sh ensure"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("CHROMIUM_BIN", tt.env)
			t.Setenv("PATH", tt.path)
			got, err := ChromiumBin()
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
