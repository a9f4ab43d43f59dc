package xds

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/shadowlab/shadowlab/policy"
)

func TestNACKsAreCountedAndLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s := NewServer(Options{}, zap.New(core))
	cb := s.callbacks()

	require.NoError(t, cb.StreamRequestFunc(1, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-a"}, TypeUrl: "t/Listener"}))
	require.NoError(t, cb.StreamRequestFunc(1, &discoveryv3.DiscoveryRequest{TypeUrl: "t/Listener", ResponseNonce: "1", VersionInfo: "v1"}))
	require.NoError(t, cb.StreamRequestFunc(1, &discoveryv3.DiscoveryRequest{
		TypeUrl: "t/Listener", ResponseNonce: "2", VersionInfo: "v1",
		ErrorDetail: &statuspb.Status{Message: "duplicate listener"},
	}))
	require.NoError(t, cb.StreamDeltaRequestFunc(2, &discoveryv3.DeltaDiscoveryRequest{
		Node: &corev3.Node{Id: "envoy-b"}, TypeUrl: "t/Cluster", ResponseNonce: "3",
		ErrorDetail: &statuspb.Status{Message: "bad cluster"},
	}))

	assert.Equal(t, int64(2), s.NACKs())
	nacks := logs.FilterMessageSnippet("NACK").All()
	require.Len(t, nacks, 2)
	assert.Equal(t, "envoy-a", nacks[0].ContextMap()[logNodeID], "node id remembered from the stream's first request")
	assert.Equal(t, "duplicate listener", nacks[0].ContextMap()["error"])
	assert.Equal(t, "bad cluster", nacks[1].ContextMap()["error"])
	assert.Len(t, logs.FilterMessage("envoy applied configuration").All(), 1)

	cb.StreamClosedFunc(1, nil)
	assert.NotContains(t, s.nodes, int64(1))
}

// A peer flooding the xDS port with NACKs is counted in full but bounds
// what it makes the control plane log: 20 lines a second per message, each
// of its strings clipped.
func TestNACKFloodBoundsTheLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s := NewServer(Options{}, zap.New(core))
	cb := s.callbacks()
	huge := strings.Repeat("x", 64<<10)
	for i := range 1000 {
		require.NoError(t, cb.StreamRequestFunc(int64(i), &discoveryv3.DiscoveryRequest{
			Node: &corev3.Node{Id: huge}, TypeUrl: "t/Listener", ResponseNonce: huge,
			ErrorDetail: &statuspb.Status{Message: huge},
		}))
	}
	assert.Equal(t, int64(1000), s.NACKs())
	lines := logs.FilterMessageSnippet("NACK").All()
	assert.LessOrEqual(t, len(lines), 2*logBurst, "at most one burst per second (two if the second turned)")
	assert.Equal(t, int64(1000-len(lines)), s.dropped.Load())
	for _, l := range lines {
		for k, v := range l.ContextMap() {
			if v, ok := v.(string); ok {
				assert.LessOrEqual(t, len(v), maxLogged+40, k)
			}
		}
	}
	assert.LessOrEqual(t, len(s.nodes[0]), maxLogged+40, "node ids are kept clipped")
}

func TestPublishKeepsLastGood(t *testing.T) {
	s := NewServer(Options{}, zap.NewNop())
	p := load(t, "testdata/basic.policy.yaml")
	v1, err := s.Publish(context.Background(), p)
	require.NoError(t, err)
	assert.Equal(t, v1, s.Version())
	assert.Same(t, p, s.Policy())

	same, err := s.Publish(context.Background(), load(t, "testdata/basic.policy.yaml"))
	require.NoError(t, err)
	assert.Equal(t, v1, same, "an identical policy is the same version")
	assert.Same(t, p, s.Policy(), "an identical policy is not republished")
}

// recorder is a Publisher that remembers what it was given.
type recorder struct {
	mu        sync.Mutex
	published []*policy.Policy
	refused   []error
}

func (r *recorder) Publish(_ context.Context, p *policy.Policy) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, p)
	return "v", nil
}

func (r *recorder) Refuse(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = append(r.refused, err)
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.published), len(r.refused)
}

