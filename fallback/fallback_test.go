package fallback

import (
	"testing"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

type counted struct {
	route, tenant, reason string
	failed                bool
}

type recorder struct{ got []counted }

func (r *recorder) Candidate(route, tenant, reason string, failed bool) {
	r.got = append(r.got, counted{route, tenant, reason, failed})
}

const testPolicy = `
version: 1
listeners: [{name: ingress, address: "127.0.0.1:10000"}]
services:
  legacy: {endpoints: ["127.0.0.1:8081"]}
  candidate: {endpoints: ["127.0.0.1:8082"]}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    rollout: {stage: canary, percent: 10, tenants: {header: x-tenant, values: [acme]}}
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    rollout: {stage: shadow}
`

func entry(kind accesslogdatav3.AccessLogType, route, id, tenant string, code uint32, attempts uint32, flags *accesslogdatav3.ResponseFlags) *accesslogdatav3.HTTPAccessLogEntry {
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{AccessLogType: kind, UpstreamRequestAttemptCount: attempts, ResponseFlags: flags},
		Request: &accesslogdatav3.HTTPRequestProperties{RequestId: id,
			RequestHeaders: map[string]string{wire.HeaderCanary: route, "x-tenant": tenant}},
		Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(code)},
	}
}

func TestEntries(t *testing.T) {
	p, err := policy.Parse([]byte(testPolicy), "p.yaml")
	require.NoError(t, err)
	rec := &recorder{}
	s := New(rec, time.Now, zap.NewNop())
	s.Entry(entry(accesslogdatav3.AccessLogType_DownstreamEnd, "orders", "a", "acme", 200, 1, nil)) // before any policy: dropped
	s.Use(p)
	up, down := accesslogdatav3.AccessLogType_UpstreamEnd, accesslogdatav3.AccessLogType_DownstreamEnd
	uf := &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true}
	ut := &accesslogdatav3.ResponseFlags{UpstreamRequestTimeout: true}
	for _, e := range []*accesslogdatav3.HTTPAccessLogEntry{
		entry(down, "orders", "1", "acme", 200, 1, nil), // answered by the candidate
		entry(up, "orders", "2", "acme", 503, 0, nil),   // 5xx, then the primary
		entry(down, "orders", "2", "acme", 200, 2, nil),
		entry(up, "orders", "3", "initech", 0, 0, uf), // connection refused, then the primary
		entry(down, "orders", "3", "initech", 200, 2, nil),
		entry(up, "orders", "4", "acme", 0, 0, ut), // timeout, then the primary failed too
		entry(up, "orders", "4", "acme", 503, 0, nil),
		entry(down, "orders", "4", "acme", 503, 2, nil),
		entry(down, "orders", "5", "acme", 200, 2, nil),                                                                 // retried, its failed attempt not seen
		entry(down, "orders", "6", "acme", 0, 1, nil),                                                                   // reset, not retried (an unsafe method)
		entry(down, "orders", "9", "acme", 0, 1, &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}), // the user left
		entry(down, "users", "7", "acme", 200, 1, nil),                                                                  // in shadow: not the candidate's
		entry(down, "nowhere", "8", "acme", 200, 1, nil),                                                                // not a route
	} {
		s.Entry(e)
	}
	require.Equal(t, []counted{
		{"orders", "acme", "", false},
		{"orders", "acme", report.Reason5xx, false},
		{"orders", policy.OtherTenant, report.ReasonConnectFailure, false},
		{"orders", "acme", report.ReasonTimeout, true},
		{"orders", "acme", report.ReasonOther, false},
		{"orders", "acme", "", true},
		{"orders", "acme", "", false},
	}, rec.got)
	require.Empty(t, s.pending, "every failed attempt was matched to its request")
}
