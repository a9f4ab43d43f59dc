package backend

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestServer returns a Server with a fixed clock.
func newTestServer(name string) *Server {
	s := New(name)
	s.now = func() time.Time { return testNow }
	return s
}

// serve runs req through s's handler.
func serve(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestRecording(t *testing.T) {
	tests := map[string]struct {
		method  string
		target  string
		body    string
		headers http.Header
		want    Request
	}{
		"plain get": {
			method: http.MethodGet,
			target: "/orders",
			want: Request{
				Method:  http.MethodGet,
				Path:    "/orders",
				Headers: map[string]string{"host": "example.com"},
				At:      testNow,
			},
		},
		"query and body": {
			method: http.MethodPost,
			target: "/orders/7?expand=items&x=1",
			body:   `{"qty":3}`,
			headers: http.Header{
				"Content-Type": {"application/json"},
				"X-Request-Id": {"req-1"},
			},
			want: Request{
				Method: http.MethodPost,
				Path:   "/orders/7",
				Query:  "expand=items&x=1",
				Headers: map[string]string{
					"host":         "example.com",
					"content-type": "application/json",
					"x-request-id": "req-1",
				},
				BodyBytes: 9,
				At:        testNow,
			},
		},
		"first value of repeated header": {
			method:  http.MethodGet,
			target:  "/",
			headers: http.Header{"X-Multi": {"one", "two"}},
			want: Request{
				Method:  http.MethodGet,
				Path:    "/",
				Headers: map[string]string{"host": "example.com", "x-multi": "one"},
				At:      testNow,
			},
		},
		"credentials redacted": {
			method: http.MethodGet,
			target: "/me",
			headers: http.Header{
				"Authorization":       {"Bearer secret-token"},
				"Proxy-Authorization": {"Basic c2VjcmV0"},
				"Cookie":              {"session=secret", "other=secret"},
				"X-Api-Version":       {"2"},
			},
			want: Request{
				Method: http.MethodGet,
				Path:   "/me",
				Headers: map[string]string{
					"host":                "example.com",
					"authorization":       Redacted,
					"proxy-authorization": Redacted,
					"cookie":              Redacted,
					"x-api-version":       "2",
				},
				At: testNow,
			},
		},
		"status and invalid sleep still recorded": {
			method: http.MethodDelete,
			target: "/x/status/503?sleep=soon",
			want: Request{
				Method:  http.MethodDelete,
				Path:    "/x/status/503",
				Query:   "sleep=soon",
				Headers: map[string]string{"host": "example.com"},
				At:      testNow,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newTestServer("legacy")
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			for k, vs := range tc.headers {
				req.Header[k] = vs
			}
			serve(s, req)

			got := s.Received()
			require.Len(t, got, 1)
			assert.Equal(t, tc.want, got[0])
			assert.Equal(t, 1, s.Count())
			assert.Zero(t, s.Dropped())
		})
	}
}

func TestAnswer(t *testing.T) {
	tests := map[string]struct {
		method     string
		target     string
		requestID  string
		wantStatus int
		wantReply  Reply
		wantError  string // substring of Reply.Error
	}{
		"plain": {
			method:     http.MethodGet,
			target:     "/orders",
			requestID:  "abc-123",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/orders", RequestID: "abc-123"},
		},
		"no request id": {
			method:     http.MethodPut,
			target:     "/orders/1",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "PUT", Path: "/orders/1"},
		},
		"status path": {
			method:     http.MethodGet,
			target:     "/api/status/503",
			wantStatus: http.StatusServiceUnavailable,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/api/status/503"},
		},
		"status path at root": {
			method:     http.MethodPost,
			target:     "/status/404",
			wantStatus: http.StatusNotFound,
			wantReply:  Reply{Service: "candidate", Method: "POST", Path: "/status/404"},
		},
		"status below 200 ignored": {
			method:     http.MethodGet,
			target:     "/status/199",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/status/199"},
		},
		"status above 599 ignored": {
			method:     http.MethodGet,
			target:     "/status/600",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/status/600"},
		},
		"status not numeric ignored": {
			method:     http.MethodGet,
			target:     "/orders/status/pending",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/orders/status/pending"},
		},
		"status not last segment ignored": {
			method:     http.MethodGet,
			target:     "/status/500/details",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/status/500/details"},
		},
		"status with sleep": {
			method:     http.MethodGet,
			target:     "/status/502?sleep=1ms",
			wantStatus: http.StatusBadGateway,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/status/502"},
		},
		"malformed sleep": {
			method:     http.MethodGet,
			target:     "/status/503?sleep=soon",
			wantStatus: http.StatusBadRequest,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/status/503"},
			wantError:  `query sleep="soon": not a duration`,
		},
		"negative sleep": {
			method:     http.MethodGet,
			target:     "/x?sleep=-1s",
			wantStatus: http.StatusBadRequest,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/x"},
			wantError:  `query sleep="-1s": must not be negative`,
		},
		"backend prefix without slash is not control": {
			method:     http.MethodGet,
			target:     "/__backend",
			wantStatus: http.StatusOK,
			wantReply:  Reply{Service: "candidate", Method: "GET", Path: "/__backend"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newTestServer("candidate")
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.requestID != "" {
				req.Header.Set("X-Request-Id", tc.requestID)
			}
			rec := serve(s, req)

			assert.Equal(t, tc.wantStatus, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, "candidate", rec.Header().Get(HeaderBackend))
			assert.Equal(t, tc.requestID, rec.Header().Get(HeaderRequestID))
			if tc.requestID == "" {
				assert.NotContains(t, rec.Header(), http.CanonicalHeaderKey(HeaderRequestID))
			}

			var got Reply
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			if tc.wantError != "" {
				assert.Contains(t, got.Error, tc.wantError)
				got.Error = ""
			}
			assert.Equal(t, tc.wantReply, got)
			assert.Equal(t, 1, s.Count())
		})
	}
}

