package extproc

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/budget"
	"github.com/shadowlab/shadowlab/internal/redistest"
	"github.com/shadowlab/shadowlab/wire"
)

// TestAdmitterSharedBudget: two Admitters (two serve replicas) on one real
// Redis admit against one budget per route and key; with Redis gone they
// let requests through, counted fail_open, and share again once it is back.
func TestAdmitterSharedBudget(t *testing.T) {
	r := redistest.Start(t)
	replica := func() *admitEnv {
		s, err := budget.Open(budget.Config{URL: r.URL, Timeout: 200 * time.Millisecond}, zaptest.NewLogger(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return newAdmitEnv(t, AdmitterConfig{Shared: s}, time.Now)
	}
	a, b := replica(), replica()

	// tenant: 1/m per x-tenant, reject mode.
	assert.Equal(t, 0, a.request(t, "tenant", "x-tenant", "t1").status())
	assert.Equal(t, 429, b.request(t, "tenant", "x-tenant", "t1").status(), "the other replica's budget is the same")
	assert.Equal(t, 0, b.request(t, "tenant", "x-tenant", "t2").status(), "another key, another budget")
	assert.Equal(t, 429, a.request(t, "tenant", "x-tenant", "t2").status())

	// Held by one replica, counted at release in the shared window.
	assert.Equal(t, wire.AdmissionPassed, a.request(t, "pushed").header(wire.HeaderAdmission))
	held := b.request(t, "pushed")
	assert.Equal(t, 0, held.status())
	assert.Equal(t, wire.AdmissionHeld, held.header(wire.HeaderAdmission), "2/s: the second request of the instant waits")

	r.Stop()
	for range 5 {
		got := a.request(t, "tenant", "x-tenant", "t1")
		assert.Equal(t, 0, got.status(), "Redis down: the request passes")
		assert.Less(t, got.took, time.Second)
	}
	assert.Equal(t, uint64(5), a.sink.get("tenant", "").FailOpen, "each request passed unchecked is counted")

	r.Restart()
	for i, e := range []*admitEnv{a, b} { // until each replica has Redis again: a request it decides
		require.Eventually(t, func() bool {
			before := e.sink.get("tenant", "").FailOpen
			e.request(t, "tenant", "x-tenant", fmt.Sprintf("probe-%d", i))
			return e.sink.get("tenant", "").FailOpen == before
		}, 10*time.Second, 100*time.Millisecond)
	}
	assert.Equal(t, 0, a.request(t, "tenant", "x-tenant", "t3").status())
	assert.Equal(t, 429, b.request(t, "tenant", "x-tenant", "t3").status(), "shared again once Redis is back")
}
