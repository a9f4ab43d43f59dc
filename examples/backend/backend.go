// Package backend is the small HTTP service that shadowlab's demo and
// end-to-end tests run twice: as "legacy" (the primary) and as "candidate"
// (the shadow). It records what it receives and answers JSON.
//
// Every request outside ControlPrefix is recorded in memory (the last
// MaxRecorded of them; older ones are dropped and counted) and answered with
// status 200 and a JSON Reply. Two request features help tests:
//
//   - a path ending in /status/NNN, with 200 <= NNN <= 599, answers status NNN
//     (the body is still a JSON Reply); any other ending answers 200;
//   - a query parameter sleep=<duration> (time.ParseDuration syntax, e.g.
//     sleep=250ms) delays the answer by that long, capped at MaxSleep and cut
//     short when the request is cancelled. A malformed or negative value
//     answers 400 with Reply.Error set.
//
// Control endpoints live under ControlPrefix and are never recorded:
//
//	GET  /__backend/received  the Recording as JSON
//	POST /__backend/reset     forget every recorded request and the dropped count
//	GET  /__backend/health    200 while the server is serving
package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// ControlPrefix is the reserved path prefix of the control endpoints.
	ControlPrefix = "/__backend/"
	// MaxRecorded is how many requests a Server keeps; older ones are dropped.
	MaxRecorded = 100_000
	// MaxSleep caps the delay asked for with the sleep query parameter.
	MaxSleep = 10 * time.Second
	// Redacted replaces the value of a sensitive header in a recorded Request.
	Redacted = "[redacted]"

	// HeaderBackend is the response header carrying the server's name.
	HeaderBackend = "x-backend"
	// HeaderRequestID is the response header echoing the request's x-request-id.
	HeaderRequestID = "x-backend-request-id"
)

// shutdownTimeout bounds how long Close waits for in-flight requests.
const shutdownTimeout = 3 * time.Second

// Request is what a Server recorded about one request it received.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Query is the raw query string, without the '?'.
	Query string `json:"query"`
	// Headers maps lower-case header names to their first value. The request's
	// host (HTTP/1 Host or HTTP/2 :authority) is recorded as "host". Values of
	// authorization, proxy-authorization and cookie are replaced by Redacted.
	Headers map[string]string `json:"headers"`
	// BodyBytes is how many body bytes arrived; the body itself is discarded.
	BodyBytes int `json:"body_bytes"`
	// At is when the request reached the handler.
	At time.Time `json:"at"`
	// ResponseSHA256 is the hex SHA-256 of the body answered (API mode
	// only), so a test can check that a client got exactly it.
	ResponseSHA256 string `json:"response_sha256,omitempty"`
}

