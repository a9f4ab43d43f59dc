package admission

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	// States from real runs of every mode: they must encode to StateSize
	// bytes and decode to themselves.
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 4))
		c := randomConfig(r)
		var s State
		for _, at := range randomArrivals(r, c, 500) {
			s, _ = Decide(s, t0.Add(at), rand.NewPCG(seed, 5), c)
			b, err := s.MarshalBinary()
			if err != nil || len(b) != StateSize {
				t.Fatalf("MarshalBinary: %d bytes, %v; want %d", len(b), err, StateSize)
			}
			var back State
			if err := back.UnmarshalBinary(b); err != nil || back != s {
				t.Fatalf("round trip: %+v, %v; want %+v", back, err, s)
			}
		}
	}
}

func TestUnmarshalBinary(t *testing.T) {
	c := Config{Limit: 3, Window: time.Second, Mode: ModeReject}
	var s State
	for range 5 {
		s, _ = Decide(s, t0, rand.NewPCG(1, 1), c)
	}
	good, _ := s.MarshalBinary()
	with := func(off int, v uint64, size int) []byte {
		b := bytes.Clone(good)
		switch size {
		case 8:
			binary.LittleEndian.PutUint64(b[off:], v)
		case 4:
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		}
		return b
	}
	neg := uint64(1) << 63
	tests := map[string]struct {
		in      []byte
		want    State
		wantErr string
	}{
		"empty is the zero state": {in: nil, want: State{}},
		"valid":                   {in: good, want: s},
		"short":                   {in: good[:StateSize-1], wantErr: "172 bytes, want 173"},
		"long":                    {in: append(bytes.Clone(good), 0), wantErr: "174 bytes, want 173"},
		"version":                 {in: append([]byte{2}, good[1:]...), wantErr: "version 2, want 1"},
		"next negative":           {in: with(1, neg, 8), wantErr: "next slot"},
		"next far ahead":          {in: with(1, uint64(maxStored)+1, 8), wantErr: "next slot"},
		"slot too big":            {in: with(17, MaxLimit, 4), wantErr: "slot 1000000000 out of range"},
		"head negative":           {in: with(21, neg, 8), wantErr: "window head"},
		"retry negative":          {in: with(StateSize-8, neg, 8), wantErr: "retry horizon"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := State{seed: 42} // unchanged on error
			err := got.UnmarshalBinary(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadState) || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr)) {
					t.Fatalf("UnmarshalBinary: %v, want ErrBadState with %q", err, tc.wantErr)
				}
				if got != (State{seed: 42}) {
					t.Fatalf("state changed on error: %+v", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("UnmarshalBinary: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestStateSize pins the encoding: the wasm plugin stores it in Envoy's
// shared data, and changing it needs a new version byte.
func TestStateSize(t *testing.T) {
	if StateSize != 173 {
		t.Fatalf("StateSize = %d; a change of layout needs a new stateVersion", StateSize)
	}
	b, _ := State{}.MarshalBinary()
	if want := append([]byte{1}, make([]byte, StateSize-1)...); !bytes.Equal(b, want) {
		t.Fatalf("zero State encodes as %x", b)
	}
}
