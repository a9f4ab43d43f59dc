package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Load reads the policy file at path with ReadFile and parses it with
// Parse. A file that cannot be read gives the os error (wrapped), or
// ErrNotRegular or ErrTooLarge; a policy that is wrong gives an *Error that
// wraps ErrInvalid.
func Load(path string) (*Policy, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// ReadFile reads the policy file at path, following symbolic links. It
// refuses, without blocking, a path that is not a regular file (a FIFO is
// never opened for reading: its mode is checked first, and the file is
// opened non-blocking in case it changed in between), and a file over
// MaxFileBytes, which is never read whole.
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil { // what was opened, not what was checked
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if len(data) > MaxFileBytes { // it grew after the check
		return nil, fmt.Errorf("read policy %s: %w (over %s)", path, ErrTooLarge, mib(MaxFileBytes))
	}
	return data, nil
}

// checkFile refuses what is not a regular file or is too large.
func checkFile(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read policy %s: %w (%s)", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxFileBytes {
		return fmt.Errorf("read policy %s: %w (%d bytes, at most %s)", path, ErrTooLarge, fi.Size(), mib(MaxFileBytes))
	}
	return nil
}

// fileKind names what a non-regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}

func mib(n int) string { return strconv.Itoa(n>>20) + " MiB" }

// Parse decodes, checks and compiles one policy document. source names it
// in error messages (usually the file name).
//
// Decoding is strict: unknown fields, values of the wrong type, duplicate
// keys and YAML aliases are problems. Every problem found is returned
// together in one *Error; the policy is returned only when there is none,
// compiled, with every default resolved and its hashes set. Past
// MaxProblems, problems are counted (Error.More), not listed.
func Parse(data []byte, source string) (*Policy, error) {
	d := &decoder{idx: newIndex(), problems: &problemList{}, bad: map[string]bool{}, fields: map[reflect.Type]structFields{}}
	root := d.document(data)
	if root == nil {
		return nil, d.problems.error(source)
	}
	d.walk(root, reflect.TypeFor[document](), "", 0)

	var doc document
	var p *Policy
	if d.decode(root, &doc) {
		c := &checker{idx: d.idx, problems: d.problems, undecoded: d.bad}
		p = c.policy(&doc)
	}
	if d.problems.len() > 0 {
		return nil, d.problems.error(source)
	}
	if err := p.setHashes(); err != nil {
		return nil, err
	}
	for _, r := range p.Routes {
		r.match = compileMatch(r.Match)
	}
	return p, nil
}

// UnmarshalYAML reads a Go duration string ("1s", "250ms", "1h30m"). A bad
// value is reported as a *yaml.TypeError so that decoding goes on and every
// other problem is still found.
func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDurationNode(n)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	d.Duration = v
	return nil
}

func parseDurationNode(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("must be a duration such as \"250ms\", \"1s\" or \"2m\" (got %s)", describe(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a Go duration such as \"250ms\", \"1s\" or \"2m\")", clip(n.Value))
	}
	return v, nil
}

// decoder turns YAML into a Policy and collects the problems found on the
// way. It parses the text once into a node tree, walks the tree against the
// Go types (the strict part: unknown fields, duplicate keys, wrong kinds, bad
// scalars, aliases, each with its exact path and line), then lets yaml.v3
// fill the struct from the same tree.
type decoder struct {
	idx      *index
	problems *problemList
	bad      map[string]bool // paths that could not be decoded
	fields   map[reflect.Type]structFields
}

// structFields are the YAML field names of a struct in declaration order and
// their types.
type structFields struct {
	names []string
	types map[string]reflect.Type
}

func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.problems.add(path, line, format, args...)
	d.bad[path] = true
}

// suppressed reports whether path is, or is under, a path in bad, one that
// could not be decoded: its validation problems would only repeat the
// decoding one.
func suppressed(bad map[string]bool, path string) bool {
	for {
		if bad[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = parentPath(path)
	}
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// document parses data into a node tree and returns the root mapping, or nil
// after recording why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	if len(data) > MaxFileBytes {
		d.fail("", 0, "the policy is %d bytes (at most %s)", len(data), mib(MaxFileBytes))
		return nil
	}
	if n := yamlNodeBound(data); n > MaxYAMLNodes {
		d.fail("", 0, "the policy is too large to parse: its text could make %d YAML nodes (at most %d; each \":\", \",\", \"[\", \"{\", \"?\" and list \"- \" counts 2)",
			n, MaxYAMLNodes)
		return nil
	}
	if line, msg := textProblem(data); msg != "" {
		d.fail("", line, "%s", msg)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail("", 1, "the policy is empty (want a mapping with version, listeners, services and routes)")
		} else {
			d.yamlError(err, data)
		}
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		d.fail("", max(doc.Line, 1), "the policy is empty (want a mapping with version, listeners, services and routes)")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		d.fail("", root.Line, "the policy must be a mapping with version, listeners, services and routes (got %s)", describe(root))
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(err, data)
		return nil
	case len(next.Content) > 0 && !isNull(next.Content[0]):
		d.fail("", next.Content[0].Line, "only one YAML document is allowed (found a second one)")
		return nil
	}
	d.idx.add("", root.Line)
	return root
}