func TestWatchPolicy(t *testing.T) {
	good, err := os.ReadFile("testdata/basic.policy.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(b []byte) { // atomically, as editors and ConfigMaps do
		require.NoError(t, os.WriteFile(path+".tmp", b, 0o600))
		require.NoError(t, os.Rename(path+".tmp", path))
	}
	write(good)

	core, logs := observer.New(zap.InfoLevel)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- WatchPolicy(ctx, path, rec, zap.New(core)) }()
	waitFor := func(published, refused int) {
		t.Helper()
		require.Eventually(t, func() bool {
			p, r := rec.counts()
			return p == published && r == refused
		}, 5*time.Second, 5*time.Millisecond)
	}
	waitFor(1, 0)

	write([]byte(strings.Replace(string(good), "percent: 10", "percent: 500", 1)))
	waitFor(1, 1)
	var perr *policy.Error
	require.ErrorAs(t, rec.refused[0], &perr)
	entries := logs.FilterMessageSnippet("policy invalid").All()
	require.Len(t, entries, 1)
	assert.Contains(t, fmt.Sprint(entries[0].ContextMap()["errors"]), `policy.yaml:13: routes[0].shadow.percent: must be between 0 and 100 (got 500)`)

	write([]byte(strings.Replace(string(good), "percent: 10", "percent: 20", 1)))
	waitFor(2, 1)
	assert.InDelta(t, 20, rec.published[1].Routes[0].Shadow.Percent, 0)

	// Writes in quick succession are read once, after the last.
	write([]byte(strings.Replace(string(good), "percent: 10", "percent: 20", 1)))
	write([]byte(strings.Replace(string(good), "percent: 10", "percent: 30", 1)))
	waitFor(3, 1)
	assert.InDelta(t, 30, rec.published[2].Routes[0].Shadow.Percent, 0)

	cancel()
	require.NoError(t, <-done)
}

func TestWatchPolicyFirstLoadIsFatal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: 2\n"), 0o600))
	err := WatchPolicy(context.Background(), path, &recorder{}, zap.NewNop())
	require.Error(t, err)
	assert.True(t, errors.Is(err, policy.ErrInvalid))

	err = WatchPolicy(context.Background(), filepath.Join(t.TempDir(), "missing.yaml"), &recorder{}, zap.NewNop())
	require.Error(t, err)
}

// TestParkNACK: a NACK of the current snapshot is parked (the request is
// marked as at that version, so the cache waits for the next publish instead
// of resending the refused config); a NACK of an older response is not.
func TestParkNACK(t *testing.T) {
	s := NewServer(Options{}, zap.NewNop())
	_, err := s.Publish(context.Background(), load(t, "testdata/basic.policy.yaml"))
	require.NoError(t, err)
	const routeType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	current := s.snapshot.GetVersion(routeType)
	require.NotEmpty(t, current)
	cb := s.callbacks()

	cb.StreamResponseFunc(context.Background(), 7, nil, &discoveryv3.DiscoveryResponse{TypeUrl: routeType, Nonce: "n1", VersionInfo: current})
	nack := &discoveryv3.DiscoveryRequest{TypeUrl: routeType, ResponseNonce: "n1", VersionInfo: "old", ErrorDetail: &statuspb.Status{Message: "no"}}
	require.NoError(t, cb.StreamRequestFunc(7, nack))
	assert.Equal(t, current, nack.VersionInfo, "parked at the refused (current) version")

	cb.StreamResponseFunc(context.Background(), 8, nil, &discoveryv3.DiscoveryResponse{TypeUrl: routeType, Nonce: "n2", VersionInfo: "older"})
	stale := &discoveryv3.DiscoveryRequest{TypeUrl: routeType, ResponseNonce: "n2", VersionInfo: "old", ErrorDetail: &statuspb.Status{Message: "no"}}
	require.NoError(t, cb.StreamRequestFunc(8, stale))
	assert.Equal(t, "old", stale.VersionInfo, "a NACK of a superseded response must let the current snapshot through")
	assert.Equal(t, int64(2), s.NACKs())
}
