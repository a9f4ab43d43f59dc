package pair

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shadowlab/shadowlab/wire"
)

// FuzzCaptureHandler: any capture batch is answered without a panic, and
// whatever it offers keeps the pairer within MaxPending and
// MaxPendingBytes.
func FuzzCaptureHandler(f *testing.F) {
	var batch []byte
	for i, route := range []string{"r", "r", "nope", "r"} {
		batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: route, RequestID: string(rune('a' + i%2)), Method: "GET", Target: "/x",
			Status: 200, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"a":1}`)})
	}
	f.Add(batch)
	f.Add(batch[:len(batch)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, _ := newTestPairer(t, Config{MaxPending: 3, MaxPendingBytes: 2000, QueueSize: 64})
		w := httptest.NewRecorder()
		p.CaptureHandler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, wire.CapturePath, bytes.NewReader(body)))
		if w.Code != http.StatusNoContent && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d", w.Code)
		}
		for len(p.in) > 0 {
			h := <-p.in
			p.add(&h)
			if len(p.pending) > p.cfg.MaxPending || p.bytes > p.cfg.MaxPendingBytes {
				t.Fatalf("pending %d ids, %d bytes: over the caps", len(p.pending), p.bytes)
			}
		}
	})
}
