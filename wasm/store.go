package main

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/shadowlab/shadowlab/admission"
)

// Shared data is one store per vm_config.vm_id, shared by the VMs of all
// Envoy worker threads. Each budget key holds an admission.State
// (admission.StateSize bytes); one more entry per configuration, the
// registry, counts the keys created (uint32, little-endian) and lists a
// 64-bit hash of each (uint64s, little-endian). Shared data has no delete.
//
// The host has no "insert if absent": a write with cas 0 always succeeds,
// and a late one would overwrite whatever another worker decided on the
// key meanwhile. So a key is created only by the worker that added it to
// the registry with a proper compare-and-swap; the registry itself is
// created when the plugin starts, before it decides on anything.

// maxCASAttempts bounds the compare-and-swap retries. When they run out the
// request passes (fail open) and the exhaustion is counted.
const maxCASAttempts = 16

var (
	// errCASExhausted means every CAS attempt lost a race with another worker.
	errCASExhausted = errors.New("shared data: cas retries exhausted")
	// errKeysFull means the key is new and max_keys keys exist already.
	errKeysFull = errors.New("shared data: max_keys reached")
	// errCreating means another worker registered the key and has not
	// stored its state yet: decide again a moment later.
	errCreating = errors.New("shared data: key being created by another worker")
)

// getSharedFunc and setSharedFunc are proxywasm.GetSharedData and
// proxywasm.SetSharedData; tests pass fakes to force CAS races.
type (
	getSharedFunc func(key string) (value []byte, cas uint32, err error)
	setSharedFunc func(key string, value []byte, cas uint32) error
)

// store decides on requests against the states in shared data. One per
// plugin context (per VM); not safe for concurrent use, like a VM.
type store struct {
	get getSharedFunc
	set setSharedFunc
	cfg admission.Config
	rnd admission.Source

	// keysKey is the registry of this configuration's keys; maxKeys
	// bounds their number.
	keysKey string
	maxKeys uint32
	// known holds the keys this VM has seen in shared data: they need no
	// registration. At most about maxKeys entries.
	known map[string]struct{}
	// full is set once the key count reached maxKeys: it never goes down.
	full bool

	buf [admission.StateSize]byte
}

// init creates the registry if no worker has yet. Called when the plugin
// starts: two workers starting at once both write an empty registry,
// before either decides on anything.
func (s *store) init() error {
	_, _, err := s.get(s.keysKey)
	if errors.Is(err, types.ErrorStatusNotFound) {
		return s.set(s.keysKey, make([]byte, 4), 0)
	}
	return err
}

// decide makes the admission decision for one request of key at now and
// stores the key's new state with a CAS, retrying lost races. retries is
// the number of lost races. On errCreating the caller decides again a
// moment later; on any other error it admits the request.
func (s *store) decide(key string, now time.Time) (d admission.Decision, retries int, err error) {
	retries, err = s.update(key, func(st admission.State) admission.State {
		st, d = admission.Decide(st, now, s.rnd, s.cfg)
		return st
	})
	return d, retries, err
}

// release counts the release of a held request of key at now
// (admission.Release): wait is 0 if the request may go now, else how long
// until the key's window has room. On an error the caller lets it go.
func (s *store) release(key string, now time.Time) (wait time.Duration, retries int, err error) {
	retries, err = s.update(key, func(st admission.State) admission.State {
		st, wait = admission.Release(st, now, s.cfg)
		return st
	})
	return wait, retries, err
}

// update applies step to the state of key with a CAS, retrying lost races
// with a fresh read. A key not in shared data yet is created by this
// worker only if it registers it first (errCreating otherwise).
func (s *store) update(key string, step func(admission.State) admission.State) (retries int, err error) {
	for attempt := range maxCASAttempts {
		value, cas, err := s.get(key)
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			if err := s.register(key); err != nil {
				return attempt, err
			}
			// Ours to create: no other worker writes it before it exists.
			b, _ := step(admission.State{}).AppendBinary(s.buf[:0])
			return attempt, s.set(key, b, 0)
		case err != nil:
			return attempt, err
		}
		s.remember(key)
		var st admission.State
		if st.UnmarshalBinary(value) != nil {
			st = admission.State{} // foreign or corrupt value: start afresh
		}
		b, _ := step(st).AppendBinary(s.buf[:0])
		err = s.set(key, b, cas)
		if err == nil {
			return attempt, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return attempt, err
		}
	}
	return maxCASAttempts, errCASExhausted
}

func (s *store) remember(key string) {
	if _, ok := s.known[key]; !ok && uint32(len(s.known)) < s.maxKeys {
		s.known[key] = struct{}{}
	}
}

// register adds a key that is not in shared data yet to the registry, with
// a CAS: of workers that find the key missing at the same time, one
// registers it and creates it; the others get errCreating (the key is in
// the registry but not stored yet), or errKeysFull beyond maxKeys.
func (s *store) register(key string) error {
	if s.full {
		return errKeysFull
	}
	h := keyHash(key)
	for range maxCASAttempts {
		value, cas, err := s.get(s.keysKey)
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			// Not expected (init creates it): create it now.
			value, cas = nil, 0
		case err != nil:
			return err
		}
		var n uint32
		if len(value) >= 4 {
			n = binary.LittleEndian.Uint32(value)
		}
		hashes := value[min(len(value), 4):]
		for i := 0; i+8 <= len(hashes); i += 8 {
			if binary.LittleEndian.Uint64(hashes[i:]) == h {
				return errCreating
			}
		}
		if n >= s.maxKeys {
			s.full = true
			return errKeysFull
		}
		b := make([]byte, 4, 4+len(hashes)+8)
		binary.LittleEndian.PutUint32(b, n+1)
		b = append(b, hashes...)
		b = binary.LittleEndian.AppendUint64(b, h)
		err = s.set(s.keysKey, b, cas)
		if err == nil {
			s.remember(key)
			return nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return errCASExhausted
}

// keyHash is a 64-bit FNV-1a hash of a shared-data key, finalised with
// SplitMix64's mixer. Two keys with one hash would leave the second
// waiting for a creation that never comes: at maxKeys keys the chance is
// about maxKeys²/2^65.
func keyHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// rng is a SplitMix64 generator: admission.Source without math/rand's
// globals (and its size). Seeded per plugin context; not for concurrent use.
type rng struct{ s uint64 }

func (r *rng) Uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
