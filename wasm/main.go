// Command wasm is shadowlab's proxy-wasm plugin: local admission for
// scheduled bursts. It decides on every request with package admission,
// keeping each key's admission.State in Envoy's shared data (compare-and-swap
// across worker threads), holds the requests given a delay (pause in request
// headers, resume from the tick) or answers 429 with a jittered Retry-After,
// stamps x-shadowlab-admission (and x-request-id where there is none), and
// reports the admission outcomes to the control plane (report.go).
//
// Build it as a WASI reactor with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/shadowlab.wasm ./wasm
//
// It logs only through proxywasm.Log*; zap, grpc and go-control-plane must
// never enter its build (TestNoForbiddenImports checks).
package main

import (
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
)

// main is never called in a reactor; init registers the contexts.
func main() {}

func init() {
	proxywasm.SetVMContext(&vmContext{now: time.Now})
}
