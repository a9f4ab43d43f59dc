package grpcmsg

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultLimit bounds the messages of one body when Frames is given no
// limit (0 or less): as much as package compare decodes a body to.
const DefaultLimit = 64 << 20

// ErrTooLarge is wrapped by Frames' errors when a message, or all of them
// together, would be larger than the limit.
var ErrTooLarge = errors.New("over the limit")

// headerLen is the size of a gRPC message prefix: the compressed flag and
// the big-endian length.
const headerLen = 5

// IsGRPC reports whether contentType is gRPC's protobuf content type:
// application/grpc or application/grpc+proto, in any case, parameters
// allowed. gRPC-Web and application/grpc+json bodies are framed or encoded
// differently and are not decoded here.
func IsGRPC(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/grpc") || strings.EqualFold(mt, "application/grpc+proto")
}

// Frames splits a gRPC body into its messages. Each message is a 1-byte
// compressed flag, a 4-byte big-endian length and that many bytes.
// encoding is the response's grpc-encoding: "" or "identity" (then no
// message may be flagged compressed) or "gzip"; any other is refused, as
// its messages cannot be read.
//
// limit bounds each decompressed message and their total (0 or less:
// DefaultLimit); decompression stops at the limit, so a gzip bomb costs no
// more than it. Uncompressed messages are sub-slices of body, not copies.
// An empty body has no messages.
func Frames(body []byte, encoding string, limit int) ([][]byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	enc := strings.ToLower(strings.TrimSpace(encoding))
	switch enc {
	case "", "identity", "gzip":
	default:
		return nil, fmt.Errorf("grpc-encoding %q is not supported (identity and gzip are)", clip(encoding))
	}
	if len(body) == 0 {
		return nil, nil
	}
	var (
		msgs  [][]byte
		total int
		zr    *gzip.Reader
	)
	for off, i := 0, 0; off < len(body); i++ {
		if len(body)-off < headerLen {
			return nil, fmt.Errorf("message %d at byte %d: truncated prefix: %d of %d bytes", i, off, len(body)-off, headerLen)
		}
		flag := body[off]
		n := binary.BigEndian.Uint32(body[off+1 : off+headerLen])
		start := off + headerLen
		if uint64(n) > uint64(len(body)-start) {
			return nil, fmt.Errorf("message %d at byte %d: truncated: its prefix says %d bytes, %d remain", i, off, n, len(body)-start)
		}
		msg := body[start : start+int(n)]
		switch {
		case flag == 0:
			if len(msg) > limit {
				return nil, fmt.Errorf("message %d at byte %d: %d bytes: %w of %s", i, off, len(msg), ErrTooLarge, byteSize(limit))
			}
		case flag != 1:
			return nil, fmt.Errorf("message %d at byte %d: compressed flag is %d (not 0 or 1)", i, off, flag)
		case enc != "gzip":
			return nil, fmt.Errorf("message %d at byte %d: flagged compressed but grpc-encoding is %q", i, off, clip(encoding))
		default:
			var err error
			if zr == nil {
				zr, err = gzip.NewReader(bytes.NewReader(msg))
			} else {
				err = zr.Reset(bytes.NewReader(msg))
			}
			if err == nil {
				msg, err = readAtMost(zr, limit-total, len(msg))
			}
			switch {
			case errors.Is(err, ErrTooLarge) && total > 0:
				return nil, fmt.Errorf("message %d at byte %d: the messages decompress to more than %s in total: %w", i, off, byteSize(limit), ErrTooLarge)
			case errors.Is(err, ErrTooLarge):
				return nil, fmt.Errorf("message %d at byte %d: decompresses to more than %s: %w", i, off, byteSize(limit), ErrTooLarge)
			case err != nil:
				return nil, fmt.Errorf("message %d at byte %d: does not gunzip: %v", i, off, err)
			}
		}
		total += len(msg)
		if total > limit {
			return nil, fmt.Errorf("message %d at byte %d: the messages are more than %s in total: %w", i, off, byteSize(limit), ErrTooLarge)
		}
		msgs = append(msgs, msg)
		off = start + int(n)
	}
	return msgs, nil
}

// readAtMost reads r to its end, failing with ErrTooLarge once more than
// limit bytes come. The buffer starts at a few times the compressed size
// and doubles up to limit+1, so nothing past the limit is allocated.
func readAtMost(r io.Reader, limit, compressed int) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, max(4*compressed, 512)))
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(limit+1, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// byteSize renders a limit: "64 MiB", "16 KiB" or "1000 bytes".
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// clip shortens text from the wire before it goes into an error.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
