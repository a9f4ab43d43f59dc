package envoy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinaryHonoursENVOY_BIN(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(plain, []byte("x"), 0o644))
	exe := filepath.Join(dir, "envoy")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))

	tests := map[string]struct {
		bin     string
		wantErr bool
	}{
		"executable":     {bin: exe},
		"not executable": {bin: plain, wantErr: true},
		"directory":      {bin: dir, wantErr: true},
		"missing":        {bin: filepath.Join(dir, "nope"), wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("ENVOY_BIN", tt.bin)
			got, err := Binary()
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "ENVOY_BIN="+tt.bin)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.bin, got)
		})
	}
}

func TestVersion(t *testing.T) {
	dir := t.TempDir()
	script := func(name, out string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755))
		return p
	}
	v, err := Version(script("good", "\nenvoy  version: 9e5580933739/1.40.0/Clean/RELEASE/BoringSSL\n"))
	require.NoError(t, err)
	assert.Equal(t, "1.40.0", v)
	_, err = Version(script("odd", "hello"))
	assert.ErrorContains(t, err, "no version")
	_, err = Version(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}