func TestAnswerJSONFields(t *testing.T) {
	s := newTestServer("legacy")
	req := httptest.NewRequest(http.MethodGet, "/a", nil)
	req.Header.Set("X-Request-Id", "r1")
	rec := serve(s, req)
	assert.JSONEq(t, `{"service":"legacy","method":"GET","path":"/a","request_id":"r1"}`, rec.Body.String())

	rec = serve(s, httptest.NewRequest(http.MethodGet, "/a", nil))
	assert.JSONEq(t, `{"service":"legacy","method":"GET","path":"/a","request_id":""}`, rec.Body.String())
}

func TestSleepDuration(t *testing.T) {
	tests := map[string]struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		"absent":         {value: "", want: 0},
		"zero":           {value: "0s", want: 0},
		"milliseconds":   {value: "250ms", want: 250 * time.Millisecond},
		"exactly cap":    {value: "10s", want: MaxSleep},
		"above cap":      {value: "1h", want: MaxSleep},
		"negative":       {value: "-5ms", wantErr: "must not be negative"},
		"missing unit":   {value: "250", wantErr: "not a duration"},
		"not a duration": {value: "later", wantErr: "not a duration"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := sleepDuration(tc.value, MaxSleep)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSleep(t *testing.T) {
	tests := map[string]struct {
		target   string
		maxSleep time.Duration
		atLeast  time.Duration
	}{
		"waits the asked duration": {target: "/slow?sleep=50ms", maxSleep: MaxSleep, atLeast: 50 * time.Millisecond},
		"capped":                   {target: "/slow?sleep=1h", maxSleep: 30 * time.Millisecond, atLeast: 30 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newTestServer("legacy")
			s.maxSleep = tc.maxSleep
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()

			start := time.Now()
			rec := serve(s, httptest.NewRequestWithContext(ctx, http.MethodGet, tc.target, nil))
			elapsed := time.Since(start)

			require.NoError(t, ctx.Err(), "handler outlived the cap")
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.GreaterOrEqual(t, elapsed, tc.atLeast)
		})
	}
}

func TestSleepCancelled(t *testing.T) {
	s := newTestServer("legacy")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/slow?sleep=10s", nil))
	}()

	// The request is recorded before the sleep starts.
	require.Eventually(t, func() bool { return s.Count() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return after the request was cancelled")
	}
	assert.False(t, rec.Flushed)
	assert.Empty(t, rec.Body.String(), "a cancelled request gets no answer")
}

func TestControl(t *testing.T) {
	tests := map[string]struct {
		method     string
		path       string
		wantStatus int
		wantAllow  string
		wantBody   string // JSON; compared with JSONEq when set
		wantCount  int    // recorded requests afterwards (two are sent first)
	}{
		"health": {
			method:     http.MethodGet,
			path:       "/__backend/health",
			wantStatus: http.StatusOK,
			wantBody:   `{"name":"legacy","status":"ok"}`,
			wantCount:  2,
		},
		"health head": {
			method:     http.MethodHead,
			path:       "/__backend/health",
			wantStatus: http.StatusOK,
			wantCount:  2,
		},
		"reset": {
			method:     http.MethodPost,
			path:       "/__backend/reset",
			wantStatus: http.StatusOK,
			wantBody:   `{"name":"legacy","status":"reset"}`,
			wantCount:  0,
		},
		"reset needs post": {
			method:     http.MethodGet,
			path:       "/__backend/reset",
			wantStatus: http.StatusMethodNotAllowed,
			wantAllow:  "POST",
			wantCount:  2,
		},
		"received needs get": {
			method:     http.MethodPost,
			path:       "/__backend/received",
			wantStatus: http.StatusMethodNotAllowed,
			wantAllow:  "GET, HEAD",
			wantCount:  2,
		},
		"unknown endpoint": {
			method:     http.MethodGet,
			path:       "/__backend/nope",
			wantStatus: http.StatusNotFound,
			wantBody:   `{"name":"legacy","error":"unknown control endpoint /__backend/nope"}`,
			wantCount:  2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newTestServer("legacy")
			serve(s, httptest.NewRequest(http.MethodGet, "/one", nil))
			serve(s, httptest.NewRequest(http.MethodGet, "/two", nil))

			rec := serve(s, httptest.NewRequest(tc.method, tc.path, nil))

			assert.Equal(t, tc.wantStatus, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, "legacy", rec.Header().Get(HeaderBackend))
			assert.Equal(t, tc.wantAllow, rec.Header().Get("Allow"))
			if tc.wantBody != "" {
				assert.JSONEq(t, tc.wantBody, rec.Body.String())
			}
			assert.Equal(t, tc.wantCount, s.Count(), "control requests are never recorded")
		})
	}
}

