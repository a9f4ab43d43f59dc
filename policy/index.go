package policy

import "strconv"

// index maps problem paths ("routes[2].shadow.percent") to YAML lines. It
// also remembers each path's parent, so a missing field can be reported at
// the line of the nearest node that does exist.
type index struct {
	lines   map[string]int
	parents map[string]string
}

func newIndex() *index {
	return &index{lines: map[string]int{}, parents: map[string]string{}}
}

// add records that path exists at line and is a child of parent.
func (x *index) add(path, parent string, line int) {
	x.lines[path] = line
	if path != "" {
		x.parents[path] = parent
	}
}

// link records parent as the parent of path without claiming that path
// exists in the file.
func (x *index) link(path, parent string) {
	if _, ok := x.parents[path]; !ok && path != "" {
		x.parents[path] = parent
	}
}

// has reports whether path was written in the file.
func (x *index) has(path string) bool {
	_, ok := x.lines[path]
	return ok
}

// line returns the line of path, or of its nearest existing parent, or 0.
func (x *index) line(path string) int {
	for range 64 {
		if l, ok := x.lines[path]; ok {
			return l
		}
		p, ok := x.parents[path]
		switch {
		case ok:
			path = p
		case path != "":
			path = "" // an unlinked path: fall back to the document
		default:
			return 0
		}
	}
	return 0
}

// plainKey reports whether a map key or field name reads well after a dot:
// [A-Za-z0-9_-]+.
func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// fieldPath is parent.name, or name at the root.
func fieldPath(parent, name string) string {
	if !plainKey(name) {
		return parent + "[" + strconv.Quote(name) + "]"
	}
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// itemPath is parent[i].
func itemPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}
