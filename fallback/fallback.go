// Package fallback counts what happens to the requests a rollout's
// candidate is asked to answer. Envoy logs them over gRPC (the access log
// service, on serve's xDS port; see xds/rollout.go): one entry per failed
// attempt (the router's upstream log) and one per request at its end (the
// connection manager's). The first failed attempt of a request is the
// candidate's (its first attempt always goes there) and says why; the
// request's entry says whether it was retried on the primary (two
// attempts) and whether its user got an error all the same.
package fallback

import (
	"errors"
	"io"
	"sync"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// Recorder is what the counts go to (report.Reporter).
type Recorder interface {
	Candidate(route, tenant, reason string, failed bool)
}

// Bounds of the failed attempts waiting for their request's entry.
const (
	maxPending = 10_000
	pendingTTL = 30 * time.Second
)

// Server is the access log service that counts the candidate's requests.
type Server struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	rec Recorder
	now func() time.Time
	log *zap.Logger

	mu      sync.Mutex
	pol     *policy.Policy
	pending map[string]attempt // request ID → its first failed attempt
}

type attempt struct {
	reason string
	at     time.Time
}

// New returns a server counting into rec.
func New(rec Recorder, now func() time.Time, log *zap.Logger) *Server {
	return &Server{rec: rec, now: now, log: log, pending: map[string]attempt{}}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { accesslogv3.RegisterAccessLogServiceServer(g, s) }

// Use makes p the policy entries are read under: only its routes whose
// candidate answers users are counted.
func (s *Server) Use(p *policy.Policy) {
	s.mu.Lock()
	s.pol = p
	s.mu.Unlock()
}

// StreamAccessLogs reads one Envoy's stream until it ends.
func (s *Server) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if id := msg.GetIdentifier(); id != nil && id.GetLogName() != "" && id.GetLogName() != wire.RolloutLogName {
			continue // not ours
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			s.Entry(e)
		}
	}
}

// Entry counts one log entry.
func (s *Server) Entry(e *accesslogdatav3.HTTPAccessLogEntry) {
	req, common := e.GetRequest(), e.GetCommonProperties()
	headers := req.GetRequestHeaders()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pol == nil {
		return
	}
	r := s.pol.Route(headers[wire.HeaderCanary])
	if r == nil || !r.Candidate() {
		return
	}
	now := s.now()
	id := req.GetRequestId()
	if common.GetAccessLogType() == accesslogdatav3.AccessLogType_UpstreamEnd {
		if _, seen := s.pending[id]; !seen && id != "" {
			s.evict(now)
			if len(s.pending) < maxPending {
				s.pending[id] = attempt{reason: Reason(e), at: now}
			}
		}
		return
	}
	first, had := s.pending[id]
	delete(s.pending, id)
	reason := ""
	if common.GetUpstreamRequestAttemptCount() >= 2 {
		reason = report.ReasonOther
		if had {
			reason = first.reason
		}
	}
	// A user who went away (downstream connection termination) got no
	// answer, but not because of the candidate.
	code := e.GetResponse().GetResponseCode().GetValue()
	failed := code >= 500 || code == 0 && !common.GetResponseFlags().GetDownstreamConnectionTermination()
	tenant := ""
	if h := r.TenantHeader(); h != "" {
		tenant = r.TenantOf(headers[h])
	}
	if failed {
		s.log.Debug("candidate request failed for its user", zap.String("route", r.Name), zap.String("request_id", id),
			zap.Uint32("code", code), zap.String("flags", e.GetCommonProperties().GetResponseFlags().String()), zap.Uint32("attempts", common.GetUpstreamRequestAttemptCount()), zap.String("path", req.GetPath()), zap.String("method", req.GetRequestMethod().String()))
	}
	s.rec.Candidate(r.Name, tenant, reason, failed)
}

// evict drops the failed attempts older than pendingTTL (their request's
// entry never came). The caller holds s.mu.
func (s *Server) evict(now time.Time) {
	if len(s.pending) < maxPending/2 {
		return
	}
	for id, a := range s.pending {
		if now.Sub(a.at) > pendingTTL {
			delete(s.pending, id)
		}
	}
}

// Reason is why a failed attempt failed: connect_failure, timeout, reset
// or 5xx (report's reasons), else other.
func Reason(e *accesslogdatav3.HTTPAccessLogEntry) string {
	f := e.GetCommonProperties().GetResponseFlags()
	switch {
	case f.GetUpstreamConnectionFailure() || f.GetUpstreamOverflow() || f.GetNoHealthyUpstream():
		return report.ReasonConnectFailure
	case f.GetUpstreamRequestTimeout():
		return report.ReasonTimeout
	case f.GetUpstreamRemoteReset() || f.GetUpstreamConnectionTermination() || f.GetLocalReset():
		return report.ReasonReset
	case e.GetResponse().GetResponseCode().GetValue() >= 500:
		return report.Reason5xx
	}
	return report.ReasonOther
}
