package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is the sentinel every *Error wraps: errors.Is(err, ErrInvalid)
// tells "the policy is wrong" apart from "the file could not be read".
var ErrInvalid = errors.New("invalid policy")

// Errors of Load and ReadFile for a path that is not a policy file at all;
// neither wraps ErrInvalid.
var (
	// ErrNotRegular: the path (after symbolic links) is a directory, a
	// named pipe, a device or a socket. It is refused without being opened
	// for reading, so a FIFO never blocks the caller.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is over MaxFileBytes.
	ErrTooLarge = errors.New("policy file too large")
)

// Problem is one thing wrong with a policy.
type Problem struct {
	// Path names the offending node, e.g. "routes[2].shadow.percent" or
	// "services.billing-v2.endpoints[0]". Empty for problems with the file
	// as a whole (YAML syntax, empty file).
	Path string

	// Line is the 1-based YAML line of the node, or of its nearest existing
	// parent when the node is missing (a required field points at the mapping
	// that lacks it). 0 when unknown, e.g. for a policy built in code.
	Line int

	// Msg says what is wrong and what was found.
	Msg string
}

// Error lists the problems found in one policy: every one, up to
// MaxProblems. It wraps ErrInvalid.
type Error struct {
	Source   string // file name or other label given to Parse
	Problems []Problem
	// More counts the problems found beyond MaxProblems, which are not
	// listed.
	More int
}

// Error renders one problem per line, "source:LINE: PATH: MSG", sorted by
// line then path. The ":LINE" part is left out when the line is unknown and
// "PATH: " when the problem concerns the whole file.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return prefix(e.Source, 0) + ErrInvalid.Error()
	}
	ps := sortedProblems(e.Problems)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prefix(e.Source, p.Line))
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Msg)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n%s… and %d more problems (only the first %d found are listed)", prefix(e.Source, 0), e.More, len(ps))
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

func prefix(source string, line int) string {
	switch {
	case source != "" && line > 0:
		return fmt.Sprintf("%s:%d: ", source, line)
	case source != "":
		return source + ": "
	case line > 0:
		return fmt.Sprintf("line %d: ", line)
	}
	return ""
}

// problemList collects the problems of one policy: the first MaxProblems
// found, and how many more there were. A policy at MaxFileBytes can hold
// millions of problems (a mapping of unknown fields); listing them would
// take gigabytes.
type problemList struct {
	list []Problem
	more int
}

// add records a problem; its message is formatted only if it is listed.
func (ps *problemList) add(path string, line int, format string, args ...any) {
	if ps.full() {
		ps.more++
		return
	}
	ps.list = append(ps.list, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problemList) full() bool { return len(ps.list) >= MaxProblems }

func (ps *problemList) len() int { return len(ps.list) + ps.more }

func (ps *problemList) error(source string) *Error {
	return &Error{Source: source, Problems: sortedProblems(ps.list), More: ps.more}
}

// sortedProblems returns ps sorted by line, path and message, without
// exact duplicates.
func sortedProblems(ps []Problem) []Problem {
	out := make([]Problem, len(ps))
	copy(out, ps)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
	n := 0
	for i, p := range out {
		if i > 0 && p == out[n-1] {
			continue
		}
		out[n] = p
		n++
	}
	return out[:n]
}
