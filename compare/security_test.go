package compare

import (
	"bytes"
	"compress/gzip"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gzipBomb streams decoded bytes of zeros through gzip.Writer: about 1 KB
// on the wire per MiB decoded.
func gzipBomb(t testing.TB, decoded int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for n := decoded; n > 0; n -= len(zeros) {
		if _, err := w.Write(zeros[:min(n, len(zeros))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBombStopsAtTheLimit decodes a 1 000 MiB gzip bomb (about 1.3 MB on
// the wire) under a 1 MiB limit: the pair is skipped as too large decoded,
// is no difference, and comparing it allocates a few MiB, not 1 000.
func TestBombStopsAtTheLimit(t *testing.T) {
	bomb := gzipBomb(t, 1000<<20)
	rules := mustRules(t, Spec{MaxDecodedBytes: 1 << 20})
	gz := map[string]string{"content-type": "application/json", "content-encoding": "gzip"}
	primary := jsonResp(`{"a":1}`)
	shadow := Response{Status: 200, Headers: gz, Body: bomb}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := Compare(primary, shadow, rules)
	runtime.ReadMemStats(&after)

	if got.Differences != nil {
		t.Errorf("differences %+v, want none: a bomb is skipped, not a difference", got.Differences)
	}
	if want := "shadow body too large decoded: decodes (gzip) to more than 1 MiB"; got.Skipped != want {
		t.Errorf("Skipped = %q, want %q", got.Skipped, want)
	}
	// The limit plus the decompressor's window and the buffer's doublings:
	// under 16 MiB whatever the bomb decodes to.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("comparing a %d-byte bomb allocated %d MiB, want at most 16", len(bomb), alloc>>20)
	}
	t.Logf("bomb: %d bytes on the wire, 1000 MiB decoded; allocated %d KiB", len(bomb), (after.TotalAlloc-before.TotalAlloc)>>10)

	// Both sides bombs of different sizes: skipped too, per side.
	other := Response{Status: 200, Headers: gz, Body: gzipBomb(t, 3<<20)}
	if got := Compare(other, shadow, rules); got.Differences != nil || !strings.Contains(got.Skipped, "primary body too large decoded") || !strings.Contains(got.Skipped, "shadow body too large decoded") {
		t.Errorf("two bombs: got %+v", got)
	}
}

// TestUndecodableIsNeverAMatch: a corrupt or truncated body is a finding
// about its side, whatever the other side is.
func TestUndecodableIsNeverAMatch(t *testing.T) {
	body := []byte(`{"a":1,"b":"` + strings.Repeat("x", 200) + `"}`)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(gz.Bytes())
	corrupt[len(corrupt)/2] ^= 0x55
	enc := map[string]string{"content-type": "application/json", "content-encoding": "gzip"}
	good := Response{Status: 200, Headers: enc, Body: gz.Bytes()}

	tests := map[string]struct {
		shadow  []byte
		skipped string
		excerpt string
	}{
		"corrupt":   {shadow: corrupt, skipped: "shadow body does not decode as gzip: ", excerpt: "does not decode as gzip: "},
		"truncated": {shadow: gz.Bytes()[:gz.Len()-4], skipped: "shadow body does not decode as gzip: unexpected EOF", excerpt: "does not decode as gzip: unexpected EOF"},
		"empty":     {shadow: []byte{}, skipped: "shadow body does not decode as gzip: EOF", excerpt: "does not decode as gzip: EOF"},
		"not gzip":  {shadow: body, skipped: "shadow body does not decode as gzip: gzip: invalid header", excerpt: "does not decode as gzip: gzip: invalid header"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Compare(good, Response{Status: 200, Headers: enc, Body: tc.shadow}, nil)
			if len(got.Differences) != 1 || got.Differences[0].Kind != Undecodable || got.Differences[0].Path != "body" {
				t.Fatalf("differences %+v, want one undecodable body", got.Differences)
			}
			if d := got.Differences[0]; d.Primary != "(decodes)" || !strings.HasPrefix(d.Shadow, tc.excerpt) {
				t.Errorf("excerpts %q → %q, want (decodes) → %q…", d.Primary, d.Shadow, tc.excerpt)
			}
			if !strings.HasPrefix(got.Skipped, tc.skipped) {
				t.Errorf("Skipped = %q, want %q…", got.Skipped, tc.skipped)
			}
		})
	}
}

// TestDefaultRedaction: the values of DefaultRedact names never appear in
// excerpts, at any depth, in any spelling, in JSON, parameters and fields
// of text; a differing secret is still a difference.
func TestDefaultRedaction(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	text := func(s string) Response {
		return Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: []byte(s)}
	}
	tests := map[string]struct {
		rules           Spec
		primary, shadow Response
		want            []Difference
	}{
		"json at depth, every spelling": {
			primary: jsonResp(`{"a":{"b":[{"Password":"` + secret + `","api-key":"k1","apiKey":"k1","API_KEY":"k1","access_token":"t1"}]}}`),
			shadow:  jsonResp(`{"a":{"b":[{"Password":"x","api-key":"k2","apiKey":"k2","API_KEY":"k2","access_token":"t2"}]}}`),
			want: []Difference{
				d("$.a.b[0].API_KEY", Changed, Redacted, Redacted),
				d("$.a.b[0].Password", Changed, Redacted, Redacted),
				d("$.a.b[0].access_token", Changed, Redacted, Redacted),
				d("$.a.b[0].api-key", Changed, Redacted, Redacted),
				d("$.a.b[0].apiKey", Changed, Redacted, Redacted),
			},
		},
		"secrets inside an excerpted object": {
			primary: jsonResp(`{"user":{"name":"a","client_secret":"` + secret + `"}}`),
			shadow:  jsonResp(`{}`),
			want:    []Difference{d("$.user", Removed, `{"name":"a","client_secret":"[redacted]"}`, "")},
		},
		"an echoed url's query string": {
			primary: jsonResp(`{"url":"https://api.test/cb?state=1&access_token=` + secret + `&x=1"}`),
			shadow:  jsonResp(`{"url":"https://api.test/cb?state=2&access_token=` + secret + `&x=1"}`),
			want:    []Difference{d("$.url", Changed, `"https://api.test/cb?state=1&access_token=[redacted]&x=1"`, `"https://api.test/cb?state=2&access_token=[redacted]&x=1"`)},
		},
		"an echoed url, & escaped as JSON does": {
			primary: jsonResp(`{"url":"/cb?a=1\u0026token=` + secret + `"}`),
			shadow:  jsonResp(`{"url":"/cb?a=2\u0026token=` + secret + `"}`),
			want:    []Difference{d("$.url", Changed, `"/cb?a=1\u0026token=[redacted]"`, `"/cb?a=2\u0026token=[redacted]"`)},
		},
		"form body, the difference inside the secret": {
			primary: text("user=a&refresh_token=" + secret + "1&n=1"),
			shadow:  text("user=a&refresh_token=" + secret + "2&n=1"),
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 21: [redacted]&n=1", Shadow: "at byte 21: [redacted]&n=1"}},
		},
		"text fields": {
			primary: text("status: ok\nAuthorization: Bearer " + secret + "\nSession-Id: " + secret + "\n"),
			shadow:  text("status: no\nAuthorization: Bearer " + secret + "\nSession-Id: " + secret + "\n"),
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 8: ok\nAuthorization: [redacted]\nSession-Id: [redacted]\n", Shadow: "at byte 8: no\nAuthorization: [redacted]\nSession-Id: [redacted]\n"}},
		},
		"binary body with a parameter": {
			primary: Response{Status: 200, Body: []byte("\xff\x00token=" + secret + "&n=1")},
			shadow:  Response{Status: 200, Body: []byte("\xff\x00token=" + secret + "&n=2")},
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 25: " + Redacted, Shadow: "at byte 25: " + Redacted}},
		},
		"xml element": {
			primary: text("<r><cvv>" + secret + "</cvv><n>1</n></r>"),
			shadow:  text("<r><cvv>" + secret + "</cvv><n>2</n></r>"),
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 31: 1</n></r>", Shadow: "at byte 31: 2</n></r>"}},
		},
		"names that only contain a secret name are kept": {
			primary: jsonResp(`{"token_count":1,"passwordless":true}`),
			shadow:  jsonResp(`{"token_count":2,"passwordless":false}`),
			want:    []Difference{d("$.passwordless", Changed, "true", "false"), d("$.token_count", Changed, "1", "2")},
		},
		"redact adds, reveal opts out": {
			rules:   Spec{Redact: []string{"pin"}, Reveal: []string{"SSN"}},
			primary: jsonResp(`{"pin":"1234","ssn":"111-22-3333","cvv":"123"}`),
			shadow:  jsonResp(`{"pin":"4321","ssn":"111-22-4444","cvv":"321"}`),
			want:    []Difference{d("$.cvv", Changed, Redacted, Redacted), d("$.pin", Changed, Redacted, Redacted), d("$.ssn", Changed, `"111-22-3333"`, `"111-22-4444"`)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := mustRules(t, tc.rules)
			got := Compare(tc.primary, tc.shadow, r)
			if diff := cmp.Diff(tc.want, got.Differences); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
			for _, x := range got.Differences {
				if strings.Contains(x.Primary+x.Shadow, secret) {
					t.Errorf("the secret leaked: %+v", x)
				}
			}
			// Redaction changes excerpts only: revealing every default
			// name finds the same differences at the same paths.
			all := mustRules(t, Spec{Reveal: DefaultRedact})
			open := Compare(tc.primary, tc.shadow, all)
			if len(open.Differences) != len(got.Differences) {
				t.Fatalf("redaction changed the outcome: %d differences, %d revealed", len(got.Differences), len(open.Differences))
			}
			for i := range open.Differences {
				if open.Differences[i].Path != got.Differences[i].Path || open.Differences[i].Kind != got.Differences[i].Kind {
					t.Errorf("redaction changed difference %d: %+v vs %+v", i, got.Differences[i], open.Differences[i])
				}
			}
		})
	}
}

func TestRevealUnknownName(t *testing.T) {
	_, err := NewRules(Spec{Reveal: []string{"ssn", "colour"}})
	if err == nil || !strings.HasPrefix(err.Error(), `reveal[1]: "colour" is not a name redacted by default (password, passwd`) {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkCompareSecrets: 4 KiB JSON pairs whose differences are all in
// secrets — redacted members and a token in an echoed URL — to set against
// BenchmarkCompare/4KiB.
func BenchmarkCompareSecrets(b *testing.B) {
	rules := mustRules(b, Spec{})
	pairs := benchPairs(4 << 10)
	for i := range pairs {
		for s := range 2 {
			body := pairs[i][s].Body
			extra := `{"password":"pw` + string(rune('0'+s)) + `","auth":{"access_token":"t` + string(rune('0'+s)) +
				`"},"url":"/cb?state=` + string(rune('0'+s)) + `&access_token=abcdef","form":"a=1&refresh_token=r` + string(rune('0'+s)) + `"}`
			pairs[i][s].Body = append(append(append([]byte(`{"data":`), body...), `,"echo":`...), append([]byte(extra), '}')...)
		}
	}
	b.SetBytes(int64(len(pairs[0][0].Body) + len(pairs[0][1].Body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pairs[i%len(pairs)]
		if res := Compare(p[0], p[1], rules); len(res.Differences) == 0 {
			b.Fatal("no differences")
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
