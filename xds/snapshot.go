package xds

import (
	"crypto/sha256"
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Snapshot packs r for the snapshot cache. Each resource carries its own
// content version (delta xDS sends a client only the resources whose
// version changed) and each type a version over its resources' (a
// state-of-the-world client is sent only the types that changed: a
// percentage edit resends the runtime layers and nothing else). The
// translator computed the versions from its pieces; the cache is handed
// them rather than hashing every resource of every snapshot again. The
// snapshot is checked for consistency (every route configuration a
// listener or a scope names is in it, and no other) before it is returned.
func (r *Resources) Snapshot() (*cachev3.Snapshot, error) {
	snap := &cachev3.Snapshot{VersionMap: map[string]map[string]string{}}
	for t, items := range r.byType() {
		versions := r.versionsOf(t, items)
		url, err := cachev3.GetResponseTypeURL(t)
		if err != nil {
			return nil, err
		}
		snap.Resources[t] = cachev3.NewResources(typeVersion(items, versions), items)
		snap.VersionMap[url] = versions
	}
	if err := r.consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return snap, nil
}

// consistent is go-control-plane's Snapshot.Consistent for what shadowlab
// builds (route configurations named by listeners and scopes, nothing
// else referenced), in one pass over names rather than its maps of every
// reference: every route configuration named exists, and each exists
// because it is named.
func (r *Resources) consistent() error {
	named := make(map[string]bool, len(r.Routes))
	for _, l := range r.Listeners {
		for _, name := range listenerRoutes(l) {
			named[name] = true
		}
	}
	for _, sc := range r.Scopes {
		named[sc.GetRouteConfigurationName()] = true
	}
	if len(named) != len(r.Routes) {
		return fmt.Errorf("%d route configurations named, %d built", len(named), len(r.Routes))
	}
	for _, rc := range r.Routes {
		if !named[rc.GetName()] {
			return fmt.Errorf("route configuration %q is named by no listener or scope", rc.GetName())
		}
	}
	return nil
}

// Version is a short content hash over every resource in r: equal resources,
// equal version.
func (r *Resources) Version() (string, error) {
	h := sha256.New()
	byType := r.byType()
	for _, t := range []types.ResponseType{types.Listener, types.Route, types.ScopedRoute, types.Cluster, types.Runtime} {
		fmt.Fprintf(h, "%d=%s\x00", t, typeVersion(byType[t], r.versionsOf(t, byType[t])))
	}
	return shortHash(h), nil
}

func (r *Resources) byType() map[types.ResponseType][]types.Resource {
	return map[types.ResponseType][]types.Resource{
		types.Listener:    asResources(r.Listeners),
		types.Route:       asResources(r.Routes),
		types.ScopedRoute: asResources(r.Scopes),
		types.Cluster:     asResources(r.Clusters),
		types.Runtime:     asResources(r.Runtimes),
	}
}

// versionsOf is each item's content version by name: the translator's, or
// hashed now for a resource it did not version.
func (r *Resources) versionsOf(t types.ResponseType, items []types.Resource) map[string]string {
	if v := r.versions[t]; len(v) == len(items) {
		return v
	}
	out := make(map[string]string, len(items))
	for _, it := range items {
		name := cachev3.GetResourceName(it)
		v, ok := r.versions[t][name]
		if !ok {
			v = hashOf(it)
		}
		out[name] = v
	}
	return out
}

// typeVersion is the version of a type: a hash over its resources' names
// and versions, in the translation's (deterministic) order.
func typeVersion(items []types.Resource, versions map[string]string) string {
	buf := make([]byte, 0, 64*len(items))
	for _, it := range items {
		n := cachev3.GetResourceName(it)
		buf = append(append(append(buf, n...), 0), versions[n]...)
	}
	h := sha256.New()
	h.Write(buf)
	return shortHash(h)
}

func asResources[T types.Resource](items []T) []types.Resource {
	out := make([]types.Resource, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// listenerRoutes are the route configurations listener l names over RDS.
func listenerRoutes(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if name := resourcev3.GetHTTPConnectionManager(f).GetRds().GetRouteConfigName(); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}
