package admission

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Limiter keeps the States of many keys under one Config in memory, for
// in-process use (the ext_proc server's global admission): one Limiter per
// route, one key per route or per header value. It is safe for concurrent
// use; decisions are serialised by one mutex.
//
// The number of keys is bounded by maxKeys. A new key beyond the bound
// replaces the least recently decided key. Dropping a key that is Idle
// loses nothing; dropping one that is not (more than maxKeys keys active
// within one window or MaxDelay) forgets its admissions, so that key may
// briefly exceed its limit. Stats counts both; size maxKeys above the
// number of keys active at once.
type Limiter struct {
	cfg     Config
	rnd     Source
	maxKeys int

	mu    sync.Mutex
	keys  map[string]*entry
	lru   entry // sentinel of a ring: lru.next is the most recent key, lru.prev the least
	stats Stats
}

type entry struct {
	key        string
	state      State
	prev, next *entry
}

// Stats are a Limiter's counters.
type Stats struct {
	Keys        int    // keys held now
	Evicted     uint64 // keys dropped to make room
	EvictedBusy uint64 // of those, keys that were not Idle
}

// NewLimiter returns a Limiter for cfg holding at most maxKeys keys and
// drawing randomness from rnd, which it calls with its mutex held (so rnd
// need not be safe for concurrent use).
func NewLimiter(cfg Config, maxKeys int, rnd Source) (*Limiter, error) {
	err := cfg.Validate()
	if maxKeys < 1 {
		err = errors.Join(err, &ConfigError{Field: "maxKeys", Problem: fmt.Sprintf("must be at least 1 (got %d)", maxKeys)})
	}
	if rnd == nil {
		err = errors.Join(err, &ConfigError{Field: "rnd", Problem: "required: a random source such as rand.NewPCG(seed1, seed2)"})
	}
	if err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, rnd: rnd, maxKeys: maxKeys, keys: make(map[string]*entry, min(maxKeys, 1024))}
	l.lru.prev, l.lru.next = &l.lru, &l.lru
	return l, nil
}

// Decide decides on one request of key at now (see the package function
// Decide). It does not allocate unless key is new.
func (l *Limiter) Decide(key string, now time.Time) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.touch(key, now)
	var d Decision
	e.state, d = Decide(e.state, now, l.rnd, l.cfg)
	return d
}

// Release counts the release of a held request of key at now (see the
// package function Release): 0 if it may go now, else how long to wait
// before asking again.
func (l *Limiter) Release(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.touch(key, now)
	var wait time.Duration
	e.state, wait = Release(e.state, now, l.cfg)
	return wait
}

// touch returns key's entry, added if new, as the most recently used.
// l.mu is held.
func (l *Limiter) touch(key string, now time.Time) *entry {
	e := l.keys[key]
	if e == nil {
		e = l.add(key, now)
	} else {
		e.unlink()
	}
	e.linkAfter(&l.lru)
	return e
}

// Stats returns the Limiter's counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Keys = len(l.keys)
	return s
}

// add returns an unlinked entry for the new key, recycling the least
// recently used one when the Limiter is full.
func (l *Limiter) add(key string, now time.Time) *entry {
	var e *entry
	if len(l.keys) < l.maxKeys {
		e = &entry{}
	} else {
		e = l.lru.prev
		e.unlink()
		delete(l.keys, e.key)
		l.stats.Evicted++
		if !e.state.Idle(now, l.cfg) {
			l.stats.EvictedBusy++
		}
		*e = entry{}
	}
	e.key = key
	l.keys[key] = e
	return e
}

func (e *entry) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (e *entry) linkAfter(at *entry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
}
