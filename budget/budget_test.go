package budget

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/internal/redistest"
)

var burstCfg = admission.Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: admission.ModeDelay}

func startRedis(t *testing.T) *redistest.Server { return redistest.Start(t) }

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(Config{URL: url, Timeout: 200 * time.Millisecond}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestReplicasShareOneBudget: a burst of 1 000 at one instant, decided
// concurrently by three replicas, is scheduled as one budget of 100/s.
func TestReplicasShareOneBudget(t *testing.T) {
	r := startRedis(t)
	var budgets []*Budget
	for range 3 {
		b, err := open(t, r.URL).Budget("jobs", burstCfg)
		require.NoError(t, err)
		budgets = append(budgets, b)
	}
	now := time.Now()
	releases := make([]time.Time, 1000)
	var wg sync.WaitGroup
	for i := range releases {
		wg.Go(func() {
			d, err := budgets[i%3].Decide(context.Background(), "tenant-a", now)
			if !assert.NoError(t, err) {
				return
			}
			assert.NotEqual(t, admission.Reject, d.Action, "request %d refused: 1 000 fit in 15 s at 100/s", i)
			releases[i] = now.Add(d.Delay)
		})
	}
	wg.Wait()
	slices.SortFunc(releases, func(a, b time.Time) int { return a.Compare(b) })
	most, from := admission.MostInWindow(releases, time.Second)
	assert.LessOrEqual(t, most, 100, "releases in the second from %s", from.Sub(now))
	assert.InDelta(t, 10*time.Second, releases[len(releases)-1].Sub(now), float64(50*time.Millisecond), "the burst drains at 100/s")
	var conflicts uint64
	for _, b := range budgets {
		conflicts += b.s.Stats().Conflicts
	}
	t.Logf("conflicts: %d (of 1000 decisions)", conflicts)
}

// TestReleaseBoundAcrossReplicas: releases counted by two replicas share
// one window.
func TestReleaseBoundAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	cfg := admission.Config{Limit: 10, Window: time.Second, MaxDelay: 5 * time.Second, Mode: admission.ModeDelay}
	a, err := open(t, r.URL).Budget("jobs", cfg)
	require.NoError(t, err)
	b, err := open(t, r.URL).Budget("jobs", cfg)
	require.NoError(t, err)
	now := time.Now()
	passed := 0
	for i := range 30 { // all released at the same instant, as after a stall
		budget := []*Budget{a, b}[i%2]
		wait, err := budget.Release(context.Background(), "k", now)
		require.NoError(t, err)
		if wait == 0 {
			passed++
		} else {
			assert.LessOrEqual(t, wait, time.Second)
		}
	}
	assert.Equal(t, 10, passed, "one window for both replicas")
}

// TestKeysInRedis: the key's value is hashed, the route and a config hash
// name the key, and it expires when the State would be idle.
func TestKeysInRedis(t *testing.T) {
	r := startRedis(t)
	s := open(t, r.URL)
	b, err := s.Budget("billing", burstCfg)
	require.NoError(t, err)
	_, err = b.Decide(context.Background(), "Bearer secret-token", time.Now())
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.True(t, strings.HasPrefix(keys[0], DefaultPrefix+"billing/"), keys[0])
	assert.NotContains(t, keys[0], "secret")
	v, err := c.Get(context.Background(), keys[0]).Result()
	require.NoError(t, err)
	assert.Len(t, v, admission.StateSize)
	assert.NotContains(t, v, "secret")
	ttl, err := c.PTTL(context.Background(), keys[0]).Result()
	require.NoError(t, err)
	assert.InDelta(t, burstCfg.IdleAfter(), ttl, float64(time.Second))

	// Another config for the same route: other keys (a State belongs to
	// one Config).
	other := burstCfg
	other.Limit = 50
	b2, err := s.Budget("billing", other)
	require.NoError(t, err)
	assert.NotEqual(t, b.Key("x"), b2.Key("x"))
}

// TestGarbageInRedis: a value that is not a State starts the key afresh.
func TestGarbageInRedis(t *testing.T) {
	r := startRedis(t)
	b, err := open(t, r.URL).Budget("jobs", burstCfg)
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	require.NoError(t, c.Set(context.Background(), b.Key("k"), "not a state", 0).Err())
	d, err := b.Decide(context.Background(), "k", time.Now())
	require.NoError(t, err)
	assert.Equal(t, admission.Admit, d.Action)
}

