package xds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	runtimesvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/shadowlab/shadowlab/policy"
)

// Log field keys (STYLE.md: snake_case, constants).
const (
	logVersion  = "version"
	logNodeID   = "node_id"
	logTypeURL  = "type_url"
	logStreamID = "stream_id"
	logNonce    = "nonce"
	logTook     = "took"
)

// fleet is the snapshot cache's node hash: every Envoy that bootstraps
// against shadowlab gets the same snapshot, whatever its node id.
type fleet struct{}

func (fleet) ID(*corev3.Node) string { return "shadowlab" }

// Server is the xDS control plane: an ADS server (state of the world and
// delta on one port) over snapshot caches that only ever hold a snapshot
// that translated, validated and was consistent.
//
// Each policy is translated twice, from the same route pieces: in one
// route table per listener for state-of-the-world streams, and with the
// listeners that allow it scoped by first path segment (Options.ScopeAt)
// for delta streams. Over delta xDS a scoped edit sends Envoy one small
// route configuration; over state of the world every route configuration
// of the type is sent again on any change, and ten thousand small ones
// weigh more than one table (measured: 5.4 MB against 4.2 MB for one route
// edited of 10 000), so state-of-the-world Envoys keep the table.
type Server struct {
	log    *zap.Logger
	opts   Options
	table  *Translator           // for state-of-the-world streams
	scoped *Translator           // for delta streams
	cache  cachev3.SnapshotCache // state of the world
	routes cachev3.SnapshotCache // state of the world, route configurations (streams)
	delta  cachev3.SnapshotCache
	// services are more gRPC services served beside xDS (Also).
	services []func(*grpc.Server)

	policy  atomic.Pointer[policy.Policy] // last good policy
	nacks   atomic.Int64
	refused atomic.Int64
	dropped atomic.Int64 // log lines over logBurst per second, not written

	mu          sync.Mutex
	version     string
	snapshot    *cachev3.Snapshot
	publishedAt time.Time
	nodes       map[int64]string     // stream id → node id
	sent        map[sentKey]response // last SotW response per stream and type
	subscribed  map[sentKey]bool     // the types each stream subscribed to (logged once each)
}

type sentKey struct {
	stream  int64
	typeURL string
}

type response struct{ nonce, version string }

// NewServer returns a control plane with nothing published yet.
func NewServer(opts Options, log *zap.Logger) *Server {
	table := opts
	table.ScopeAt = -1
	s := &Server{opts: opts, table: NewTranslator(table), nodes: map[int64]string{}, sent: map[sentKey]response{}, subscribed: map[sentKey]bool{}}
	s.scoped = s.table.WithScopeAt(opts.ScopeAt)
	s.log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, logBurst, 0, zapcore.SamplerHook(func(_ zapcore.Entry, d zapcore.SamplingDecision) {
			if d&zapcore.LogDropped != 0 {
				s.dropped.Add(1)
			}
		}))
	}))
	s.cache = cachev3.NewSnapshotCache(true, fleet{}, s.log.Named("cache").Sugar())
	s.routes = cachev3.NewSnapshotCache(false, fleet{}, s.log.Named("cache").Sugar())
	s.delta = cachev3.NewSnapshotCache(true, fleet{}, s.log.Named("cache").Sugar())
	return s
}

// What a peer on the xDS port can make the control plane log is bounded:
// each message at most logBurst times a second (the rest are counted, not
// written), and each string a peer sent at most maxLogged bytes.
const (
	logBurst  = 20
	maxLogged = 1024
)

// clip is s for a log line: at most maxLogged bytes, the rest counted.
func clip(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes more)", strings.ToValidUTF8(s[:maxLogged], ""), len(s)-maxLogged)
}