func TestControlReceived(t *testing.T) {
	s := newTestServer("candidate")
	rec := serve(s, httptest.NewRequest(http.MethodGet, "/__backend/received", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"name":"candidate","dropped":0,"requests":[]}`, rec.Body.String())

	req := httptest.NewRequest(http.MethodPost, "/orders?id=7", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer secret")
	serve(s, req)
	rec = serve(s, httptest.NewRequest(http.MethodGet, "/__backend/received", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{
		"name": "candidate",
		"dropped": 0,
		"requests": [{
			"method": "POST",
			"path": "/orders",
			"query": "id=7",
			"headers": {"host": "example.com", "authorization": "[redacted]"},
			"body_bytes": 5,
			"at": "2026-03-01T12:00:00Z"
		}]
	}`, rec.Body.String())
	assert.NotContains(t, rec.Body.String(), "secret")

	var got Recording
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, Recording{Name: "candidate", Requests: s.Received()}, got)
}

func TestBound(t *testing.T) {
	tests := map[string]struct {
		limit       int
		sent        int
		wantPaths   []string
		wantDropped int
	}{
		"under limit": {limit: 3, sent: 2, wantPaths: []string{"/0", "/1"}},
		"at limit":    {limit: 3, sent: 3, wantPaths: []string{"/0", "/1", "/2"}},
		"over limit":  {limit: 3, sent: 5, wantPaths: []string{"/2", "/3", "/4"}, wantDropped: 2},
		"wraps twice": {limit: 3, sent: 8, wantPaths: []string{"/5", "/6", "/7"}, wantDropped: 5},
		"limit one":   {limit: 1, sent: 4, wantPaths: []string{"/3"}, wantDropped: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newTestServer("legacy")
			s.limit = tc.limit
			for i := range tc.sent {
				serve(s, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/%d", i), nil))
			}

			var paths []string
			for _, r := range s.Received() {
				paths = append(paths, r.Path)
			}
			assert.Equal(t, tc.wantPaths, paths, "oldest first")
			assert.Equal(t, len(tc.wantPaths), s.Count())
			assert.Equal(t, tc.wantDropped, s.Dropped())

			rec := serve(s, httptest.NewRequest(http.MethodGet, "/__backend/received", nil))
			var got Recording
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			assert.Equal(t, tc.wantDropped, got.Dropped)
			assert.Len(t, got.Requests, len(tc.wantPaths))

			s.Reset()
			assert.Zero(t, s.Count())
			assert.Zero(t, s.Dropped())
			assert.Empty(t, s.Received())

			serve(s, httptest.NewRequest(http.MethodGet, "/after", nil))
			require.Len(t, s.Received(), 1)
			assert.Equal(t, "/after", s.Received()[0].Path)
		})
	}
}