// yamlNodeBound is an upper bound of the nodes yaml.v3 builds for data,
// counted from the text before it is parsed. Every node but the documents
// (at most two are decoded) and their roots is an item of a collection, and
// every item is introduced by an indicator: a block sequence's "-" followed
// by a blank, a mapping's ":" or "?" (a key and its value), a flow
// collection's "[", "{" or "," (a flow sequence's item, a flow mapping's
// key and value). Each introduces at most two nodes. Indicator characters
// inside scalars and comments are counted too: the bound errs high.
func yamlNodeBound(data []byte) int {
	n := 4
	for i, b := range data {
		switch b {
		case ':', '?', ',', '[', '{':
			n += 2
		case '-':
			if i+1 == len(data) || data[i+1] <= ' ' || data[i+1] >= utf8.RuneSelf {
				n += 2 // followed by a blank, a line break (maybe NEL, LS, PS) or the end
			}
		}
	}
	return n
}

// yamlError records a YAML syntax error at its line. yaml.v3 leaves the
// line out of errors on the first line (its marks count from 0 and 0 is
// taken for "unknown") and out of "unknown anchor" errors; the first are
// put on line 1, the second on the line of the alias in data. Errors of
// its reader (bad UTF-8, control characters) cannot happen: textProblem has
// already found them, with their line.
func (d *decoder) yamlError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.fail("", line, "invalid YAML: %s", m[2])
		return
	}
	line := 1
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		line = aliasLine(data, m[1])
	}
	d.fail("", line, "invalid YAML: %s", msg)
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// aliasLine is the line of the first alias *name in data, or 1.
func aliasLine(data []byte, name string) int {
	alias := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(data[off:], alias)
		if i < 0 {
			return 1
		}
		end := off + i + len(alias)
		if end == len(data) || strings.IndexByte(" \t\r\n,]}", data[end]) >= 0 {
			return 1 + bytes.Count(data[:off+i], []byte("\n"))
		}
		off = end
	}
}

// textProblem finds the first byte of data that YAML does not read as
// text: invalid UTF-8, or a character YAML does not allow (control
// characters other than tab and line breaks, surrogates, U+FFFE, U+FFFF).
// It returns its line and a message with its column, or "" if there is
// none.
func textProblem(data []byte) (line int, msg string) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		return 1, "the policy must be UTF-8 text (found a UTF-16 byte order mark)"
	}
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, fmt.Sprintf("invalid UTF-8 at column %d (byte 0x%02x): the policy must be UTF-8 text", col, data[i])
		case !yamlChar(r):
			return line, fmt.Sprintf("character %U at column %d is not allowed in YAML", r, col)
		case r == '\n':
			line, col = line+1, 1
		default:
			col++
		}
		i += size
	}
	return 0, ""
}

// yamlChar reports whether YAML allows r in a document (YAML 1.2 c-printable).
func yamlChar(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7e, r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= utf8.MaxRune:
		return true
	}
	return false
}

