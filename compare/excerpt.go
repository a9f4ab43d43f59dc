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
	if hasSecretText(w.r, w.ex) {
		w.ex, _ = redactText(w.r, w.ex, 0)
	}
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

// Excerpt is s as an excerpt: valid UTF-8, at most MaxExcerpt bytes.
func Excerpt(s string) string { return cut([]byte(s), MaxExcerpt) }

// headerExcerpt is a header value as an excerpt: "" when absent, Redacted
// for sensitive headers.
func headerExcerpt(r *Rules, name, v string, ok bool) string {
	switch {
	case !ok:
		return ""
	case r.redactsHeader(name):
		return Redacted
	}
	b := []byte(v)
	if hasSecretText(r, b) {
		b, _ = redactText(r, b, 0)
	}
	return cut(b, MaxExcerpt)
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
// UTF-8, else hex. In text, the values of redacted names written as
// parameters or fields (see redactText) are replaced by Redacted, also
// when off falls inside one; a binary body holding any is not shown.
func bytesExcerpt(r *Rules, body []byte, off int) string {
	text := utf8.Valid(body)
	if text {
		for off > 0 && off < len(body) && !utf8.RuneStart(body[off]) {
			off--
		}
	}
	if off >= len(body) {
		return "at byte " + strconv.Itoa(off) + ": (end of body)"
	}
	secrets := hasSecretText(r, body)
	if text && secrets {
		shown, at := redactText(r, body, off)
		prefix := "at byte " + strconv.Itoa(at) + ": "
		return prefix + cut(shown, MaxExcerpt-len(prefix))
	}
	prefix := "at byte " + strconv.Itoa(off) + ": "
	if secrets { // binary: a secret's bytes in hex are still the secret
		return prefix + Redacted
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

// hasSecretText reports whether text may hold a redacted value: a quick
// scan for a separator ('=', ':' or '>') right after a redacted name.
func hasSecretText(r *Rules, text []byte) bool {
	found := false
	scanSecrets(r, text, func(int, int) bool { found = true; return false })
	return found
}

// redactText returns text from offset from to about excerptBudget bytes
// further, with every redacted value replaced by Redacted. When from falls
// inside a value, the result starts with Redacted and start is where the
// value starts (an offset inside a secret would tell how much of it two
// bodies share); otherwise start is from.
func redactText(r *Rules, text []byte, from int) (shown []byte, start int) {
	out := make([]byte, 0, excerptBudget+len(Redacted))
	at, start := from, from
	scanSecrets(r, text, func(vs, ve int) bool {
		if ve <= at {
			return true
		}
		if vs < from {
			start = vs
		}
		if vs > at {
			out = append(out, text[at:min(vs, at+excerptBudget+1-len(out))]...)
		}
		if len(out) > excerptBudget {
			return false
		}
		out = append(out, Redacted...)
		at = ve
		return len(out) <= excerptBudget
	})
	if at < len(text) && len(out) <= excerptBudget {
		out = append(out, text[at:min(len(text), at+excerptBudget+1-len(out))]...)
	}
	return out, start
}

// scanSecrets calls found with the span [vs, ve) of each value of a
// redacted name in text, in order, until found returns false. A value
// follows its name as a parameter (name=value, up to '&', ';', a quote,
// white space or a bracket; also after a JSON-escaped "\u0026"), a field
// (name: value or "name": "value", up to the line's end or the closing
// quote) or an XML element (<name>value<).
func scanSecrets(r *Rules, text []byte, found func(vs, ve int) bool) {
	for i := 0; i < len(text); {
		if !isNameByte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isNameByte(text[j]) {
			j++
		}
		name := text[i:j]
		if i > 0 && text[i-1] == '\\' && len(name) > 5 && (name[0] == 'u' || name[0] == 'U') && string(name[1:5]) == "0026" {
			name = name[5:]
		}
		i = j
		if j-len(name) > 0 && j < len(text) && (text[j] == '"' || text[j] == '\'') && text[j-len(name)-1] == text[j] {
			j++ // the closing quote of a quoted name
		}
		if j >= len(text) || !r.redacts(name) {
			continue
		}
		var vs, ve int
		switch sep := text[j]; {
		case sep == '=':
			vs = j + 1
			ve = valueEnd(text, vs, "&;,\"' \t\r\n<>#\\)]}")
		case sep == ':':
			vs = j + 1
			for vs < len(text) && (text[vs] == ' ' || text[vs] == '\t') {
				vs++
			}
			ve = valueEnd(text, vs, "\r\n,;&\"'<>}]\\")
		case sep == '>' && i-len(name) > 0 && text[i-len(name)-1] == '<':
			vs = j + 1
			ve = valueEnd(text, vs, "<")
		default:
			continue
		}
		if vs < len(text) && (text[vs] == '"' || text[vs] == '\'') {
			q := text[vs]
			vs++
			ve = vs
			for ve < len(text) && text[ve] != q {
				if text[ve] == '\\' {
					ve++
				}
				ve++
			}
			ve = min(ve, len(text))
		}
		if ve > vs {
			if !found(vs, ve) {
				return
			}
			i = ve
		}
	}
}

// valueEnd is the index of the first byte of text from vs that is in stop,
// or len(text).
func valueEnd(text []byte, vs int, stop string) int {
	for k := vs; k < len(text); k++ {
		if strings.IndexByte(stop, text[k]) >= 0 {
			return k
		}
	}
	return len(text)
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

const hexDigits = "0123456789abcdef"