// Publish translates p (incrementally: only the routes that changed since
// the last policy) and, only if translation, validation and the
// consistency check all succeed, makes it the snapshot every Envoy receives.
// On error nothing changes: Envoy keeps the last good config.
func (s *Server) Publish(ctx context.Context, p *policy.Policy) (string, error) {
	snap, version, err := translated(s.table, p)
	if err != nil {
		return "", err
	}
	scoped, _, err := translated(s.scoped, p)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == s.version {
		return version, nil
	}
	// The route configurations last: their responses follow the clusters'
	// and listeners' on the stream, as ADS orders them.
	for _, c := range []cachev3.SnapshotCache{s.cache, s.routes} {
		if err := c.SetSnapshot(ctx, fleet{}.ID(nil), snap); err != nil {
			return "", fmt.Errorf("setting snapshot: %w", err)
		}
	}
	if err := s.delta.SetSnapshot(ctx, fleet{}.ID(nil), scoped); err != nil {
		return "", fmt.Errorf("setting snapshot: %w", err)
	}
	s.version, s.snapshot, s.publishedAt = version, snap, time.Now()
	s.policy.Store(p)
	return version, nil
}

// translated is p's snapshot by translator t, and its version.
func translated(t *Translator, p *policy.Policy) (*cachev3.Snapshot, string, error) {
	res, err := t.Translate(p)
	if err != nil {
		return nil, "", fmt.Errorf("translating policy: %w", err)
	}
	snap, err := res.Snapshot()
	if err != nil {
		return nil, "", err
	}
	version, err := res.Version()
	return snap, version, err
}

// streams serves each kind of stream from its own cache: state of the
// world from the table snapshot, delta from the scoped one. A state-of-the-
// world request for route configurations goes to a cache out of ADS mode,
// which answers the names asked for: in ADS mode go-control-plane answers
// only a request that names every route configuration of the snapshot, and
// drops the others, expecting Envoy to ask again — which Envoy does only
// when its listeners change. So after Envoy refused a listener (a port
// another process holds: a NACK), the snapshot held routes Envoy never asks
// for, Envoy's route request was dropped, and no later route edit reached
// it until it reconnected (TestNACKKeepsLastGood).
type streams struct {
	cachev3.SnapshotCache // state of the world, and fetch
	routes, delta         cachev3.SnapshotCache
}

func (c streams) CreateWatch(r *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	if r.GetTypeUrl() == resourcev3.RouteType {
		return c.routes.CreateWatch(r, sub, out)
	}
	return c.SnapshotCache.CreateWatch(r, sub, out)
}

func (c streams) CreateDeltaWatch(r *cachev3.DeltaRequest, sub cachev3.Subscription, out chan cachev3.DeltaResponse) (func(), error) {
	return c.delta.CreateDeltaWatch(r, sub, out)
}

// Policy is the last policy published (nil before the first).
func (s *Server) Policy() *policy.Policy { return s.policy.Load() }

// Version is the content version of the last published snapshot.
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// NACKs counts configuration rejections reported by Envoys.
func (s *Server) NACKs() int64 { return s.nacks.Load() }

// Refuse records a policy change that was not published (it did not load,
// or did not translate); the last good snapshot keeps serving.
func (s *Server) Refuse(error) { s.refused.Add(1) }

// Refused counts policy changes that were not published.
func (s *Server) Refused() int64 { return s.refused.Load() }

// Also serves another gRPC service beside xDS, on the same port and with
// the same credentials (the rollout's access logs). Call it before Serve.
func (s *Server) Also(register func(*grpc.Server)) { s.services = append(s.services, register) }

// Serve runs the ADS gRPC server on lis until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	srv := serverv3.NewServer(ctx, streams{s.cache, s.routes, s.delta}, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	runtimesvcv3.RegisterRuntimeDiscoveryServiceServer(g, srv)
	for _, register := range s.services {
		register(g)
	}

	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			g.Stop() // Envoy reconnects on its own; nothing to drain
		case <-done:
		}
	}()
	err := g.Serve(lis)
	close(done)
	if errors.Is(err, grpc.ErrServerStopped) || ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) callbacks() serverv3.CallbackFuncs {
	return serverv3.CallbackFuncs{
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.forget(id) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.forget(id) },
		StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
			s.oldBootstrap(id, r.GetTypeUrl(), r.GetResourceNames())
			rejected := ""
			if r.GetErrorDetail() != nil {
				rejected = s.parkNACK(id, r)
			}
			s.onRequest(id, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), r.GetVersionInfo(), rejected, r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.sent[sentKey{id, resp.GetTypeUrl()}] = response{resp.GetNonce(), resp.GetVersionInfo()}
		},
		StreamDeltaRequestFunc: func(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.oldBootstrap(id, r.GetTypeUrl(), r.GetResourceNamesSubscribe())
			s.onRequest(id, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), "", "", r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
			return nil
		},
	}
}

