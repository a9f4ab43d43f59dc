//go:build wasm_e2e && !wasm

// One capture instance per listener on the real Envoy, the routes' settings
// in their metadata:
//
//	go test -tags wasm_e2e -run TestEnvoyCaptureRouteMetadata -v ./wasm

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// captureAPI stands in for shadowlab's capture API: it keeps the records
// of every batch, and what was wrong with a request, if anything.
type captureAPI struct {
	mu      sync.Mutex
	records []wire.CaptureRecord
	bad     []string
}

func startCaptureAPI(t *testing.T) (*captureAPI, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	api := &captureAPI{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		recs, err := wire.ParseCaptureBatch(body)
		api.mu.Lock()
		defer api.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != wire.CapturePath || r.Header.Get("content-type") != wire.CaptureContentType || err != nil {
			api.bad = append(api.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("content-type")+": "+errString(err))
		}
		api.records = append(api.records, recs...)
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return api, l.Addr().String()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (a *captureAPI) got() ([]wire.CaptureRecord, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.records), slices.Clone(a.bad)
}

// withRouteMetadata sets the capture settings of the named routes of a
// StaticBootstrap (metadata.filter_metadata.shadowlab.capture, a string).
func withRouteMetadata(t *testing.T, boot []byte, settings map[string]wire.CaptureConfig) []byte {
	t.Helper()
	var doc any
	require.NoError(t, yaml.Unmarshal(boot, &doc))
	js, err := json.Marshal(doc)
	require.NoError(t, err)
	b := &bootstrapv3.Bootstrap{}
	require.NoError(t, protojson.Unmarshal(js, b))
	set := 0
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				require.NoError(t, f.GetTypedConfig().UnmarshalTo(hcm))
				for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						c, ok := settings[r.GetName()]
						if !ok {
							continue
						}
						r.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{wire.MetadataNamespace: {
							Fields: map[string]*structpb.Value{wire.MetadataCapture: structpb.NewStringValue(string(c.AppendRouteJSON(nil)))},
						}}}
						set++
					}
				}
				require.NoError(t, f.GetTypedConfig().MarshalFrom(hcm))
			}
		}
	}
	require.Equal(t, len(settings), set, "routes given settings")
	require.NoError(t, b.ValidateAll())
	out, err := xds.MessageYAML(b)
	require.NoError(t, err)
	return out
}

