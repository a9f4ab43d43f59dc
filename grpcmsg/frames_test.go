package grpcmsg

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrames(t *testing.T) {
	a, b, c := []byte("first"), []byte(""), bytes.Repeat([]byte("third "), 100)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	bomb := gzipBomb(t)
	tests := map[string]struct {
		body     []byte
		encoding string
		limit    int
		want     [][]byte
		err      string // a part of the error; "" for none
		tooLarge bool
	}{
		"empty body":  {body: nil, want: nil},
		"one message": {body: frame(t, a, false), want: [][]byte{a}},
		"several messages, one empty": {
			body: join(frame(t, a, false), frame(t, b, false), frame(t, c, false)),
			want: [][]byte{a, b, c},
		},
		"identity named": {body: frame(t, a, false), encoding: "identity", want: [][]byte{a}},
		"gzip frames among plain ones": {
			body:     join(frame(t, a, true), frame(t, b, false), frame(t, c, true)),
			encoding: "gzip",
			want:     [][]byte{a, b, c},
		},
		"gzip in any case": {body: frame(t, c, true), encoding: " GZIP", want: [][]byte{c}},
		"compressed flag without an encoding": {
			body: join(frame(t, a, false), frame(t, a, true)),
			err:  `message 1 at byte 10: flagged compressed but grpc-encoding is ""`,
		},
		"compressed flag with identity": {
			body: frame(t, a, true), encoding: "identity",
			err: `message 0 at byte 0: flagged compressed but grpc-encoding is "identity"`,
		},
		"unknown encoding": {
			body: frame(t, a, false), encoding: "snappy",
			err: `grpc-encoding "snappy" is not supported (identity and gzip are)`,
		},
		"invalid flag": {body: append([]byte{2}, frame(t, a, false)[1:]...), err: "message 0 at byte 0: compressed flag is 2"},
		"truncated prefix": {
			body: join(frame(t, a, false), []byte{0, 0, 0}),
			err:  "message 1 at byte 10: truncated prefix: 3 of 5 bytes",
		},
		"truncated message": {
			body: join(frame(t, a, false), frame(t, c, false)[:50]),
			err:  "message 1 at byte 10: truncated: its prefix says 600 bytes, 45 remain",
		},
		"not gzip": {
			body: join([]byte{1, 0, 0, 0, 5}, a), encoding: "gzip",
			err: "message 0 at byte 0: does not gunzip",
		},
		"message over the limit": {
			body: join(frame(t, a, false), frame(t, c, false)), limit: 599,
			err: "message 1 at byte 10: 600 bytes: over the limit of 599 bytes", tooLarge: true,
		},
		"messages over the limit in total": {
			body: join(frame(t, c, false), frame(t, c, false)), limit: 1000,
			err: "message 1 at byte 605: the messages are more than 1000 bytes in total", tooLarge: true,
		},
		"gzip message over the limit": {
			body: frame(t, c, true), encoding: "gzip", limit: 599,
			err: "message 0 at byte 0: decompresses to more than 599 bytes", tooLarge: true,
		},
		"gzip messages over the limit in total": {
			body: join(frame(t, c, true), frame(t, c, true)), encoding: "gzip", limit: 1000,
			err: "the messages decompress to more than 1000 bytes in total", tooLarge: true,
		},
		"gzip bomb": {
			body: bomb, encoding: "gzip", limit: 1 << 20,
			err: "message 0 at byte 0: decompresses to more than 1 MiB", tooLarge: true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Frames(tt.body, tt.encoding, tt.limit)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.Equal(t, tt.tooLarge, errors.Is(err, ErrTooLarge))
				return
			}
			require.NoError(t, err)
			require.Equal(t, len(tt.want), len(got))
			for i := range got {
				require.Equal(t, tt.want[i], got[i], "message %d", i)
			}
		})
	}
}

// gzipBomb is a gzip-compressed message of 64 MiB of zeros, about 64 KiB
// on the wire.
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(make([]byte, headerLen))
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	require.NoError(t, err)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, err = zw.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	body := buf.Bytes()
	body[0] = 1
	binary.BigEndian.PutUint32(body[1:], uint32(len(body)-headerLen))
	return body
}

// TestFramesBombAllocation checks that a gzip bomb costs about the limit,
// not what it expands to.
func TestFramesBombAllocation(t *testing.T) {
	body := gzipBomb(t)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Frames(body, "gzip", 1<<20)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTooLarge)
	// The buffer doubles up to limit+1: under 3 × the limit in all.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(3<<20))
}

func TestIsGRPC(t *testing.T) {
	tests := map[string]bool{
		"application/grpc":                true,
		"application/grpc+proto":          true,
		"Application/GRPC":                true,
		"application/grpc; charset=utf-8": true,
		" application/grpc+proto ; x=y":   true,
		"application/grpc+json":           false,
		"application/grpc-web":            false,
		"application/grpc-web+proto":      false,
		"application/grpc-web-text":       false,
		"application/json":                false,
		"":                                false,
		"application/grpcx":               false,
		"application/grpc+protobuf":       false,
	}
	for ct, want := range tests {
		t.Run(ct, func(t *testing.T) {
			require.Equal(t, want, IsGRPC(ct))
		})
	}
}

func TestCodeName(t *testing.T) {
	names := []string{
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
		"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	}
	for i, name := range names {
		require.Equal(t, name, CodeName(strconv.Itoa(i)), "code %d", i)
	}
	tests := map[string]string{
		"0": "OK", " 14 ": "UNAVAILABLE", "16": "UNAUTHENTICATED",
		"17": "17", "-1": "-1", "00": "00", "014": "014", "abc": "abc", "": "", " x ": "x",
	}
	for in, want := range tests {
		require.Equal(t, want, CodeName(in), "CodeName(%q)", in)
	}
}
