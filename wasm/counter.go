package main

import (
	"encoding/binary"
	"errors"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// Shared data is one store per vm_config.vm_id, shared by the VMs of all
// Envoy worker threads. A window counter is stored as 12 bytes: the window
// index (int64) and the number of requests counted in it (uint32), both
// little-endian.
const counterSize = 12

// maxCASAttempts bounds the compare-and-swap retries. When they run out the
// request passes (fail open) and the exhaustion is counted.
const maxCASAttempts = 16

// errCASExhausted means every CAS attempt lost a race with another worker.
var errCASExhausted = errors.New("shared data: cas retries exhausted")

// getSharedFunc and setSharedFunc are proxywasm.GetSharedData and
// proxywasm.SetSharedData; tests pass fakes to force CAS races.
type (
	getSharedFunc func(key string) (value []byte, cas uint32, err error)
	setSharedFunc func(key string, value []byte, cas uint32) error
)

func encodeCounter(window int64, n uint32) []byte {
	b := make([]byte, counterSize)
	binary.LittleEndian.PutUint64(b, uint64(window))
	binary.LittleEndian.PutUint32(b[8:], n)
	return b
}

// decodeCounter reads a stored counter; anything malformed reads as an
// empty window -1, which no real window matches.
func decodeCounter(b []byte) (window int64, n uint32) {
	if len(b) != counterSize {
		return -1, 0
	}
	return int64(binary.LittleEndian.Uint64(b)), binary.LittleEndian.Uint32(b[8:])
}

// countInWindow adds one request to key's counter for window and returns
// its 1-based position in that window and the number of CAS retries. A
// counter left from an older window restarts at zero.
//
// The first write of a key uses cas 0 (the host has no "insert if absent"),
// so two workers creating the same key at once can lose one count; every
// later write is a proper CAS.
func countInWindow(get getSharedFunc, set setSharedFunc, key string, window int64) (n uint32, retries int, err error) {
	for attempt := range maxCASAttempts {
		value, cas, err := get(key)
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			value, cas = nil, 0
		case err != nil:
			return 0, attempt, err
		}
		w, c := decodeCounter(value)
		if w != window {
			c = 0
		}
		c++
		err = set(key, encodeCounter(window, c), cas)
		if err == nil {
			return c, attempt, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return 0, attempt, err
		}
	}
	return 0, maxCASAttempts, errCASExhausted
}