// TestEnvoyCaptureRouteMetadata: one capture instance (no route in its
// configuration) on one listener, switched on for four Envoy routes:
// orders and users with different settings in their metadata, half whose
// settings sample half the users (sticky), and bare with none. Each
// route's records carry its policy route, its kept headers and its body
// limit; half's are exactly its sampled users; bare's requests are not
// captured and are counted.
func TestEnvoyCaptureRouteMetadata(t *testing.T) {
	t.Cleanup(harness.RemoveBuilt)
	lab := harness.Test(t)
	wasmPath, err := harness.BuildPlugin()
	require.NoError(t, err)
	up := startUpstream(t)
	api, apiAddr := startCaptureAPI(t)

	instance := &harness.Plugin{Name: wire.CaptureRootID, Config: `{"report_cluster":"capture_api","tick_ms":50}`}
	settings := map[string]wire.CaptureConfig{
		"orders-mirror": {Route: "orders", MaxBodyBytes: 2, Headers: "x-echo-request-id"},
		"users-mirror":  {Route: "users"},
		"half":          {Route: "half", SampleHeader: wire.HeaderSample, SamplePerMillion: 500_000, SampleStickyHeader: "x-user"},
	}
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	var routes []harness.Route
	for _, r := range []struct{ name, prefix string }{{"orders-mirror", "/orders"}, {"users-mirror", "/users"}, {"half", "/half"}, {"bare", "/bare"}} {
		routes = append(routes, harness.Route{Name: r.name, Prefix: r.prefix, Cluster: "upstream", Plugin: instance})
	}
	routes = append(routes, harness.Route{Name: "off", Prefix: "/", Cluster: "upstream"})
	boot, err := harness.StaticBootstrap(harness.StaticConfig{
		Listeners: []harness.Listener{{Name: "ingress", Address: addr, Routes: routes}},
		Clusters:  []harness.Cluster{{Name: "upstream", Address: up.addr}, {Name: "capture_api", Address: apiAddr}},
		WasmPath:  wasmPath,
	})
	require.NoError(t, err)
	p, err := lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: withRouteMetadata(t, boot, settings)})
	require.NoError(t, err)

	client := &http.Client{Timeout: 10 * time.Second}
	send := func(path string, header ...string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		id := resp.Header.Get("x-echo-request-id")
		require.NotEmpty(t, id)
		return id
	}
	before := stats(t, p, "shadowlab_capture")
	want := map[string]string{} // request id → policy route
	for i := range 10 {
		want[send("/orders/"+strconv.Itoa(i))] = "orders"
		want[send("/users/"+strconv.Itoa(i))] = "users"
		send("/bare/" + strconv.Itoa(i))
		send("/off/" + strconv.Itoa(i))
	}
	half := settings["half"]
	sampled := 0
	for i := range 40 {
		user := "user-" + strconv.Itoa(i)
		id := send("/half", "x-user", user)
		if wire.Sampled(half.SampleKey(id, func(string) (string, bool) { return user, true }, ""), half.SamplePerMillion) {
			want[id] = "half"
			sampled++
		}
	}
	require.Positive(t, sampled)
	require.Less(t, sampled, 40)

	var recs []wire.CaptureRecord
	require.Eventually(t, func() bool {
		recs, _ = api.got()
		return len(recs) >= len(want)
	}, 10*time.Second, 50*time.Millisecond, "records: %d of %d", len(recs), len(want))
	time.Sleep(200 * time.Millisecond) // a few ticks more: nothing else may come
	recs, bad := api.got()
	require.Empty(t, bad)
	require.Len(t, recs, len(want))
	for _, r := range recs {
		route, ok := want[r.RequestID]
		require.True(t, ok, "record of a request that should not be captured: %+v", r)
		require.Equal(t, route, r.Route)
		require.Equal(t, 200, r.Status)
		require.Equal(t, uint32(3), r.BodyBytes, "ok\n")
		switch route {
		case "orders": // keeps x-echo-request-id; 2 bytes at most
			require.Equal(t, [][2]string{{"content-type", "text/plain; charset=utf-8"}, {"x-echo-request-id", r.RequestID}}, r.Headers)
			require.Equal(t, uint8(wire.FlagTooLarge), r.Flags)
			require.Nil(t, r.Body)
		default: // the default 1 MiB, content-type only
			require.Equal(t, [][2]string{{"content-type", "text/plain; charset=utf-8"}}, r.Headers)
			require.Zero(t, r.Flags)
			require.Equal(t, "ok\n", string(r.Body))
		}
		delete(want, r.RequestID)
	}
	require.Empty(t, want, "requests not captured")

	after := stats(t, p, "shadowlab_capture")
	d := func(name string) int64 {
		return after["wasmcustom.shadowlab_capture_"+name] - before["wasmcustom.shadowlab_capture_"+name]
	}
	t.Logf("records %d (orders 10, users 10, half %d of 40 users), counters: records %d, batches %d, no_settings %d, dropped %d",
		len(recs), sampled, d("records"), d("batches"), d("no_settings"), d("dropped"))
	require.EqualValues(t, len(recs), d("records"))
	require.EqualValues(t, 10, d("no_settings"), "bare's requests")
	require.Zero(t, d("dropped")+d("batch_failed"))
	logs := p.Logs()
	require.Contains(t, logs, `Envoy route "bare" has no route metadata shadowlab.capture: not captured`)
	if bad := grepLines(logs, badLog, 40); bad != "" {
		t.Errorf("envoy log has plugin/VM errors:\n%s", bad)
	}
}