// Reply is the JSON body of the answer to every non-control request.
type Reply struct {
	Service   string `json:"service"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	RequestID string `json:"request_id"`
	// Error is set only when the request asked for something invalid.
	Error string `json:"error,omitempty"`
}

// Recording is the JSON body of GET /__backend/received.
type Recording struct {
	Name    string `json:"name"`
	Dropped int    `json:"dropped"`
	// Requests holds the recorded requests, oldest first; never null.
	Requests []Request `json:"requests"`
}

// controlStatus is the JSON body of the other control answers.
type controlStatus struct {
	Name   string `json:"name"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Server is one named backend instance. Its methods are safe for concurrent
// use.
type Server struct {
	name string
	api  *API // nil: echo requests as a Reply

	// Set by New; tests in this package shorten them before first use.
	limit           int
	maxSleep        time.Duration
	shutdownTimeout time.Duration
	now             func() time.Time

	mu      sync.Mutex // guards the recording below and fault
	fault   Fault
	reqs    []Request // ring buffer of at most limit requests
	next    int       // index of the oldest request once reqs is full
	dropped int

	life    sync.Mutex // guards the lifecycle below
	started bool
	closed  bool
	srv     *http.Server
	ln      net.Listener
	served  chan error // receives Serve's result
	cancel  context.CancelFunc
}

// Option configures a Server.
type Option func(*Server)

// WithAPI makes the Server answer as the example billing API (see API)
// instead of echoing requests.
func WithAPI(a API) Option { return func(s *Server) { s.api = &a } }

// New returns a Server named name; it serves nothing until Start, but its
// Handler can be used at once.
func New(name string, opts ...Option) *Server {
	s := &Server{
		name:            name,
		limit:           MaxRecorded,
		maxSleep:        MaxSleep,
		shutdownTimeout: shutdownTimeout,
		now:             time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Name returns the name the Server was created with.
func (s *Server) Name() string { return s.name }

// Handler returns the Server's HTTP handler, for in-process use.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on addr (for example "127.0.0.1:0") and serves in the
// background. A Server can be started once.
func (s *Server) Start(addr string) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.started {
		return fmt.Errorf("backend %s: already started", s.name)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("backend %s: listen on %q: %w", s.name, addr, err)
	}
	// Requests inherit ctx, so Close can end sleeps that outlive its deadline.
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	s.started = true
	s.srv, s.ln, s.served, s.cancel = srv, ln, served, cancel
	return nil
}

// Addr returns the host:port the Server is bound to, or "" before Start.
func (s *Server) Addr() string {
	s.life.Lock()
	defer s.life.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the Server gracefully: it stops accepting connections and waits
// a few seconds for in-flight requests, then cuts off those still running.
// Close before Start, or a second Close, does nothing and returns nil.
func (s *Server) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if !s.started || s.closed {
		return nil
	}
	s.closed = true

	ctx, stop := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer stop()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Deadline reached: cutting off the stragglers is the documented
		// outcome. Their connections close before their contexts end: a
		// handler that returned first would have its empty answer written
		// as a 200 (TestCloseCutsOffSleepers saw one).
		err = s.srv.Close()
	}
	s.cancel()
	if err != nil {
		err = fmt.Errorf("backend %s: shutdown: %w", s.name, err)
	}
	serveErr := <-s.served
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	} else if serveErr != nil {
		serveErr = fmt.Errorf("backend %s: serve: %w", s.name, serveErr)
	}
	return errors.Join(err, serveErr)
}

// Received returns a copy of the recorded requests, oldest first.
func (s *Server) Received() []Request {
	reqs, _ := s.snapshot()
	for i := range reqs {
		reqs[i].Headers = maps.Clone(reqs[i].Headers)
	}
	return reqs
}

// Count returns how many requests are recorded now (len of Received).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// Dropped returns how many requests were dropped to respect MaxRecorded
// since New or the last Reset.
func (s *Server) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Reset forgets every recorded request and the dropped count.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs, s.next, s.dropped = nil, 0, 0
}

// record appends req, overwriting the oldest request once the limit is hit.
func (s *Server) record(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) < s.limit {
		s.reqs = append(s.reqs, req)
		return
	}
	s.reqs[s.next] = req
	s.next = (s.next + 1) % s.limit
	s.dropped++
}

// snapshot returns the recorded requests oldest first, sharing their header
// maps (which are never written after recording), and the dropped count.
func (s *Server) snapshot() ([]Request, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.reqs))
	out = append(out, s.reqs[s.next:]...)
	out = append(out, s.reqs[:s.next]...)
	return out, s.dropped
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderBackend, s.name)
	if strings.HasPrefix(r.URL.Path, ControlPrefix) {
		s.control(w, r)
		return
	}
	s.answer(w, r)
}

// Fault makes a Server fail every request (but its control endpoints):
// answer Status, or wait Delay first, or reset the connection. The zero
// Fault is none.
type Fault struct {
	Status int
	Delay  time.Duration
	Reset  bool
}

// SetFault makes the Server fail as f says from now on (Fault{} heals it).
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// failed applies the Server's fault to r, and reports whether it answered.
func (s *Server) failed(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return true
		case <-t.C:
		}
	}
	switch {
	case f.Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		writeJSON(w, f.Status, controlStatus{Name: s.name, Error: "fault"})
		return true
	}
	return false
}