// decode fills doc from the root node with yaml.v3. The walk has already
// reported everything yaml.v3 can object to (and unknown fields, which it
// would ignore here), with better paths; anything yaml.v3 reports on a line
// the walk found nothing wrong with is added as a fallback. decode returns
// false when doc could not be filled well enough to check.
func (d *decoder) decode(root *yaml.Node, doc *document) bool {
	err := root.Decode(doc)
	if err == nil {
		return true
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if d.problems.len() == 0 {
			d.fail("", root.Line, "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return false
	}
	lines := map[int]bool{}
	for _, pr := range d.problems.list {
		lines[pr.Line] = true
	}
	for _, msg := range te.Errors {
		line, text := 0, msg
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			text = m[2]
		}
		if lines[line] {
			continue
		}
		d.fail(d.pathAt(line), line, "%s", text)
	}
	return true
}

// pathAt returns the deepest known path on line, or "".
func (d *decoder) pathAt(line int) string {
	best := ""
	for p, l := range d.idx.lines {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

var durationType = reflect.TypeFor[duration]()

// stringLimits are the limits of the strings that reach Envoy, by struct
// and YAML field (for a list, of each item); every other string is limited
// to MaxStringBytes.
var stringLimits = map[reflect.Type]map[string]int{
	reflect.TypeFor[Match]():        {"path": MaxPathBytes, "pathPrefix": MaxPathBytes, "pathRegex": MaxRegexBytes, "methods": MaxHeaderNameBytes},
	reflect.TypeFor[HeaderMatch]():  {"name": MaxHeaderNameBytes, "exact": MaxHeaderValueBytes, "prefix": MaxHeaderValueBytes, "regex": MaxRegexBytes},
	reflect.TypeFor[Tenants]():      {"header": MaxHeaderNameBytes, "values": MaxHeaderValueBytes},
	reflect.TypeFor[docCompare]():   {"headers": MaxHeaderNameBytes, "varyOn": MaxHeaderNameBytes},
	reflect.TypeFor[docAdmission](): {"key": len(keyHeaderPrefix) + MaxHeaderNameBytes},
}

// walk checks node n against Go type t and records every path it finds.
// limit bounds the length of a string (0: MaxStringBytes).
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string, limit int) {
	if n.Kind == yaml.AliasNode {
		d.fail(path, n.Line, "YAML aliases (*%s) are not supported; write the value out", n.Value)
		return
	}
	if limit == 0 {
		limit = MaxStringBytes
	}
	if n.Kind == yaml.ScalarNode && len(n.Value) > limit {
		d.fail(path, n.Line, "%q is %d bytes (at most %d)", clip(n.Value), len(n.Value), limit)
		n.Value = "" // not checked further: the problem is reported
		return
	}
	if t.Kind() == reflect.Pointer {
		if isNull(n) {
			return
		}
		t = t.Elem()
	}
	if t == durationType {
		if isNull(n) {
			return
		}
		if _, err := parseDurationNode(n); err != nil {
			d.fail(path, n.Line, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.walkStruct(n, t, path)
	case reflect.Map:
		d.walkMap(n, t, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("; write [%s]", clip(n.Value))
			}
			d.fail(path, n.Line, "must be a list (got %s%s)", describe(n), hint)
			return
		}
		for i, e := range n.Content {
			child := itemPath(path, i)
			d.idx.add(child, e.Line)
			d.walk(e, t.Elem(), child, limit)
		}
	default:
		d.walkScalar(n, t, path)
	}
}

func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping (got %s)", describe(n))
		return
	}
	sf, ok := d.fields[t]
	if !ok {
		sf = yamlFields(t)
		d.fields[t] = sf
	}
	kept, seen := n.Content[:0], map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.key(k, path) {
			continue
		}
		child := fieldPath(path, k.Value)
		if d.duplicate(seen, k, child) {
			continue
		}
		ft, ok := sf.types[k.Value]
		if !ok { // dropped too: yaml.v3 compares every key of a mapping with every other
			if d.problems.full() {
				d.problems.more++
			} else {
				d.fail(child, k.Line, "field %q not known (%s)", k.Value, suggest(k.Value, sf.names))
			}
			continue
		}
		kept = append(kept, k, v)
		d.idx.add(child, k.Line)
		if d.tooMany(v, ft, child, t, k.Value) {
			continue
		}
		d.walk(v, ft, child, stringLimits[t][k.Value])
	}
	n.Content = kept
}

// collectionLimits are the limits of the lists and maps of the policy
// document, by struct and YAML field, with what their items are called;
// every other list is limited to MaxListItems.
var collectionLimits = map[reflect.Type]map[string]struct {
	max  int
	noun string
}{
	reflect.TypeFor[document]():   {"routes": {MaxRoutes, "routes"}, "listeners": {MaxListeners, "listeners"}, "services": {MaxServices, "services"}},
	reflect.TypeFor[docService](): {"endpoints": {MaxEndpoints, "endpoints"}},
	reflect.TypeFor[docRoute]():   {"listeners": {MaxListeners, "listeners"}},
}

// tooMany reports a list or map n, field name of struct t, that is over
// its limit: one problem at its path, and nothing in it is checked (it is
// emptied, and what is checked after decoding is not reported under it).
func (d *decoder) tooMany(n *yaml.Node, ft reflect.Type, path string, t reflect.Type, name string) bool {
	count := len(n.Content)
	switch {
	case ft.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		count /= 2
	case ft.Kind() != reflect.Slice || n.Kind != yaml.SequenceNode:
		return false
	}
	limit, ok := collectionLimits[t][name]
	if !ok {
		limit.max, limit.noun = MaxListItems, "items"
	}
	if count <= limit.max {
		return false
	}
	d.fail(path, d.idx.line(path), "%d %s (at most %d)", count, limit.noun, limit.max)
	n.Content = nil
	return true
}

