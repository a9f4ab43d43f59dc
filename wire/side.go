package wire

// Side is which service answered: the primary (the one users get) or the
// shadow (the candidate). The zero Side is unset.
type Side uint8

// Sides.
const (
	SidePrimary Side = iota + 1
	SideShadow
)

var sideNames = [...]string{SidePrimary: "primary", SideShadow: "shadow"}

// String is "primary", "shadow", or "unset".
func (s Side) String() string {
	if s == SidePrimary || s == SideShadow {
		return sideNames[s]
	}
	return "unset"
}

// Index is 0 for the primary and 1 for the shadow, for arrays of two sides;
// it must not be called on an unset Side.
func (s Side) Index() int { return int(s) - 1 }

// ParseSide reads "primary" or "shadow".
func ParseSide(s string) (Side, bool) {
	switch s {
	case "primary":
		return SidePrimary, true
	case "shadow":
		return SideShadow, true
	}
	return 0, false
}

// Scope is where an admission budget lives: in each Envoy (the wasm
// plugin) or in shadowlab, shared by every Envoy (the ext_proc server).
// The zero Scope is unset.
type Scope uint8

// Scopes.
const (
	ScopeLocal Scope = iota + 1
	ScopeGlobal
)

var scopeNames = [...]string{ScopeLocal: "local", ScopeGlobal: "global"}

// String is "local", "global", or "unset".
func (s Scope) String() string {
	if s == ScopeLocal || s == ScopeGlobal {
		return scopeNames[s]
	}
	return "unset"
}

// ParseScope reads "local" or "global".
func ParseScope(s string) (Scope, bool) {
	switch s {
	case "local":
		return ScopeLocal, true
	case "global":
		return ScopeGlobal, true
	}
	return 0, false
}

// MarshalText writes the policy spelling, so a Scope is a JSON string.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
