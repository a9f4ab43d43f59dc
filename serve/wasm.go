package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shadowlab/shadowlab/ui"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// wasmModule is the admission plugin serve hands to Envoy.
type wasmModule struct {
	path   string // absolute
	code   []byte
	sha256 string // hex
}

// wasmMagic starts every WebAssembly binary module.
var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// loadWasm reads the plugin at path; with path "", it looks beside the
// executable, then in bin/ (the build output of `make build`), and returns
// nil if there is none: local admission is then refused by the translator
// with a message saying how to get the plugin.
func loadWasm(path string) (*wasmModule, error) {
	candidates := []string{path}
	if path == "" {
		candidates = nil
		if exe, err := os.Executable(); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(exe), "shadowlab.wasm"))
		}
		candidates = append(candidates, filepath.Join("bin", "shadowlab.wasm"))
	}
	for _, c := range candidates {
		code, err := os.ReadFile(c)
		if errors.Is(err, fs.ErrNotExist) && path == "" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("wasm plugin: %w", err)
		}
		if len(code) < 8 || string(code[:4]) != string(wasmMagic) {
			return nil, fmt.Errorf("wasm plugin %s: not a WebAssembly module", c)
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			return nil, fmt.Errorf("wasm plugin: %w", err)
		}
		sum := sha256.Sum256(code)
		return &wasmModule{path: abs, code: code, sha256: hex.EncodeToString(sum[:])}, nil
	}
	return nil, nil
}

// apiHandler serves the report API, the operator's page (/ui/, and / to
// it), the plugin's capture batches (wire.CapturePath) and, when there is a plugin, its code at
// xds.WasmCodePath(sha256) (immutable: the name is the content hash).
func apiHandler(api http.Handler, wasm *wasmModule, capture http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("POST "+wire.CapturePath, capture)
	mux.Handle("GET "+ui.Prefix, ui.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(ui.Prefix, http.StatusFound))
	if wasm == nil {
		return mux
	}
	modTime := time.Now()
	mux.HandleFunc("GET "+xds.WasmCodePath(wasm.sha256), func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, req, "shadowlab.wasm", modTime, bytes.NewReader(wasm.code))
	})
	return mux
}

// WasmSHA256 is the hex SHA-256 of the plugin serve would offer with
// --wasm path ("" looks where serve looks); "" when there is none.
func WasmSHA256(path string) (string, error) {
	w, err := loadWasm(path)
	if err != nil || w == nil {
		return "", err
	}
	return w.sha256, nil
}