// duplicate reports, the second time a key is seen in a mapping, that it is
// a duplicate. The caller drops it from the tree, so that yaml.v3, which
// refuses the whole mapping, decodes the first one and the rest of the
// policy is checked as usual; nothing under the duplicate is checked.
func (d *decoder) duplicate(seen map[string]*yaml.Node, k *yaml.Node, path string) bool {
	first, dup := seen[k.Value]
	if !dup {
		seen[k.Value] = k
		return false
	}
	if d.problems.full() {
		d.problems.more++
		return true
	}
	where := fmt.Sprintf("first at line %d, again at line %d", first.Line, k.Line)
	if first.Line == k.Line {
		where = fmt.Sprintf("first at line %d column %d, again at column %d", k.Line, first.Column, k.Column)
	}
	d.problems.add(path, k.Line, "duplicate key %q: %s (only the first is used)", clip(k.Value), where)
	return true
}

func (d *decoder) walkMap(n *yaml.Node, t reflect.Type, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping (got %s)", describe(n))
		return
	}
	kept, seen := n.Content[:0], map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.key(k, path) {
			continue
		}
		child := fieldPath(path, k.Value)
		if d.duplicate(seen, k, child) {
			continue
		}
		kept = append(kept, k, v)
		d.idx.add(child, k.Line)
		d.walk(v, t.Elem(), child, 0)
	}
	n.Content = kept
}

// key checks that a mapping key is a plain string.
func (d *decoder) key(k *yaml.Node, path string) bool {
	switch {
	case k.Kind != yaml.ScalarNode:
		d.fail(path, k.Line, "mapping keys must be strings (got %s)", describe(k))
		return false
	case k.Value == "<<" && k.Style == 0 && k.ShortTag() == "!!merge":
		d.fail(path, k.Line, "YAML merge keys (<<) are not supported; write the fields out")
		return false
	case len(k.Value) > MaxStringBytes: // the mapping itself is checked on
		d.problems.add(path, k.Line, "mapping key %q is %d bytes (at most %d)", clip(k.Value), len(k.Value), MaxStringBytes)
		return false
	}
	return true
}

func (d *decoder) walkScalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "must be %s (got %s)", kindName(t), describe(n))
		return
	}
	if isNull(n) || t.Kind() == reflect.String {
		return // any scalar reads as a string
	}
	// yaml.v3 would truncate 1.5 into an integer and read "yes" as true;
	// the policy wants the plain YAML 1.2 types.
	tag := n.ShortTag()
	strict := true
	switch t.Kind() {
	case reflect.Bool:
		strict = tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		strict = tag == "!!int"
	}
	if strict && n.Decode(reflect.New(t).Interface()) == nil {
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag == "!!int" { // out of the type's range
			lo, hi := intRange(t)
			d.fail(path, n.Line, "must be a whole number between %s and %s (got %s)", lo, hi, clip(n.Value))
			return
		}
	}
	d.fail(path, n.Line, "must be %s (got %s)", kindName(t), describe(n))
}

func intRange(t reflect.Type) (string, string) {
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "0", strconv.FormatUint(math.MaxUint64>>(64-t.Bits()), 10)
	}
	hi := int64(1)<<(t.Bits()-1) - 1
	return strconv.FormatInt(-hi-1, 10), strconv.FormatInt(hi, 10)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	}
	return "a " + t.String()
}

// yamlFields lists the YAML fields of struct t.
func yamlFields(t reflect.Type) structFields {
	var names []string
	types := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names = append(names, name)
		types[name] = f.Type
	}
	return structFields{names: names, types: types}
}

var separators = strings.NewReplacer("_", "", "-", "")

// suggest names the closest known field, or lists them all.
func suggest(got string, known []string) string {
	norm := func(s string) string {
		return separators.Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		if norm(k) == norm(got) {
			return fmt.Sprintf("did you mean %q?", k)
		}
		if dist := levenshtein(strings.ToLower(got), strings.ToLower(k)); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "known fields: " + strings.Join(sorted, ", ")
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what a node is, for "(got ...)".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(clip(n.Value))
}

// clip shortens s for a message.
func clip(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// setHashes sets the hashes of p, each route and each compare block: hex
// SHA-256 of their JSON encoding as compiled (struct fields in declaration
// order, defaults resolved).
func (p *Policy) setHashes() error {
	sum := func(v any) (string, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("hash policy: %w", err)
		}
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:]), nil
	}
	var err error
	for _, r := range p.Routes {
		if r.Hash, err = sum(r); err != nil {
			return err
		}
		if s := r.Shadow; s != nil {
			if s.Compare.Hash, err = sum(s.Compare); err != nil {
				return err
			}
		}
	}
	p.Hash, err = sum(struct {
		Listeners []*Listener
		Services  []*Service
		Routes    []*Route
	}{p.Listeners, p.Services, p.Routes})
	return err
}
