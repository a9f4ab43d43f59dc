package policy

import (
	"strconv"
	"strings"
)

// index maps problem paths ("routes[2].shadow.percent") to the YAML lines
// of the nodes written in the file. A path that is not in the file (a
// missing field) is reported at the line of its nearest existing parent.
type index struct {
	lines map[string]int
}

func newIndex() *index {
	return &index{lines: map[string]int{}}
}

// add records that path exists at line.
func (x *index) add(path string, line int) {
	x.lines[path] = line
}

// has reports whether path was written in the file.
func (x *index) has(path string) bool {
	_, ok := x.lines[path]
	return ok
}

// line returns the line of path, or of its nearest existing parent, or 0.
func (x *index) line(path string) int {
	for {
		if l, ok := x.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// Paths are built only by fieldPath and itemPath:
//
//	routes[2].shadow.percent   services.billing-v2   services["a.b"].endpoints
//
// A plain name never contains '.', '[' or ']', and a quoted one never
// contains `["` (strconv.Quote escapes every '"'), so the last segment can
// be cut off again.

// parentPath returns path without its last segment ("" for a top-level path).
func parentPath(path string) string {
	switch {
	case strings.HasSuffix(path, `"]`):
		if i := strings.LastIndex(path, `["`); i >= 0 {
			return path[:i]
		}
	case strings.HasSuffix(path, "]"):
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
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

// fieldPath is parent.name, or name at the root; a name that is not plain is
// quoted: parent["a.b"].
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