// parkNACK stops a state-of-the-world NACK loop. A NACK carries the version
// Envoy still runs, so the snapshot cache would answer it at once with the
// very config Envoy just refused, forever. When the refused response is the
// current snapshot's, the request is marked as being at that version: the
// watch then waits for the next publish. It returns the refused version.
func (s *Server) parkNACK(stream int64, r *discoveryv3.DiscoveryRequest) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.sent[sentKey{stream, r.GetTypeUrl()}]
	if !ok || last.nonce != r.GetResponseNonce() {
		return ""
	}
	if s.snapshot != nil && s.snapshot.GetVersion(r.GetTypeUrl()) == last.version {
		r.VersionInfo = last.version
	}
	return last.version
}

// onRequest logs what an Envoy says about the last response on a stream:
// a NACK (counted, logged with Envoy's error) or an ACK (logged with the time
// since the snapshot was published).
func (s *Server) onRequest(stream int64, node *corev3.Node, typeURL, nonce, version, rejected, nackMsg string, nack bool) {
	s.mu.Lock()
	if node.GetId() != "" {
		s.nodes[stream] = clip(node.GetId())
	}
	nodeID, took := s.nodes[stream], time.Since(s.publishedAt)
	first := false
	if nonce == "" && !nack {
		k := sentKey{stream, typeURL}
		first = !s.subscribed[k]
		s.subscribed[k] = true
	}
	s.mu.Unlock()

	fields := []zap.Field{zap.String(logNodeID, nodeID), zap.String(logTypeURL, clip(typeURL)), zap.Int64(logStreamID, stream)}
	switch {
	case nack:
		s.nacks.Add(1)
		s.log.Error("envoy rejected configuration (NACK); it keeps running its previous one", append(fields,
			zap.String(logNonce, clip(nonce)), zap.String("rejected_version", rejected), zap.String("error", clip(nackMsg)))...)
	case nonce == "":
		// Once per stream and type at Info: a type of many named
		// resources (the runtime layers) is subscribed to one by one.
		lvl := zap.DebugLevel
		if first {
			lvl = zap.InfoLevel
		}
		if ce := s.log.Check(lvl, "envoy subscribed"); ce != nil {
			ce.Write(fields...)
		}
	default:
		if ce := s.log.Check(zap.InfoLevel, "envoy applied configuration"); ce != nil {
			ce.Write(append(fields, zap.String(logVersion, clip(version)), zap.Duration(logTook, took))...)
		}
	}
}

// oldBootstrap warns about an Envoy that asks for the single runtime layer
// of bootstraps made before the percentages were split into
// RuntimeShards layers: it is never answered and mirrors nothing until its
// bootstrap is regenerated.
func (s *Server) oldBootstrap(stream int64, typeURL string, names []string) {
	if typeURL != resourcev3.RuntimeType || !slices.Contains(names, RuntimeLayer) {
		return
	}
	s.mu.Lock()
	node := s.nodes[stream]
	s.mu.Unlock()
	s.log.Error("this Envoy's bootstrap predates the split runtime layers and is not sent its mirror percentages (it mirrors nothing): regenerate it with `shadowlab bootstrap`",
		zap.String(logNodeID, node), zap.Int64(logStreamID, stream))
}

func (s *Server) forget(stream int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, stream)
	for k := range s.sent {
		if k.stream == stream {
			delete(s.sent, k)
		}
	}
	for k := range s.subscribed {
		if k.stream == stream {
			delete(s.subscribed, k)
		}
	}
}

// RegisterMetrics exposes the control plane's counters on reg.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shadowlab_xds_nacks_total", Help: "Configurations Envoys rejected (NACK).",
		}, func() float64 { return float64(s.nacks.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shadowlab_xds_log_dropped_total", Help: "Control-plane log lines not written: the same message over 20 times in a second.",
		}, func() float64 { return float64(s.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shadowlab_policy_refused_total", Help: "Policy edits refused (invalid or untranslatable); the last good policy kept serving.",
		}, func() float64 { return float64(s.refused.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shadowlab_xds_streams", Help: "Envoy xDS streams open.",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.nodes))
		}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering xds metrics: %w", err)
		}
	}
	return nil
}
