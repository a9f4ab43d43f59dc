package xds_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/xds"
)

// layoutPolicy has routes that are each confined to one first path
// segment, in an order where it matters: exact paths, prefixes that close
// their segment, shorter prefixes before longer ones that they hide,
// methods, headers, mirrored variants, several routes per segment and
// segments shared by listeners' routes in between others.
func layoutPolicy(listener string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlisteners: [{name: ingress, address: %q}]\n", listener)
	b.WriteString("services:\n  a: {endpoints: [\"127.0.0.1:9\"]}\n  b: {endpoints: [\"127.0.0.1:9\"]}\nroutes:\n")
	route := func(name, match string, extra string) {
		fmt.Fprintf(&b, "  - name: %s\n    match: {%s}\n    primary: a\n%s", name, match, extra)
	}
	mirror := "    shadow: {service: b, percent: 100, unsafeMethods: true}\n"
	for i := range 12 {
		seg := fmt.Sprintf("s%d", i%5) // five segments, their routes interleaved
		switch i % 4 {
		case 0:
			route(fmt.Sprintf("exact-%d", i), fmt.Sprintf("path: /%s", seg), "")
			route(fmt.Sprintf("deep-%d", i), fmt.Sprintf("path: /%s/items/%d", seg, i), mirror)
		case 1:
			route(fmt.Sprintf("get-%d", i), fmt.Sprintf("pathPrefix: /%s/r%d, methods: [GET]", seg, i), mirror)
			route(fmt.Sprintf("hdr-%d", i), fmt.Sprintf("pathPrefix: /%s/r%d, headers: [{name: x-v, exact: \"2\"}]", seg, i), "")
		case 2:
			route(fmt.Sprintf("wide-%d", i), fmt.Sprintf("pathPrefix: /%s/", seg), "")
			route(fmt.Sprintf("hidden-%d", i), fmt.Sprintf("pathPrefix: /%s/r%d/x", seg, i), "") // after wide: never matched
		default:
			route(fmt.Sprintf("post-%d", i), fmt.Sprintf("pathPrefix: /%s/r%d/, methods: [POST, PUT]", seg, i), mirror)
		}
	}
	route("grpc", "grpc: shop.v1.Orders", "")
	route("root", "path: /", "")
	return b.String()
}

// layoutRequests are requests around every route of the policy: the
// exact paths with and without queries and slashes, inside and next to
// the prefixes, other segments, odd paths.
func layoutRequests() []*http.Request {
	var paths []string
	for i := range 12 {
		seg := fmt.Sprintf("s%d", i%5)
		paths = append(paths, "/"+seg, "/"+seg+"?q=1", "/"+seg+"/", "/"+seg+"x", "/"+seg+"/items/"+fmt.Sprint(i),
			fmt.Sprintf("/%s/items/%d?z", seg, i), fmt.Sprintf("/%s/r%d", seg, i), fmt.Sprintf("/%s/r%d/", seg, i),
			fmt.Sprintf("/%s/r%d/x/y", seg, i), fmt.Sprintf("/%s/r%dz", seg, i), fmt.Sprintf("/%s/R%d", seg, i),
			fmt.Sprintf("//%s/r%d", seg, i), fmt.Sprintf("/%s%%2Fr%d", seg, i))
	}
	paths = append(paths, "/", "/?a=b", "//", "/shop.v1.Orders/Get", "/shop.v1.Orders", "/shop.v1.OrdersX/Get", "/nowhere", "/nowhere/s1/")
	var out []*http.Request
	for _, p := range paths {
		for _, m := range []string{"GET", "POST", "DELETE"} {
			for _, v := range []string{"", "2"} {
				r, _ := http.NewRequest(m, "http://x"+p, nil)
				if v != "" {
					r.Header.Set("x-v", v)
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// TestLayoutsRouteAlike: a policy translated into one route table and into
// scoped route configurations (one per first segment), each served over
// delta xDS to a real Envoy whose routes answer with their own name: every
// request gets the same answer from both, the matching order the policy
// promises.
func TestLayoutsRouteAlike(t *testing.T) {
	lab := harness.Test(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, serverv3.CallbackFuncs{}))
	go func() { _ = g.Serve(xdsLis) }()
	defer g.Stop()

	answer := map[string]string{}
	for _, layout := range []struct {
		name    string
		scopeAt int
	}{{"table", -1}, {"scoped", 1}} {
		addr, err := harness.FreeAddr()
		require.NoError(t, err)
		p, err := policy.Parse([]byte(layoutPolicy(addr)), layout.name+".yaml")
		require.NoError(t, err)
		res, err := xds.Translate(p, xds.Options{ScopeAt: layout.scopeAt})
		require.NoError(t, err)
		if layout.name == "scoped" {
			require.NotEmpty(t, res.Scopes)
		} else {
			require.Empty(t, res.Scopes)
		}
		for _, rc := range res.Routes {
			for _, vh := range rc.GetVirtualHosts() {
				for _, rt := range vh.GetRoutes() {
					rt.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
						Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: rt.GetName()}}}}
				}
			}
		}
		snap, err := res.Snapshot()
		require.NoError(t, err)
		require.NoError(t, cache.SetSnapshot(ctx, layout.name, snap))
		boot, err := harness.DynamicBootstrap(layout.name, xdsLis.Addr().String(), true)
		require.NoError(t, err)
		_, err = lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot})
		require.NoError(t, err)

		client := &http.Client{Timeout: 5 * time.Second}
		for _, r := range layoutRequests() {
			r.URL.Host = addr
			resp, err := client.Do(r.Clone(ctx))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			key := r.Method + " " + r.URL.RequestURI() + " x-v=" + r.Header.Get("x-v")
			got := fmt.Sprintf("%d %s", resp.StatusCode, body)
			if layout.name == "table" {
				answer[key] = got
				continue
			}
			require.Equal(t, answer[key], got, "%s: the scoped layout routes it elsewhere", key)
		}
	}
	routed := map[string]bool{}
	for _, a := range answer {
		routed[a] = true
	}
	require.Greater(t, len(routed), 20, "the requests reach too few routes to tell the layouts apart: %v", routed)
}
