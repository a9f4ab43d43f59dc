package compare

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Exhibit is one response as the operator's page shows it beside the
// other: its status, the compared headers and the body, decoded,
// pretty-printed one value per line with each line's JSON path, and with
// every redacted value replaced by Redacted. It holds nothing a Difference
// excerpt would not show.
type Exhibit struct {
	Status int `json:"status"`
	// GRPCStatus is a gRPC answer's status by name; "" for anything else.
	GRPCStatus string          `json:"grpc_status,omitempty"`
	Headers    []ExhibitHeader `json:"headers"` // the compared headers the response has, in Rules.Headers order
	// BodyKind is "json", "text", "binary", "empty", or "undecodable" (the
	// body does not decode as its Content-Encoding says; Note says why).
	BodyKind  string        `json:"body_kind"`
	BodyBytes int           `json:"body_bytes"` // decoded size
	Truncated bool          `json:"truncated"`  // Lines stop before the body's end
	Lines     []ExhibitLine `json:"lines"`
	Note      string        `json:"note,omitempty"`
}

// ExhibitHeader is one compared header of an Exhibit.
type ExhibitHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ExhibitLine is one line of an Exhibit's body.
type ExhibitLine struct {
	Depth int    `json:"depth"` // indentation level
	Text  string `json:"text"`  // without indentation
	// Path is the JSON path of the value the line shows, in the syntax of
	// Difference.Path ("$", "$.items[0].price", "$['a b']"); a container's
	// closing line carries the container's. Text and binary lines: "body".
	Path     string `json:"path"`
	Redacted bool   `json:"redacted,omitempty"` // a value on the line was replaced by Redacted
}

// Exhibit limits: a header value is cut at maxExhibitHeader bytes, a text
// line at maxExhibitLine.
const (
	maxExhibitHeader = 1024
	maxExhibitLine   = 4096
	hexPerLine       = 16
)

// NewExhibit renders resp under rules, its body lines stopping once their
// text passes maxBytes (Truncated then says so).
func NewExhibit(resp Response, rules *Rules, maxBytes int) Exhibit {
	if rules == nil {
		rules = &Rules{}
	}
	e := Exhibit{Status: resp.Status, GRPCStatus: resp.GRPCStatus, Headers: []ExhibitHeader{}, Lines: []ExhibitLine{}}
	for _, h := range rules.headers {
		v, ok := resp.Headers[h]
		if !ok {
			continue
		}
		if len(v) > maxExhibitHeader {
			v = v[:maxExhibitHeader]
		}
		e.Headers = append(e.Headers, ExhibitHeader{Name: h, Value: headerExcerptFull(rules, h, v)})
	}
	body, err := decodeBody(resp.Body, resp.Headers["content-encoding"], rules.decodeLimit())
	if err != nil {
		e.BodyKind, e.BodyBytes, e.Note = "undecodable", len(resp.Body), err.Error()
		return e
	}
	e.BodyBytes = len(body)
	pr := printer{r: rules, max: maxBytes, e: &e}
	var d doc
	switch {
	case len(body) == 0:
		e.BodyKind = "empty"
	case d.parseBody(body, resp.Headers["content-type"]):
		e.BodyKind = "json"
		pr.d = &d
		pr.value(0, []byte{'$'}, 0, nil, false, false)
	case utf8.Valid(body):
		e.BodyKind = "text"
		pr.text(body)
	default:
		e.BodyKind = "binary"
		pr.binary(body)
	}
	return e
}

