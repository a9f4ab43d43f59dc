package extproc

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// fakePairer keeps what the capture server hands it.
type fakePairer struct {
	halves  []pair.Half
	dropped []string
}

func (f *fakePairer) Offer(h pair.Half)  { f.halves = append(f.halves, h) }
func (f *fakePairer) Drop(reason string) { f.dropped = append(f.dropped, reason) }

const capturePolicy = `
version: 1
listeners: [{name: l, address: "127.0.0.1:10000"}]
services: {a: {endpoints: ["127.0.0.1:1"]}, b: {endpoints: ["127.0.0.1:2"]}}
routes:
  - name: r
    match: {pathPrefix: /}
    primary: a
    shadow: {service: b, percent: 100}
    compare: {maxBodyBytes: 64}
`

var t0 = time.Date(2026, 11, 22, 17, 0, 0, 0, time.UTC)

func headers(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func reqHeaders(h *corev3.HeaderMap) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: h}}}
}

func respHeaders(h *corev3.HeaderMap, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: h, EndOfStream: eos}}}
}

func respBody(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// wantHalf is what a test expects of a captured half.
type wantHalf struct {
	Status     int
	Body       string
	BodyBytes  int64
	TooLarge   bool
	Incomplete string
}

func TestCapture(t *testing.T) {
	request := reqHeaders(headers(":method", "GET", ":path", "/a/b?token=secret", "x-request-id", "id-1"))
	response := respHeaders(headers(":status", "201", "content-type", "application/json", "content-type", "second"), false)
	tests := map[string]struct {
		route, side string
		messages    []*extprocv3.ProcessingRequest
		end         bool // the stream closes after the messages
		want        *wantHalf
	}{
		"complete half": {
			route: "r", side: "shadow",
			messages: []*extprocv3.ProcessingRequest{request, response, respBody(`{"a":`, false), respBody(`1}`, true)},
			want:     &wantHalf{Status: 201, Body: `{"a":1}`, BodyBytes: 7},
		},
		"headers-only response": {
			route: "r", side: "primary",
			messages: []*extprocv3.ProcessingRequest{request, respHeaders(headers(":status", "204"), true)},
			want:     &wantHalf{Status: 204},
		},
		"body over the limit is dropped, not truncated": {
			route: "r", side: "primary",
			messages: []*extprocv3.ProcessingRequest{request, response, respBody(string(make([]byte, 60)), false), respBody(string(make([]byte, 10)), true)},
			want:     &wantHalf{Status: 201, BodyBytes: 70, TooLarge: true},
		},
		"no response before the stream closed": {
			route: "r", side: "shadow",
			messages: []*extprocv3.ProcessingRequest{request},
			end:      true,
			want:     &wantHalf{Incomplete: "no response (upstream reset, timed out or refused)"},
		},
		"body cut short": {
			route: "r", side: "shadow",
			messages: []*extprocv3.ProcessingRequest{request, response, respBody("{", false)},
			end:      true,
			want:     &wantHalf{Status: 201, Body: "{", BodyBytes: 1, Incomplete: "response body cut short"},
		},
		"unknown route is ignored": {
			route: "nope", side: "primary",
			messages: []*extprocv3.ProcessingRequest{request, respHeaders(headers(":status", "200"), true)},
		},
		"unknown side is ignored": {
			route: "r", side: "sideways",
			messages: []*extprocv3.ProcessingRequest{request, respHeaders(headers(":status", "200"), true)},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := &fakePairer{}
			now := t0
			s := NewServer(p, func() time.Time { return now }, zap.NewNop())
			pol, err := policy.Parse([]byte(capturePolicy), "capture.yaml")
			require.NoError(t, err)
			s.Use(pol)
			c := s.newCapture(tt.route, tt.side)
			for _, m := range tt.messages {
				now = now.Add(time.Millisecond)
				c.handle(m, now)
			}
			if tt.end {
				c.end(now)
			}
			if tt.want == nil {
				assert.Empty(t, p.halves)
				return
			}
			require.Len(t, p.halves, 1)
			got := p.halves[0]
			assert.Equal(t, tt.route, got.Route)
			assert.Equal(t, tt.side, got.Side.String())
			assert.Equal(t, "id-1", got.RequestID)
			assert.Equal(t, "GET", got.Method)
			assert.Equal(t, "/a/b", got.Path, "the query string is not kept")
			assert.NotEmpty(t, got.Fingerprint)
			assert.Equal(t, tt.want.Status, got.Response.Status)
			assert.Equal(t, tt.want.Body, string(got.Response.Body))
			assert.Equal(t, tt.want.BodyBytes, got.BodyBytes)
			assert.Equal(t, tt.want.TooLarge, got.TooLarge)
			assert.Equal(t, tt.want.Incomplete, got.Incomplete)
			if tt.want.Status == 201 {
				assert.Equal(t, "application/json", got.Response.Headers["content-type"], "first value wins")
				assert.Equal(t, time.Millisecond, got.Latency)
			}
		})
	}
}
