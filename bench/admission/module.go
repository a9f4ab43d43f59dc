package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// moduleInfo is the plugin module that was measured.
type moduleInfo struct {
	Path   string
	Bytes  int64
	SHA256 string // first 12 hex digits
	Source string // where it was built from
	Build  time.Duration
}

// buildModule builds the plugin from ./wasm of the working tree, as `make
// build` does.
func buildModule() (moduleInfo, error) {
	var m moduleInfo
	t0 := time.Now()
	var err error
	if m.Path, err = harness.BuildPlugin(); err != nil {
		return m, err
	}
	m.Build = time.Since(t0)
	m.Source = "./wasm of the working tree"
	if head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Source += " at " + strings.TrimSpace(string(head))
		if st, err := exec.Command("git", "status", "--porcelain", "--", "wasm", "admission").Output(); err == nil && len(st) > 0 {
			m.Source += ", with uncommitted changes in wasm/ or admission/"
		}
	}
	return m, m.describe()
}

// describe fills in the size and hash of the module at m.Path.
func (m *moduleInfo) describe() error {
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	m.Bytes, m.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])[:12]
	return nil
}
