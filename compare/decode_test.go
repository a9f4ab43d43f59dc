package compare

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	mustWrite(t, w, b)
	return buf.Bytes()
}

func zlibBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	mustWrite(t, w, b)
	return buf.Bytes()
}

func flateBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, b)
	return buf.Bytes()
}

func brBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	mustWrite(t, w, b)
	return buf.Bytes()
}

func mustWrite(t testing.TB, w io.WriteCloser, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEncodings(t *testing.T) {
	plain := []byte(`{"a":1,"b":"` + strings.Repeat("x", 300) + `"}`)
	changed := []byte(`{"a":2,"b":"` + strings.Repeat("x", 300) + `"}`)
	wantDiff := []Difference{d("$.a", Changed, "1", "2")}
	gz := gzipBytes(t, plain)
	corrupt := bytes.Clone(gz)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC-32: a checksum error at the end
	bomb := gzipBytes(t, make([]byte, MaxDecodedBytes+1))

	tests := map[string]struct {
		enc     string
		body    []byte
		want    []Difference // against changed, sent plain
		skipped string
	}{
		"identity":            {enc: "identity", body: plain, want: wantDiff},
		"gzip":                {enc: "gzip", body: gz, want: wantDiff},
		"x-gzip, upper case":  {enc: "X-GZIP", body: gz, want: wantDiff},
		"deflate (zlib)":      {enc: "deflate", body: zlibBytes(t, plain), want: wantDiff},
		"deflate (raw)":       {enc: "deflate", body: flateBytes(t, plain), want: wantDiff},
		"br":                  {enc: "br", body: brBytes(t, plain), want: wantDiff},
		"chain gzip, br":      {enc: "gzip, br", body: brBytes(t, gzipBytes(t, plain)), want: wantDiff},
		"chain with identity": {enc: "deflate,identity , gzip", body: gzipBytes(t, zlibBytes(t, plain)), want: wantDiff},
		"unknown":             {enc: "zstd", body: plain, skipped: `primary body: content-encoding "zstd" is not supported`},
		"corrupt gzip":        {enc: "gzip", body: corrupt, want: undec("does not decode as gzip: gzip: invalid checksum"), skipped: "primary body does not decode as gzip: gzip: invalid checksum"},
		"truncated gzip":      {enc: "gzip", body: gz[:len(gz)/2], want: undec("does not decode as gzip: unexpected EOF"), skipped: "primary body does not decode as gzip: unexpected EOF"},
		"not gzip":            {enc: "gzip", body: plain, want: undec("does not decode as gzip: gzip: invalid header"), skipped: "primary body does not decode as gzip: gzip: invalid header"},
		"corrupt br":          {enc: "br", body: []byte("definitely not brotli"), want: undec("does not decode as br: brotli: PADDING_1"), skipped: "primary body does not decode as br"},
		"corrupt deflate":     {enc: "deflate", body: []byte{0xff, 0xff, 0xff}, want: undec("does not decode as deflate: flate: corrupt input before offset 1"), skipped: "primary body does not decode as deflate"},
		"bomb":                {enc: "gzip", body: bomb, skipped: "primary body too large decoded: decodes (gzip) to more than 64 MiB"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := Response{Status: 200, Headers: map[string]string{"content-type": "application/json", "content-encoding": tc.enc}, Body: tc.body}
			s := jsonResp(string(changed))
			got := Compare(p, s, nil)
			if diff := cmp.Diff(tc.want, got.Differences); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
			if tc.skipped == "" && got.Skipped != "" || !strings.Contains(got.Skipped, tc.skipped) {
				t.Errorf("Skipped = %q, want %q", got.Skipped, tc.skipped)
			}
		})
	}
}

// undec is the finding of a primary body that does not decode.
func undec(why string) []Difference {
	return []Difference{{Path: "body", Pattern: "body", Kind: Undecodable, Primary: why, Shadow: "(decodes)"}}
}

func TestEncodingsBothSidesSkipped(t *testing.T) {
	p := Response{Status: 200, Headers: map[string]string{"content-encoding": "gzip"}, Body: []byte("x")}
	s := Response{Status: 200, Headers: map[string]string{"content-encoding": "compress"}, Body: []byte("y")}
	got := Compare(p, s, nil)
	want := `primary body does not decode as gzip: unexpected EOF; shadow body: content-encoding "compress" is not supported`
	wantDiff := []Difference{{Path: "body", Pattern: "body", Kind: Undecodable, Primary: "does not decode as gzip: unexpected EOF", Shadow: "(decodes)"}}
	if got.Skipped != want || !slices.Equal(got.Differences, wantDiff) {
		t.Errorf("got %+v, want Skipped %q", got, want)
	}
}

func TestEncodingsSameBytesNeedNoDecoding(t *testing.T) {
	p := Response{Status: 200, Headers: map[string]string{"content-encoding": "gzip"}, Body: []byte("not gzip")}
	got := Compare(p, p, nil)
	if got.Skipped != "" || got.Differences != nil {
		t.Errorf("got %+v, want a match", got)
	}
}

func TestEncodingsDifferentEncodingsSameContent(t *testing.T) {
	body := []byte(`{"a":[1,2,3]}`)
	p := Response{Status: 200, Headers: map[string]string{"content-type": "application/json", "content-encoding": "gzip"}, Body: gzipBytes(t, body)}
	s := Response{Status: 200, Headers: map[string]string{"content-type": "application/json", "content-encoding": "br"}, Body: brBytes(t, body)}
	if got := Compare(p, s, nil); got.Skipped != "" || got.Differences != nil {
		t.Errorf("got %+v, want a match", got)
	}
}
