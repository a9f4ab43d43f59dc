package compare

import (
	"bytes"
	"slices"
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
// line at maxExhibitLine; a line's path counts toward the body's budget
// past its first pathAllowance bytes.
const (
	pathAllowance    = 64
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
	// Room for the usual shape (a pretty-printed line per ~16 bytes of
	// body, its path about as long as its text), so add rarely grows them.
	pr.all = make([]byte, 0, 3*min(len(body), maxBytes)+64)
	pr.spans = make([]lineSpan, 0, min(len(body), maxBytes)/16+4)
	st := rules.state() // the comparator's pooled scratch
	defer rules.release(st)
	d := &st.a
	switch {
	case len(body) == 0:
		e.BodyKind = "empty"
	case d.parseBody(body, resp.Headers["content-type"]):
		e.BodyKind = "json"
		pr.d, pr.path = d, []byte{'$'}
		pr.value(0, 0, nil, false, false)
	case utf8.Valid(body):
		e.BodyKind = "text"
		pr.text(body)
	default:
		e.BodyKind = "binary"
		pr.binary(body)
	}
	pr.finish()
	return e
}

// headerExcerptFull is a header's value with secrets redacted, uncut.
func headerExcerptFull(r *Rules, name, v string) string {
	if r.redactsHeader(name) {
		return Redacted
	}
	if b := redactAll(r, []byte(v)); b != nil {
		v = string(b)
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// redactAll is text with every redacted value replaced (see scanSecrets);
// nil when it holds none.
func redactAll(r *Rules, text []byte) []byte {
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
		return nil
	}
	return append(out, text[at:]...)
}

// printer writes an Exhibit's lines. path and line are scratch buffers:
// path holds the current value's path, grown and cut back as the walk goes
// down and up.
type printer struct {
	r    *Rules
	d    *doc
	e    *Exhibit
	max  int
	size int
	keyB []byte
	path []byte
	line []byte
	pre  []byte // a member's name as written, copied into line at once
	// all holds every line's text and path, made into one string by
	// finish: one allocation instead of two per line.
	all   []byte
	spans []lineSpan
}

// lineSpan is a line whose text and path lie in printer.all.
type lineSpan struct {
	depth                        int
	text, textEnd, path, pathEnd int
	redacted                     bool
}

// finish turns the spans into the Exhibit's lines.
func (p *printer) finish() {
	all := string(p.all)
	if !utf8.ValidString(all) {
		// Cut on a rune that spans two lines, or invalid input: mend each.
		for _, sp := range p.spans {
			p.e.Lines = append(p.e.Lines, ExhibitLine{Depth: sp.depth, Text: strings.ToValidUTF8(all[sp.text:sp.textEnd], "\uFFFD"),
				Path: all[sp.path:sp.pathEnd], Redacted: sp.redacted})
		}
		return
	}
	p.e.Lines = slices.Grow(p.e.Lines, len(p.spans))
	for _, sp := range p.spans {
		p.e.Lines = append(p.e.Lines, ExhibitLine{Depth: sp.depth, Text: all[sp.text:sp.textEnd], Path: all[sp.path:sp.pathEnd], Redacted: sp.redacted})
	}
}

// add appends a line; false once the budget is spent (Truncated is set).
// Redacted values in text from offset scan on are replaced (scan < 0: the
// line shows no value that can hold one).
func (p *printer) add(depth int, text []byte, path []byte, redacted bool, scan int) bool {
	if p.e.Truncated {
		return false
	}
	// A path counts past its first pathAllowance bytes: a deeply nested
	// body has short lines with long paths.
	cost := len(text) + max(len(path)-pathAllowance, 0)
	if p.size+cost > p.max && len(p.spans) > 0 {
		p.e.Truncated = true
		return false
	}
	if len(text) > maxExhibitLine {
		text = append(text[:maxExhibitLine:maxExhibitLine], ellipsis...)
	}
	if scan >= 0 && scan <= len(text) {
		if red := redactAll(p.r, text[scan:]); red != nil {
			text, redacted = append(text[:scan:scan], red...), true
		}
	}
	p.size += len(text) + max(len(path)-pathAllowance, 0)
	sp := lineSpan{depth: depth, text: len(p.all), redacted: redacted}
	p.all = append(p.all, text...)
	sp.textEnd, sp.path = len(p.all), len(p.all)
	p.all = append(p.all, path...)
	sp.pathEnd = len(p.all)
	p.spans = append(p.spans, sp)
	return true
}

// value prints node t at p.path: prefix is its member name as written
// ("\"price\": "), comma whether a sibling follows.
func (p *printer) value(t uint32, depth int, prefix []byte, comma, redacted bool) bool {
	d := p.d
	n := &d.tape[t]
	line := append(p.line[:0], prefix...)
	if redacted {
		line = append(line, '"')
		line = append(line, Redacted...)
		line = append(line, '"')
		if comma {
			line = append(line, ',')
		}
		p.line = line
		return p.add(depth, line, p.path, true, -1)
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
			p.line = line
			return p.add(depth, line, p.path, false, -1)
		}
		p.line = append(line, open)
		if !p.add(depth, p.line, p.path, false, -1) {
			return false
		}
		base := len(p.path)
		k := t + 1
		for i := range n.n {
			var pre []byte
			red := false
			if n.kind == kindObject {
				name := key(d, k, &p.keyB)
				red = p.r.redacts(name)
				p.path = appendField(p.path, name)
				p.pre = append(append(p.pre[:0], d.raw(k)...), ':', ' ')
				pre = p.pre
				k++ // the value
			} else {
				p.path = append(p.path, '[')
				p.path = strconv.AppendInt(p.path, int64(i), 10)
				p.path = append(p.path, ']')
			}
			next := d.tape[k].next
			ok := p.value(k, depth+1, pre, i+1 < n.n, red)
			p.path = p.path[:base]
			if !ok {
				return false
			}
			k = next
		}
		p.line = append(p.line[:0], closing)
		if comma {
			p.line = append(p.line, ',')
		}
		return p.add(depth, p.line, p.path, false, -1)
	}
	scan := -1
	if n.kind == kindString { // numbers, booleans and null hold no secret
		scan = len(line)
	}
	line = append(line, d.src[n.start:n.end]...)
	if comma {
		line = append(line, ',')
	}
	p.line = line
	return p.add(depth, line, p.path, false, scan)
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
		if !p.add(0, bytes.TrimSuffix(line, []byte{'\r'}), []byte("body"), false, 0) {
			return
		}
	}
}

// binary prints a body as hex, hexPerLine bytes a line; a body holding a
// redacted value is not shown (its bytes in hex are still the secret).
func (p *printer) binary(body []byte) {
	if hasSecretText(p.r, body) {
		p.add(0, []byte(Redacted), []byte("body"), true, -1)
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
		if !p.add(0, line, []byte("body"), false, -1) {
			return
		}
	}
}
