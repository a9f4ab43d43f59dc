package compare

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewExhibit(t *testing.T) {
	rules, err := NewRules(Spec{Headers: []string{"content-type", "x-version", "set-cookie"}, Redact: []string{"ssn"}})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"a":1}`))
	_ = zw.Close()
	tests := map[string]struct {
		resp      Response
		max       int
		kind      string
		lines     []string // "depth path text", redacted lines suffixed " R"
		truncated bool
	}{
		"json with nesting, odd names and secrets": {
			resp: Response{Status: 200, Headers: map[string]string{"content-type": "application/json"},
				Body: []byte(`{"id":7,"items":[{"price":10},[]],"a b":{},"ssn":"123-45-6789","note":"token=s3cret&x=1","user":{"password":{"old":"p"}}}`)},
			max:  1 << 10,
			kind: "json",
			lines: []string{
				`0 $ {`,
				`1 $.id "id": 7,`,
				`1 $.items "items": [`,
				`2 $.items[0] {`,
				`3 $.items[0].price "price": 10`,
				`2 $.items[0] },`,
				`2 $.items[1] []`,
				`1 $.items ],`,
				`1 $['a b'] "a b": {},`,
				`1 $.ssn "ssn": "[redacted]", R`,
				`1 $.note "note": "token=[redacted]&x=1", R`,
				`1 $.user "user": {`,
				`2 $.user.password "password": "[redacted]" R`,
				`1 $.user }`,
				`0 $ }`,
			},
		},
		"gzip decoded": {
			resp: Response{Status: 200, Headers: map[string]string{"content-encoding": "gzip"}, Body: gz.Bytes()},
			max:  1 << 10, kind: "json",
			lines: []string{`0 $ {`, `1 $.a "a": 1`, `0 $ }`},
		},
		"text, secrets redacted": {
			resp: Response{Status: 500, Body: []byte("oops\r\napi_key=abc\n")},
			max:  1 << 10, kind: "text",
			lines: []string{`0 body oops`, `0 body api_key=[redacted] R`},
		},
		"binary as hex": {
			resp: Response{Status: 200, Body: []byte{0xff, 0, 1}},
			max:  1 << 10, kind: "binary",
			lines: []string{`0 body 00000000 ff 00 01`},
		},
		"empty": {resp: Response{Status: 204}, max: 1 << 10, kind: "empty", lines: []string{}},
		"truncated at the budget": {
			resp: Response{Status: 200, Body: []byte(`[1,2,3,4,5]`)},
			max:  5, kind: "json", truncated: true,
			lines: []string{`0 $ [`, `1 $[0] 1,`, `1 $[1] 2,`}, // 1+2+2 bytes
		},
		"undecodable": {
			resp: Response{Status: 200, Headers: map[string]string{"content-encoding": "gzip"}, Body: []byte("nope")},
			max:  1 << 10, kind: "undecodable", lines: []string{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := NewExhibit(tc.resp, rules, tc.max)
			if e.BodyKind != tc.kind || e.Truncated != tc.truncated || e.Status != tc.resp.Status {
				t.Errorf("kind %q truncated %v status %d", e.BodyKind, e.Truncated, e.Status)
			}
			got := []string{}
			for _, l := range e.Lines {
				s := strings.Join([]string{string(rune('0' + l.Depth)), l.Path, l.Text}, " ")
				if l.Redacted {
					s += " R"
				}
				got = append(got, s)
			}
			if d := cmp.Diff(tc.lines, got); d != "" {
				t.Errorf("lines (-want +got):\n%s", d)
			}
		})
	}
}

// Secret headers and values never reach an exhibit, whatever the body.
func TestNewExhibitRedactsHeaders(t *testing.T) {
	rules, err := NewRules(Spec{Headers: []string{"set-cookie", "x-info", "x-ssn"}, Redact: []string{"x-ssn"}})
	if err != nil {
		t.Fatal(err)
	}
	e := NewExhibit(Response{Status: 200, Headers: map[string]string{
		"set-cookie": "session=abc", "x-info": "password=hunter2; ok", "x-ssn": "123", "x-other": "not compared",
	}}, rules, 100)
	want := []ExhibitHeader{{"set-cookie", Redacted}, {"x-info", "password=[redacted]; ok"}, {"x-ssn", Redacted}}
	if d := cmp.Diff(want, e.Headers); d != "" {
		t.Errorf("headers (-want +got):\n%s", d)
	}
	b, _ := json.Marshal(e)
	for _, secret := range []string{"abc", "hunter2", "123", "not compared"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("exhibit holds %q: %s", secret, b)
		}
	}
}

// A deeply nested body's paths count toward the budget: what an exhibit
// holds stays near its bound whatever the shape.
func TestNewExhibitDeepPaths(t *testing.T) {
	body := strings.Repeat(`{"abcdefgh":`, 900) + "1" + strings.Repeat("}", 900)
	e := NewExhibit(Response{Status: 200, Body: []byte(body)}, nil, 32<<10)
	if e.BodyKind != "json" || !e.Truncated {
		t.Fatalf("kind %s truncated %v", e.BodyKind, e.Truncated)
	}
	total := 0
	for _, l := range e.Lines {
		total += len(l.Text) + len(l.Path)
	}
	if total > 32<<10+len(e.Lines)*pathAllowance+maxExhibitLine {
		t.Errorf("%d lines hold %d bytes of text and paths", len(e.Lines), total)
	}
}
