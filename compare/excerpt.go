package compare

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ellipsis ends an excerpt that was cut.
const ellipsis = "…"

// excerptBudget is how much is gathered before cutting to MaxExcerpt.
const excerptBudget = MaxExcerpt + 8

// appendField appends a member step to a path: .name, or ['name'] when
// the name is not a plain identifier (the form ParsePath reads).
func appendField(p, name []byte) []byte {
	plain := len(name) > 0
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$') {
			plain = false
			break
		}
	}
	if plain {
		p = append(p, '.')
		return append(p, name...)
	}
	return append(p, PathSegment{Kind: SegmentField, Name: string(name)}.String()...)
}

// excerpt renders node t of d as compact JSON of at most MaxExcerpt bytes,
// with the values of redacted members replaced.
func (w *walker) excerpt(d *doc, t uint32, redacted bool) string {
	if redacted {
		return Redacted
	}
	w.ex = w.compact(w.ex[:0], d, t)
	return cut(w.ex, MaxExcerpt)
}

// compact appends node t of d as compact JSON, stopping once the buffer
// holds more than excerptBudget bytes.
func (w *walker) compact(buf []byte, d *doc, t uint32) []byte {
	n := &d.tape[t]
	switch n.kind {
	case kindObject:
		buf = append(buf, '{')
		k := t + 1
		for i := range n.n {
			if len(buf) > excerptBudget {
				return buf
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, d.raw(k)...)
			buf = append(buf, ':')
			if w.r.redacts(key(d, k, &w.keyB)) {
				buf = append(buf, '"')
				buf = append(buf, Redacted...)
				buf = append(buf, '"')
			} else {
				buf = w.compact(buf, d, k+1)
			}
			k = d.tape[k+1].next
		}
		return append(buf, '}')
	case kindArray:
		buf = append(buf, '[')
		k := t + 1
		for i := range n.n {
			if len(buf) > excerptBudget {
				return buf
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = w.compact(buf, d, k)
			k = d.tape[k].next
		}
		return append(buf, ']')
	}
	raw := d.src[n.start:n.end]
	if room := excerptBudget + 1 - len(buf); len(raw) > room {
		raw = raw[:max(room, 0)]
	}
	return append(buf, raw...)
}

// cut returns b as valid UTF-8 of at most limit bytes, cut on a rune
// boundary and ended with "…" when it is longer.
func cut(b []byte, limit int) string {
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	if len(b) <= limit {
		return string(b)
	}
	k := max(limit-len(ellipsis), 0)
	for k > 0 && !utf8.RuneStart(b[k]) {
		k--
	}
	return string(b[:k]) + ellipsis
}

// headerExcerpt is a header value as an excerpt: "" when absent, Redacted
// for sensitive headers.
func headerExcerpt(r *Rules, name, v string, ok bool) string {
	switch {
	case !ok:
		return ""
	case r.redactsHeader(name):
		return Redacted
	}
	return cut([]byte(v), MaxExcerpt)
}

// bodyExcerpt is the excerpt of a whole body when one side is JSON and the
// other is not: compact JSON for the JSON side, the start of the body for
// the other.
func (w *walker) bodyExcerpt(r *Rules, d *doc, isJSON bool, body []byte) string {
	if isJSON {
		w.r = r
		return w.excerpt(d, 0, false)
	}
	if len(body) == 0 {
		return "(empty body)"
	}
	return bytesExcerpt(r, body, 0)
}

// bytesExcerpt shows a non-JSON body from offset off (the first byte that
// differs from the other body), saying where: text when the body is valid
// UTF-8, else hex. A body that mentions a redacted field name anywhere is
// not shown: without structure there is no telling where its value is.
func bytesExcerpt(r *Rules, body []byte, off int) string {
	text := utf8.Valid(body)
	if text {
		for off > 0 && off < len(body) && !utf8.RuneStart(body[off]) {
			off--
		}
	}
	prefix := "at byte " + strconv.Itoa(off) + ": "
	if off >= len(body) {
		return prefix + "(end of body)"
	}
	if len(r.redact) > 0 {
		lower := bytes.ToLower(body)
		for _, f := range r.redact {
			if bytes.Contains(lower, []byte(strings.ToLower(f))) {
				return prefix + Redacted
			}
		}
	}
	rest := body[off:]
	if text {
		return prefix + cut(rest[:min(len(rest), excerptBudget)], MaxExcerpt-len(prefix))
	}
	prefix += "hex"
	n := len(rest)
	if len(prefix)+3*n > MaxExcerpt {
		n = (MaxExcerpt - len(prefix) - len(ellipsis)) / 3
	}
	b := []byte(prefix)
	for _, c := range rest[:n] {
		b = append(b, ' ', hexDigits[c>>4], hexDigits[c&0xf])
	}
	if n < len(rest) {
		b = append(b, ellipsis...)
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"
