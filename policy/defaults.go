package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// applyDefaults fills every optional field that has a documented default.
// p must be valid. Each default gets its own pointer: nothing is shared
// between routes or with package state.
func applyDefaults(p *Policy) {
	for name, s := range p.Services {
		if s.ConnectTimeout == nil {
			s.ConnectTimeout = &Duration{DefaultConnectTimeout}
			p.Services[name] = s
		}
	}
	for i := range p.Routes {
		r := &p.Routes[i]
		if r.Timeout == nil {
			r.Timeout = &Duration{DefaultRouteTimeout}
		}
		if s := r.Shadow; s != nil && s.MaxConcurrent == nil {
			s.MaxConcurrent = ptr(DefaultMaxConcurrent)
		}
		if c := r.Compare; c != nil {
			if c.NumericTolerance == nil {
				c.NumericTolerance = ptr(0.0)
			}
			if c.LearnNoise == nil {
				c.LearnNoise = ptr(true)
			}
			if c.MaxBodyBytes == nil {
				c.MaxBodyBytes = ptr(DefaultMaxBodyBytes)
			}
		}
		if a := r.Admission; a != nil {
			if a.Mode == "" {
				a.Mode = ModeDelay
			}
			if a.Scope == "" {
				a.Scope = ScopeLocal
			}
			if a.Key == "" {
				a.Key = KeyRoute
			}
			a.Limit, a.Window, _ = parseRate(a.Rate) // valid: checked before
		}
	}
}

func ptr[T any](v T) *T { return &v }

// hash returns the hex SHA-256 of the canonical form of p: its JSON encoding
// (struct fields in declaration order, map keys sorted) with Hash empty.
func (p *Policy) hash() (string, error) {
	c := *p
	c.Hash = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("hash policy: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
