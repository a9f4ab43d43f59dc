package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// arrival is one request as the upstream saw it.
type arrival struct {
	at        time.Time // when the handler started
	id        string    // headerID, if any
	admission string    // the plugin's headerAdmission, if any
	heldMs    int       // the plugin's headerHeldMs; -1 if absent
}

// upstream is the Go HTTP service behind Envoy. It records the arrival of
// every request per route (the first path segment) and answers 200 "ok".
// Requests to the warm route wait until warmWant of them are in flight at
// once (or warmWait passes), so that the client holds that many
// connections open at the same time.
type upstream struct {
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	arrivals map[string][]arrival

	warmMu   sync.Mutex
	warmWant int
	warmIn   atomic.Int64
	warmAll  chan struct{}
}

// warmWait bounds how long a warm request waits for the others.
const warmWait = 10 * time.Second

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln, arrivals: map[string][]arrival{}, warmAll: make(chan struct{})}
	u.srv = &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, r.Body)
	route, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if route == routeWarm {
		u.waitWarm()
	} else {
		a := arrival{at: now, id: r.Header.Get(headerID), admission: r.Header.Get(headerAdmission), heldMs: -1}
		if v := r.Header.Get(headerHeldMs); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				a.heldMs = n
			}
		}
		u.mu.Lock()
		u.arrivals[route] = append(u.arrivals[route], a)
		u.mu.Unlock()
	}
	w.Header().Set(headerEchoAdmission, r.Header.Get(headerAdmission))
	_, _ = io.WriteString(w, "ok\n")
}

func (u *upstream) waitWarm() {
	u.warmMu.Lock()
	all, want := u.warmAll, u.warmWant
	u.warmMu.Unlock()
	if int(u.warmIn.Add(1)) == want {
		close(all)
	}
	t := time.NewTimer(warmWait)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
	}
}

// expectWarm arms the warm barrier for n requests.
func (u *upstream) expectWarm(n int) {
	u.warmMu.Lock()
	defer u.warmMu.Unlock()
	u.warmWant, u.warmAll = n, make(chan struct{})
	u.warmIn.Store(0)
}

// take returns the arrivals recorded for route and forgets them.
func (u *upstream) take(route string) []arrival {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.arrivals[route]
	delete(u.arrivals, route)
	return out
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) close() { _ = u.srv.Close() }
