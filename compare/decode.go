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

// MaxDecodedBytes bounds a body decoded from its Content-Encoding (a
// defence against decompression bombs). A body that decodes to more is not
// compared: Result.Skipped says so.
const MaxDecodedBytes = 64 << 20

// errTooLarge reports a body that decodes to more than the limit.
var errTooLarge = errors.New("decoded body is too large")

// decodeBody undoes the Content-Encoding enc of body. enc lists codings in
// the order they were applied, so they are undone right to left: "gzip, br"
// is brotli-decoded, then gunzipped. It returns body itself when there is
// nothing to undo. Every stage is bounded by limit.
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
			body, err = readAll(brotli.NewReader(bytes.NewReader(body)), limit)
		default:
			return nil, fmt.Errorf("content-encoding %q is not supported", c)
		}
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, fmt.Errorf("%w: %s decodes to more than %s", errTooLarge, c, byteSize(limit))
			}
			return nil, fmt.Errorf("corrupt %s stream: %v", c, err)
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
	return readAll(zr, limit)
}

// inflate reads HTTP "deflate": a zlib stream (RFC 1950) as the standard
// says, or a raw deflate stream (RFC 1951) as some servers send.
func inflate(b []byte, limit int) ([]byte, error) {
	if len(b) >= 2 && b[0]&0x0f == 8 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0 {
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err == nil {
			out, err := readAll(zr, limit)
			if err == nil || errors.Is(err, errTooLarge) {
				return out, err
			}
		}
	}
	return readAll(flate.NewReader(bytes.NewReader(b)), limit)
}

// readAll reads r to its end, failing once more than limit bytes come.
func readAll(r io.Reader, limit int) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(limit) {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}