// answer records r and answers it: as the API when the Server has one,
// otherwise with a Reply.
func (s *Server) answer(w http.ResponseWriter, r *http.Request) {
	if s.failed(w, r) {
		return
	}
	at := s.now()
	// A body that breaks off midway still counts what arrived.
	n, _ := io.Copy(io.Discard, r.Body)
	req := Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Headers:   recordedHeaders(r),
		BodyBytes: int(n),
		At:        at,
	}
	var ans Answer
	if s.api != nil {
		ans = s.api.Answer(r.Method, r.URL.Path, at)
		sum := sha256.Sum256(ans.Body)
		req.ResponseSHA256 = hex.EncodeToString(sum[:])
	}
	s.record(req)

	id := r.Header.Get("X-Request-Id")
	if id != "" {
		w.Header().Set(HeaderRequestID, id)
	}
	if s.api != nil {
		writeAnswer(w, r, ans)
		return
	}
	reply := Reply{Service: s.name, Method: r.Method, Path: r.URL.Path, RequestID: id}

	delay, err := sleepDuration(r.URL.Query().Get("sleep"), s.maxSleep)
	if err != nil {
		reply.Error = err.Error()
		writeJSON(w, http.StatusBadRequest, reply)
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return // nobody is waiting for the answer
		case <-t.C:
		}
	}
	writeJSON(w, statusFromPath(r.URL.Path), reply)
}

// writeAnswer writes an API answer after its delay (unless the client gave
// up).
func writeAnswer(w http.ResponseWriter, r *http.Request, ans Answer) {
	if ans.Delay > 0 {
		t := time.NewTimer(ans.Delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if ans.Gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(ans.Status)
	_, _ = w.Write(ans.Body)
}

// control serves the endpoints under ControlPrefix.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, ControlPrefix) {
	case "received":
		if !s.allow(w, r, http.MethodGet) {
			return
		}
		reqs, dropped := s.snapshot()
		writeJSON(w, http.StatusOK, Recording{Name: s.name, Dropped: dropped, Requests: reqs})
	case "reset":
		if !s.allow(w, r, http.MethodPost) {
			return
		}
		s.Reset()
		writeJSON(w, http.StatusOK, controlStatus{Name: s.name, Status: "reset"})
	case "health":
		if !s.allow(w, r, http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, controlStatus{Name: s.name, Status: "ok"})
	default:
		writeJSON(w, http.StatusNotFound, controlStatus{
			Name:  s.name,
			Error: fmt.Sprintf("unknown control endpoint %s", r.URL.Path),
		})
	}
}

// allow reports whether r uses method (GET also allows HEAD); otherwise it
// answers 405.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, method string) bool {
	allowed := method
	if method == http.MethodGet {
		if r.Method == http.MethodHead {
			return true
		}
		allowed = "GET, HEAD"
	}
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", allowed)
	writeJSON(w, http.StatusMethodNotAllowed, controlStatus{
		Name:  s.name,
		Error: fmt.Sprintf("method %s not allowed on %s (use %s)", r.Method, r.URL.Path, allowed),
	})
	return false
}

// recordedHeaders returns r's headers as recorded: lower-case names, first
// values, the host under "host", sensitive values redacted.
func recordedHeaders(r *http.Request) map[string]string {
	h := make(map[string]string, len(r.Header)+1)
	for name, values := range r.Header {
		if len(values) == 0 {
			continue
		}
		name = strings.ToLower(name)
		h[name] = values[0]
		if sensitive(name) {
			h[name] = Redacted
		}
	}
	if r.Host != "" {
		h["host"] = r.Host
	}
	return h
}

// sensitive reports whether the lower-case header name carries credentials.
func sensitive(name string) bool {
	switch name {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	return false
}

// statusFromPath returns NNN when path ends in /status/NNN with
// 200 <= NNN <= 599, and 200 otherwise.
func statusFromPath(path string) int {
	const marker = "/status/"
	i := strings.LastIndex(path, marker)
	if i < 0 {
		return http.StatusOK
	}
	code := path[i+len(marker):]
	if len(code) != 3 || strings.Trim(code, "0123456789") != "" {
		return http.StatusOK
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 200 || n > 599 {
		return http.StatusOK
	}
	return n
}

// sleepDuration parses the sleep query value v ("" means no delay) and caps
// it at limit.
func sleepDuration(v string, limit time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("query sleep=%q: not a duration such as 250ms", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("query sleep=%q: must not be negative", v)
	}
	return min(d, limit), nil
}

// writeJSON answers status with v as a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The values are plain structs, so only a gone client makes this fail,
	// and then there is nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}