// TestRedisDownFailsOpen: with Redis gone, decisions fail fast with
// ErrUnavailable (most without asking Redis at all); once it is back they
// resume.
func TestRedisDownFailsOpen(t *testing.T) {
	r := startRedis(t)
	s := open(t, r.URL)
	b, err := s.Budget("jobs", burstCfg)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = b.Decide(ctx, "k", time.Now())
	require.NoError(t, err)

	r.Stop()
	start := time.Now()
	for range 100 {
		_, err := b.Decide(ctx, "k", time.Now())
		require.ErrorIs(t, err, ErrUnavailable)
	}
	assert.Less(t, time.Since(start), time.Second, "100 decisions with Redis down: each must not wait for the timeout")
	st := s.Stats()
	assert.Greater(t, st.Skipped, uint64(90), "%+v", st)

	r.Restart()
	require.Eventually(t, func() bool {
		_, err := b.Decide(ctx, "k", time.Now())
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no url":           {Config{}, "url: required"},
		"password in url":  {Config{URL: "redis://user:hunter2@127.0.0.1:6379/0"}, "holds a password"},
		"not redis":        {Config{URL: "http://127.0.0.1:6379"}, "url:"},
		"missing file":     {Config{URL: "redis://127.0.0.1:6379", PasswordFile: filepath.Join(dir, "none")}, "password file:"},
		"empty file":       {Config{URL: "redis://127.0.0.1:6379", PasswordFile: empty}, "empty"},
		"negative timeout": {Config{URL: "redis://127.0.0.1:6379", Timeout: -time.Second}, "timeout: must be"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Open(tc.cfg, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestBudgetRefusesInvalidConfig(t *testing.T) {
	s, err := Open(Config{URL: "redis://127.0.0.1:1/0"}, nil)
	require.NoError(t, err)
	_, err = s.Budget("r", admission.Config{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, admission.ErrInvalidConfig), "%v", err)
}

// TestRedisSlowFailsOpen: a Redis that does not answer (CLIENT PAUSE)
// costs a decision at most the timeout; after three in a row, decisions
// stop asking it; when it answers again they resume.
func TestRedisSlowFailsOpen(t *testing.T) {
	r := startRedis(t)
	s, err := Open(Config{URL: r.URL, Timeout: 50 * time.Millisecond}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer s.Close()
	b, err := s.Budget("jobs", burstCfg)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = b.Decide(ctx, "k", time.Now())
	require.NoError(t, err)

	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	require.NoError(t, c.Do(ctx, "CLIENT", "PAUSE", "1500", "ALL").Err())
	start := time.Now()
	for range 50 {
		t0 := time.Now()
		_, err := b.Decide(ctx, "k", time.Now())
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Less(t, time.Since(t0), 500*time.Millisecond, "a decision waited past its timeout")
	}
	assert.Less(t, time.Since(start), time.Second, "after three failures decisions stop waiting for Redis")
	st := s.Stats()
	assert.GreaterOrEqual(t, st.Failures, uint64(failuresToPause))
	assert.Greater(t, st.Skipped, uint64(40), "%+v", st)
	require.Eventually(t, func() bool {
		_, err := b.Decide(ctx, "k", time.Now())
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "decisions resume once Redis answers")
}

// TestRedisRestartedEmptyResumesTheSchedule: a burst is held on two
// replicas' schedule; Redis restarts empty; a new burst, decided by either
// replica, is held after the old burst's slots instead of beside them, so
// the releases of both stay within the limit per window.
func TestRedisRestartedEmptyResumesTheSchedule(t *testing.T) {
	r := startRedis(t)
	cfg := admission.Config{Limit: 10, Window: time.Second, MaxDelay: 15 * time.Second, Mode: admission.ModeDelay}
	a, err := open(t, r.URL).Budget("jobs", cfg)
	require.NoError(t, err)
	b, err := open(t, r.URL).Budget("jobs", cfg)
	require.NoError(t, err)
	ctx := context.Background()
	now := time.Now()
	var releases []time.Time
	decide := func(budget *Budget, at time.Time) {
		d, err := budget.Decide(ctx, "k", at)
		require.NoError(t, err)
		require.NotEqual(t, admission.Reject, d.Action)
		releases = append(releases, at.Add(d.Delay))
	}
	for i := range 60 { // six seconds of slots, both replicas
		decide([]*Budget{a, b}[i%2], now)
	}
	r.Stop()
	r.Restart()
	later := now.Add(2 * time.Second)
	for i := range 40 {
		at := later
		for {
			_, err := []*Budget{b, a}[i%2].Decide(ctx, "probe", at) // wait for Redis
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		decide([]*Budget{b, a}[i%2], at)
	}
	slices.SortFunc(releases, func(x, y time.Time) int { return x.Compare(y) })
	most, from := admission.MostInWindow(releases, time.Second)
	assert.LessOrEqual(t, most, 10, "releases in the second from %s", from.Sub(now))
}