func TestReceivedIsCopy(t *testing.T) {
	s := newTestServer("legacy")
	req := httptest.NewRequest(http.MethodGet, "/a", nil)
	req.Header.Set("X-Test", "original")
	serve(s, req)

	got := s.Received()
	got[0].Path = "/changed"
	got[0].Headers["x-test"] = "changed"

	again := s.Received()
	assert.Equal(t, "/a", again[0].Path)
	assert.Equal(t, "original", again[0].Headers["x-test"])
	assert.NotNil(t, New("x").Received(), "empty, not nil")
}

func TestLifecycle(t *testing.T) {
	s := New("legacy")
	assert.Empty(t, s.Addr(), "no address before Start")
	require.NoError(t, s.Close(), "Close before Start")

	s = New("legacy")
	require.NoError(t, s.Start("127.0.0.1:0"))
	addr := s.Addr()
	require.NotEmpty(t, addr)
	assert.NotEqual(t, "127.0.0.1:0", addr)
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"))
	require.ErrorContains(t, s.Start("127.0.0.1:0"), "already started")

	client := &http.Client{Timeout: 5 * time.Second}
	tests := map[string]struct {
		method     string
		path       string
		wantStatus int
	}{
		"health":      {method: http.MethodGet, path: "/__backend/health", wantStatus: http.StatusOK},
		"answer":      {method: http.MethodGet, path: "/hello", wantStatus: http.StatusOK},
		"status path": {method: http.MethodPost, path: "/status/500", wantStatus: http.StatusInternalServerError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "http://"+addr+tc.path, nil)
			require.NoError(t, err)
			req.Header.Set("X-Request-Id", name)
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Equal(t, "legacy", resp.Header.Get(HeaderBackend))
		})
	}
	require.Equal(t, 2, s.Count())
	assert.Equal(t, addr, s.Received()[0].Headers["host"])

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")
	assert.Equal(t, addr, s.Addr(), "Addr still reports where it was bound")
	_, err := client.Get("http://" + addr + "/__backend/health")
	require.Error(t, err, "closed server must not answer")
	require.ErrorContains(t, s.Start("127.0.0.1:0"), "already started")
}

func TestStartError(t *testing.T) {
	tests := map[string]struct {
		addr string
	}{
		"malformed": {addr: "not an address"},
		"bad port":  {addr: "127.0.0.1:99999"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := New("legacy")
			err := s.Start(tc.addr)
			require.ErrorContains(t, err, "backend legacy: listen on")
			assert.Empty(t, s.Addr())
			assert.NoError(t, s.Close())
		})
	}
}

func TestStartAddressInUse(t *testing.T) {
	a := New("legacy")
	require.NoError(t, a.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = a.Close() })
	require.ErrorContains(t, New("candidate").Start(a.Addr()), "listen on")
}

func TestCloseCutsOffSleepers(t *testing.T) {
	s := New("legacy")
	s.shutdownTimeout = 50 * time.Millisecond
	require.NoError(t, s.Start("127.0.0.1:0"))

	errs := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow?sleep=10s")
		if err == nil {
			resp.Body.Close()
		}
		errs <- err
	}()
	require.Eventually(t, func() bool { return s.Count() == 1 }, 5*time.Second, time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the sleeping request")
	}
	select {
	case err := <-errs:
		require.Error(t, err, "the sleeping request was cut off")
	case <-time.After(5 * time.Second):
		t.Fatal("sleeping request never ended")
	}
}

func TestCloseWaitsForShortRequests(t *testing.T) {
	s := New("legacy")
	require.NoError(t, s.Start("127.0.0.1:0"))

	type result struct {
		status int
		err    error
	}
	results := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow?sleep=100ms")
		if err != nil {
			results <- result{err: err}
			return
		}
		resp.Body.Close()
		results <- result{status: resp.StatusCode}
	}()
	require.Eventually(t, func() bool { return s.Count() == 1 }, 5*time.Second, time.Millisecond)

	require.NoError(t, s.Close())
	r := <-results
	require.NoError(t, r.err, "in-flight request finishes during a graceful Close")
	assert.Equal(t, http.StatusOK, r.status)
}

