package admission

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// StateSize is the length of an encoded State.
//
// Layout, little-endian: version (1 byte, 1), next (int64), seed (uint64),
// slot (uint32), head (int64), counts (17 × uint32), lasts (17 × uint32),
// retry (int64).
const StateSize = 1 + 8 + 8 + 4 + 8 + buckets*4*2 + 8

const stateVersion = 1

// maxStored bounds the times and indexes a valid encoded State holds: what
// Decide can produce from times below maxTime, with room to spare.
const maxStored = maxTime + maxTime/4

// ErrBadState is wrapped by the errors UnmarshalBinary returns.
var ErrBadState = errors.New("bad admission state")

// AppendBinary appends the StateSize-byte encoding of s to b
// (encoding.BinaryAppender). With a buffer of capacity StateSize it does
// not allocate.
func (s State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.next))
	b = binary.LittleEndian.AppendUint64(b, s.seed)
	b = binary.LittleEndian.AppendUint32(b, s.slot)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.head))
	for _, n := range s.counts {
		b = binary.LittleEndian.AppendUint32(b, n)
	}
	for _, n := range s.lasts {
		b = binary.LittleEndian.AppendUint32(b, n)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(s.retry))
	return b, nil
}

// MarshalBinary returns the StateSize-byte encoding of s
// (encoding.BinaryMarshaler).
func (s State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, StateSize))
}

// UnmarshalBinary decodes a State encoded by AppendBinary
// (encoding.BinaryUnmarshaler). An empty b decodes as the zero State (a key
// not yet in Envoy's shared data). Anything else that is not a valid
// encoding is an error wrapping ErrBadState, and s is left unchanged;
// callers should then start from the zero State.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		*s = State{}
		return nil
	}
	if len(b) != StateSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadState, len(b), StateSize)
	}
	if b[0] != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadState, b[0], stateVersion)
	}
	var v State
	b = b[1:]
	v.next = int64(binary.LittleEndian.Uint64(b))
	v.seed = binary.LittleEndian.Uint64(b[8:])
	v.slot = binary.LittleEndian.Uint32(b[16:])
	v.head = int64(binary.LittleEndian.Uint64(b[20:]))
	b = b[28:]
	for i := range v.counts {
		v.counts[i] = binary.LittleEndian.Uint32(b[4*i:])
		v.lasts[i] = binary.LittleEndian.Uint32(b[4*(buckets+i):])
	}
	v.retry = int64(binary.LittleEndian.Uint64(b[8*buckets:]))
	switch {
	case v.next < 0 || v.next > maxStored:
		return fmt.Errorf("%w: next slot %d out of range", ErrBadState, v.next)
	case v.slot >= MaxLimit:
		return fmt.Errorf("%w: slot %d out of range", ErrBadState, v.slot)
	case v.head < 0 || v.head > maxStored:
		return fmt.Errorf("%w: window head %d out of range", ErrBadState, v.head)
	case v.retry < 0 || v.retry > maxStored:
		return fmt.Errorf("%w: retry horizon %d out of range", ErrBadState, v.retry)
	}
	*s = v
	return nil
}