// headerExcerptFull is a header's value with secrets redacted, uncut.
func headerExcerptFull(r *Rules, name, v string) string {
	if r.redactsHeader(name) {
		return Redacted
	}
	b, _ := redactAll(r, []byte(v))
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// redactAll replaces every redacted value in text (see scanSecrets); true
// when it replaced any.
func redactAll(r *Rules, text []byte) ([]byte, bool) {
	var out []byte
	at := 0
	scanSecrets(r, text, func(vs, ve int) bool {
		if ve <= at {
			return true
		}
		out = append(out, text[at:max(vs, at)]...)
		out = append(out, Redacted...)
		at = ve
		return true
	})
	if out == nil {
		return text, false
	}
	return append(out, text[at:]...), true
}

// printer writes an Exhibit's lines.
type printer struct {
	r    *Rules
	d    *doc
	e    *Exhibit
	max  int
	size int
	keyB []byte
}

// add appends a line; false once the budget is spent (Truncated is set).
func (p *printer) add(depth int, text []byte, path []byte, redacted bool) bool {
	if p.e.Truncated {
		return false
	}
	if p.size+len(text) > p.max && len(p.e.Lines) > 0 {
		p.e.Truncated = true
		return false
	}
	if len(text) > maxExhibitLine {
		text = append(text[:maxExhibitLine:maxExhibitLine], ellipsis...)
	}
	if r, ok := redactAll(p.r, text); ok {
		text, redacted = r, true
	}
	p.size += len(text)
	p.e.Lines = append(p.e.Lines, ExhibitLine{Depth: depth, Text: strings.ToValidUTF8(string(text), "\uFFFD"), Path: string(path), Redacted: redacted})
	return true
}

// value prints node t at path: prefix is its member name as written
// ("\"price\": "), comma whether a sibling follows.
func (p *printer) value(t uint32, path []byte, depth int, prefix []byte, comma, redacted bool) bool {
	d := p.d
	n := &d.tape[t]
	line := append([]byte{}, prefix...)
	if redacted {
		line = append(line, '"')
		line = append(line, Redacted...)
		line = append(line, '"')
		if comma {
			line = append(line, ',')
		}
		return p.add(depth, line, path, true)
	}
	switch n.kind {
	case kindObject, kindArray:
		open, closing := byte('{'), byte('}')
		if n.kind == kindArray {
			open, closing = '[', ']'
		}
		if n.n == 0 {
			line = append(line, open, closing)
			if comma {
				line = append(line, ',')
			}
			return p.add(depth, line, path, false)
		}
		if !p.add(depth, append(line, open), path, false) {
			return false
		}
		k := t + 1
		for i := range n.n {
			var child, pre []byte
			red := false
			next := k
			if n.kind == kindObject {
				name := key(d, k, &p.keyB)
				red = p.r.redacts(name)
				child = appendField(append([]byte{}, path...), name)
				pre = append(append([]byte{}, d.raw(k)...), ':', ' ')
				k++ // the value
				next = d.tape[k].next
			} else {
				child = append(append(append([]byte{}, path...), '['), strconv.Itoa(int(i))...)
				child = append(child, ']')
				next = d.tape[k].next
			}
			if !p.value(k, child, depth+1, pre, i+1 < n.n, red) {
				return false
			}
			k = next
		}
		end := []byte{closing}
		if comma {
			end = append(end, ',')
		}
		return p.add(depth, end, path, false)
	}
	line = append(line, d.src[n.start:n.end]...)
	if comma {
		line = append(line, ',')
	}
	return p.add(depth, line, path, false)
}

// text prints a text body line by line.
func (p *printer) text(body []byte) {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if !p.add(0, bytes.TrimSuffix(line, []byte{'\r'}), []byte("body"), false) {
			return
		}
	}
}

// binary prints a body as hex, hexPerLine bytes a line; a body holding a
// redacted value is not shown (its bytes in hex are still the secret).
func (p *printer) binary(body []byte) {
	if hasSecretText(p.r, body) {
		p.add(0, []byte(Redacted), []byte("body"), true)
		return
	}
	for off := 0; off < len(body); off += hexPerLine {
		row := body[off:min(off+hexPerLine, len(body))]
		line := []byte(strconv.FormatInt(int64(off), 16))
		for len(line) < 8 {
			line = append([]byte{'0'}, line...)
		}
		for _, c := range row {
			line = append(line, ' ', hexDigits[c>>4], hexDigits[c&0xf])
		}
		if !p.add(0, line, []byte("body"), false) {
			return
		}
	}
}
