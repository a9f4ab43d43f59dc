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
// (admission.StateSize bytes); one more entry per configuration counts the
// keys created, as a uint32 (little-endian). Shared data has no delete.

// maxCASAttempts bounds the compare-and-swap retries. When they run out the
// request passes (fail open) and the exhaustion is counted.
const maxCASAttempts = 16

var (
	// errCASExhausted means every CAS attempt lost a race with another worker.
	errCASExhausted = errors.New("shared data: cas retries exhausted")
	// errKeysFull means the key is new and max_keys keys exist already.
	errKeysFull = errors.New("shared data: max_keys reached")
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

	// keysKey is the shared entry counting the keys of this configuration;
	// maxKeys bounds it.
	keysKey string
	maxKeys uint32
	// known holds the keys this VM has seen in shared data or registered:
	// they need no registration. At most about maxKeys entries.
	known map[string]struct{}
	// full is set once the key count reached maxKeys: it never goes down.
	full bool

	buf [admission.StateSize]byte
}

// decide makes the admission decision for one request of key at now and
// stores the key's new state with a CAS, retrying lost races. retries is
// the number of lost races. On any error the caller admits the request.
//
// The first write of a key uses cas 0 (the host has no "insert if absent"),
// so two workers creating the same key at the same instant can lose one
// decision; every later write is a proper CAS.
func (s *store) decide(key string, now time.Time) (d admission.Decision, retries int, err error) {
	for attempt := range maxCASAttempts {
		value, cas, err := s.get(key)
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			value, cas = nil, 0
			if err := s.register(key); err != nil {
				return admission.Decision{}, attempt, err
			}
		case err != nil:
			return admission.Decision{}, attempt, err
		default:
			s.remember(key)
		}
		var st admission.State
		if st.UnmarshalBinary(value) != nil {
			st = admission.State{} // foreign or corrupt value: start afresh
		}
		next, d := admission.Decide(st, now, s.rnd, s.cfg)
		b, _ := next.AppendBinary(s.buf[:0])
		err = s.set(key, b, cas)
		if err == nil {
			return d, attempt, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return admission.Decision{}, attempt, err
		}
	}
	return admission.Decision{}, maxCASAttempts, errCASExhausted
}

func (s *store) remember(key string) {
	if _, ok := s.known[key]; !ok && uint32(len(s.known)) < s.maxKeys {
		s.known[key] = struct{}{}
	}
}

// register counts a key that is not in shared data yet against maxKeys.
// A key this VM registered already (its first write lost a race) is not
// counted twice. Two workers registering the same key at once count it
// twice: the bound errs on the safe side.
func (s *store) register(key string) error {
	if _, ok := s.known[key]; ok {
		return nil
	}
	if s.full {
		return errKeysFull
	}
	for range maxCASAttempts {
		value, cas, err := s.get(s.keysKey)
		var n uint32
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			cas = 0
		case err != nil:
			return err
		case len(value) == 4:
			n = binary.LittleEndian.Uint32(value)
		}
		if n >= s.maxKeys {
			s.full = true
			return errKeysFull
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], n+1)
		err = s.set(s.keysKey, b[:], cas)
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