func TestConcurrent(t *testing.T) {
	const workers, perWorker = 8, 200
	s := newTestServer("legacy")
	s.limit = 500 // small enough to wrap many times

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/w%d/%d", w, i), strings.NewReader("x"))
				req.Header.Set("Authorization", "secret")
				serve(s, req)
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, r := range s.Received() {
				if r.Headers["authorization"] != Redacted {
					t.Errorf("unredacted request %+v", r)
					return
				}
			}
			_ = s.Count()
			_ = s.Dropped()
			serve(s, httptest.NewRequest(http.MethodGet, "/__backend/received", nil))
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()

	assert.Equal(t, 500, s.Count())
	assert.Equal(t, workers*perWorker-500, s.Dropped())

	// Reset racing with writers must leave a consistent recording.
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if w == 0 && i%20 == 0 {
					s.Reset()
					continue
				}
				serve(s, httptest.NewRequest(http.MethodGet, "/again", nil))
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, s.Count(), 500)
	assert.Len(t, s.Received(), s.Count())
}

func TestAPI(t *testing.T) {
	now := time.Date(2026, 11, 22, 17, 0, 0, 0, time.UTC)
	decode := func(t *testing.T, b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	tests := map[string]struct {
		path       string
		candidate  bool
		wantStatus int
		check      func(t *testing.T, body map[string]any)
		wantDelay  time.Duration
	}{
		"legacy record": {path: "/billing/records/8", wantStatus: 200, check: func(t *testing.T, b map[string]any) {
			rec := b["record"].(map[string]any)
			assert.Equal(t, "EUR", rec["currency"])
			assert.Equal(t, 12.5*9, rec["amount"])
			assert.NotEmpty(t, b["request_uuid"])
			assert.Equal(t, "2026-11-22T17:00:00Z", b["generated_at"])
		}},
		"candidate renames currency when n%4==0": {path: "/billing/records/8", candidate: true, wantStatus: 200, check: func(t *testing.T, b map[string]any) {
			rec := b["record"].(map[string]any)
			assert.NotContains(t, rec, "currency")
			assert.Equal(t, "EUR", rec["currency_code"])
			assert.InDelta(t, 12.5*9+0.0004, rec["amount"], 1e-9)
		}},
		"candidate keeps currency otherwise": {path: "/billing/records/9", candidate: true, wantStatus: 200, check: func(t *testing.T, b map[string]any) {
			assert.Equal(t, "EUR", b["record"].(map[string]any)["currency"])
		}},
		"candidate order total off when n%3==0": {path: "/orders/3", candidate: true, wantStatus: 200, wantDelay: SlowerDelay, check: func(t *testing.T, b map[string]any) {
			o := b["order"].(map[string]any)
			assert.Equal(t, round2(102.9*1.02), o["total"])
			assert.Equal(t, "normal", o["priority"])
		}},
		"legacy order": {path: "/orders/3", wantStatus: 200, check: func(t *testing.T, b map[string]any) {
			assert.Equal(t, 102.9, b["order"].(map[string]any)["total"])
		}},
		"candidate 404 on users n%10==7": {path: "/users/17", candidate: true, wantStatus: 404},
		"legacy user 17":                 {path: "/users/17", wantStatus: 200},
		"other path":                     {path: "/static/x", candidate: true, wantStatus: 200},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ans := API{Candidate: tt.candidate}.Answer("GET", tt.path, now)
			assert.Equal(t, tt.wantStatus, ans.Status)
			assert.Equal(t, tt.wantDelay, ans.Delay)
			m := decode(t, ans.Body)
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
	assert.Empty(t, API{}.Answer("HEAD", "/users/1", now).Body, "HEAD has no body")

	gz := API{}.Answer("GET", "/gz/users/1", now)
	require.True(t, gz.Gzip)
	zr, err := gzip.NewReader(bytes.NewReader(gz.Body))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, API{}.Answer("GET", "/users/1", now).Body, plain)
	assert.Len(t, decode(t, API{}.Answer("GET", "/large/5000", now).Body)["blob"], 5000)
}
