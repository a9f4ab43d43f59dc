package policy

import (
	"sync"
	"sync/atomic"
)

// PerRoute is state a consumer derives from each route of the policy in
// use — compiled rules and learned noise, admission budgets, connections to
// a shadow — built once per publish (Use), read on the data path without a
// lock. The zero PerRoute holds nothing.
type PerRoute[T any] struct {
	states atomic.Pointer[map[string]T]
	mu     sync.Mutex // serialises Use
}

// Use derives the state of every route of p for which derive says ok,
// giving derive the route's state under the previous policy (had: there
// was one), so that what did not change is carried over.
func (pr *PerRoute[T]) Use(p *Policy, derive func(r *Route, old T, had bool) (state T, ok bool)) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	old := pr.All()
	states := make(map[string]T, len(p.Routes))
	for _, r := range p.Routes {
		prev, had := old[r.Name]
		if st, ok := derive(r, prev, had); ok {
			states[r.Name] = st
		}
	}
	pr.states.Store(&states)
}

// Get returns route's state under the policy in use.
func (pr *PerRoute[T]) Get(route string) (T, bool) {
	st, ok := pr.All()[route]
	return st, ok
}

// All returns every route's state; the map must not be changed.
func (pr *PerRoute[T]) All() map[string]T {
	if m := pr.states.Load(); m != nil {
		return *m
	}
	return nil
}
