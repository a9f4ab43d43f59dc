package serve

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/budget"
	"github.com/shadowlab/shadowlab/wire"
)

func TestAdvertise(t *testing.T) {
	tests := map[string]struct{ explicit, bound, want string }{
		"loopback kept":         {bound: "127.0.0.1:18001", want: "127.0.0.1:18001"},
		"any IPv4 → loopback":   {bound: "0.0.0.0:18001", want: "127.0.0.1:18001"},
		"any IPv6 → loopback":   {bound: "[::]:18001", want: "127.0.0.1:18001"},
		"explicit wins":         {explicit: "shadowlab.mesh:18001", bound: "0.0.0.0:18001", want: "shadowlab.mesh:18001"},
		"a host name is kept":   {bound: "capture.local:1", want: "capture.local:1"},
		"unparseable is passed": {bound: "nonsense", want: "nonsense"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, advertise(tt.explicit, tt.bound))
		})
	}
}

func TestStartFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	good := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`
version: 1
listeners: [{name: l, address: "127.0.0.1:10000"}]
services: {a: {endpoints: ["127.0.0.1:1"]}}
routes: [{name: r, match: {pathPrefix: /}, primary: a}]
`), 0o600))
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(broken, []byte("version: 2\n"), 0o600))

	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"busy xds port":  {Config{PolicyPath: good, XDSAddress: busy.Addr().String()}, "xds address"},
		"busy api port":  {Config{PolicyPath: good, XDSAddress: "127.0.0.1:0", APIAddress: busy.Addr().String()}, "api address"},
		"broken policy":  {Config{PolicyPath: broken, XDSAddress: "127.0.0.1:0"}, "version"},
		"missing policy": {Config{PolicyPath: filepath.Join(t.TempDir(), "nope.yaml"), XDSAddress: "127.0.0.1:0"}, "nope.yaml"},
		"redis without global admission": {Config{PolicyPath: good, XDSAddress: "127.0.0.1:0", AdmissionRedis: budget.Config{URL: "redis://127.0.0.1:1/0"}},
			"global admission is off"},
		"redis password in the url": {Config{PolicyPath: good, XDSAddress: "127.0.0.1:0", AdmissionAddress: "127.0.0.1:0",
			AdmissionRedis: budget.Config{URL: "redis://u:secret@127.0.0.1:1/0"}}, "holds a password"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in, err := Start(context.Background(), tt.cfg, zap.NewNop())
			require.Error(t, err)
			assert.Nil(t, in)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	// And a good start stops cleanly, freeing its ports.
	in, err := Start(context.Background(), Config{PolicyPath: good, XDSAddress: "127.0.0.1:0", GatewayAddress: "127.0.0.1:0", APIAddress: "127.0.0.1:0"}, zap.NewNop())
	require.NoError(t, err)
	in.Stop()
	require.NoError(t, in.Wait())
	l, err := net.Listen("tcp", in.XDSAddr)
	require.NoError(t, err, "port freed")
	l.Close()
}

// TestStopWhateverPeersHold: connections holding a half-sent request on the
// API and the gateway do not keep Stop from returning; before that, the
// API's data endpoints and /readyz answer.
func TestStopWhateverPeersHold(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(pol, []byte(`
version: 1
listeners: [{name: l, address: "127.0.0.1:10000"}]
services: {a: {endpoints: ["127.0.0.1:1"]}}
routes: [{name: r, match: {pathPrefix: /}, primary: a}]
`), 0o600))
	in, err := Start(context.Background(), Config{PolicyPath: pol, XDSAddress: "127.0.0.1:0", GatewayAddress: "127.0.0.1:0", APIAddress: "127.0.0.1:0"}, zap.NewNop())
	require.NoError(t, err)
	res, err := http.Get("http://" + in.APIAddr + "/readyz")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	for _, addr := range []string{in.APIAddr, in.GatewayAddr} {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte("POST /api/v1/capture HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc"))
		require.NoError(t, err)
	}
	in.Stop()
	require.NoError(t, in.Wait())
}

// TestDataPortsWaitForThePolicy: a data port's server starts only once the
// first policy is published, and the API's data endpoints and /readyz
// wait for it too.
func TestDataPortsWaitForThePolicy(t *testing.T) {
	in := &Instance{ready: make(chan struct{})}
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- in.afterPolicy(func(context.Context) error { close(started); return nil })(ctx)
	}()
	api := httptest.NewServer(in.gateReports(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	defer api.Close()
	res, err := http.Get(api.URL + "/readyz")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "/readyz before the policy")
	posted := make(chan int, 1)
	go func() {
		res, err := http.Post(api.URL+wire.CapturePath, "application/octet-stream", nil)
		if err != nil {
			posted <- 0
			return
		}
		res.Body.Close()
		posted <- res.StatusCode
	}()
	select {
	case <-started:
		t.Fatal("a data port served before the policy")
	case <-posted:
		t.Fatal("a capture batch was taken before the policy")
	default:
	}
	close(in.ready)
	<-started
	require.NoError(t, <-served)
	assert.Equal(t, http.StatusNoContent, <-posted, "the batch waited for the policy, then was taken")
}
