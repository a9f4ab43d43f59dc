package compare

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
)

// MaxDecodedBytes bounds a body decoded from its Content-Encoding when the
// rules name no smaller bound (Spec.MaxDecodedBytes): a defence against
// decompression bombs. A body that decodes to more is not compared:
// Result.Skipped says so.
const MaxDecodedBytes = 64 << 20

// errTooLarge reports a body that decodes to more than the limit. Decoding
// stops at the limit: nothing past it is allocated.
var errTooLarge = errors.New("too large decoded")

// errUndecodable reports a body that does not decode as its
// Content-Encoding says (a corrupt or truncated stream): a finding about
// the side that sent it.
var errUndecodable = errors.New("does not decode")

// errUnsupported reports a Content-Encoding shadowlab does not decode.
var errUnsupported = errors.New("not supported")

// decodeBody undoes the Content-Encoding enc of body. enc lists codings in
// the order they were applied, so they are undone right to left: "gzip, br"
// is brotli-decoded, then gunzipped. It returns body itself when there is
// nothing to undo. Every stage is bounded by limit and stops reading once
// past it. Its errors wrap errTooLarge, errUndecodable or errUnsupported.
func decodeBody(body []byte, enc string, limit int) ([]byte, error) {
	if enc == "" || enc == "identity" {
		if len(body) > limit {
			return nil, fmt.Errorf("%w: %d bytes, more than %s", errTooLarge, len(body), byteSize(limit))
		}
		return body, nil
	}
	codings := strings.Split(enc, ",")
	for i := len(codings) - 1; i >= 0; i-- {
		c := strings.ToLower(strings.TrimSpace(codings[i]))
		var err error
		switch c {
		case "", "identity":
			continue
		case "gzip", "x-gzip":
			body, err = gunzip(body, limit)
		case "deflate":
			body, err = inflate(body, limit)
		case "br":
			body, err = readAll(brotli.NewReader(bytes.NewReader(body)), limit, len(body))
		default:
			return nil, fmt.Errorf("content-encoding %q is %w", clipText(c), errUnsupported)
		}
		switch {
		case errors.Is(err, errTooLarge):
			return nil, fmt.Errorf("%w: decodes (%s) to more than %s", errTooLarge, c, byteSize(limit))
		case err != nil:
			return nil, fmt.Errorf("%w as %s: %v", errUndecodable, c, err)
		}
	}
	if len(body) > limit {
		return nil, fmt.Errorf("%w: %d bytes, more than %s", errTooLarge, len(body), byteSize(limit))
	}
	return body, nil
}

// byteSize renders a limit: "64 MiB", "64 KiB" or "1000 bytes".
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func gunzip(b []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return readAll(zr, limit, len(b))
}

// inflate reads HTTP "deflate": a zlib stream (RFC 1950) as the standard
// says, or a raw deflate stream (RFC 1951) as some servers send.
func inflate(b []byte, limit int) ([]byte, error) {
	if len(b) >= 2 && b[0]&0x0f == 8 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0 {
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err == nil {
			out, err := readAll(zr, limit, len(b))
			if err == nil || errors.Is(err, errTooLarge) {
				return out, err
			}
		}
	}
	return readAll(flate.NewReader(bytes.NewReader(b)), limit, len(b))
}

// readAll reads r to its end, failing with errTooLarge once more than
// limit bytes come. It never holds more than limit+1 bytes: the buffer
// starts near a few times the encoded size and doubles, capped at limit+1,
// so a bomb costs at most the limit however much it would expand to.
func readAll(r io.Reader, limit, encoded int) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, max(4*encoded, 512)))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, errTooLarge
			}
			grown := make([]byte, len(buf), min(limit+1, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, errTooLarge
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}
