package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// Snapshot packs r for the snapshot cache. Each resource type carries its own
// version, a hash of its content, so a state-of-the-world client is sent only
// the types that changed: a percentage edit resends the runtime layer and
// nothing else. The snapshot is checked with Consistent() before it is
// returned.
func (r *Resources) Snapshot() (*cachev3.Snapshot, error) {
	snap := &cachev3.Snapshot{}
	add := func(t types.ResponseType, items []types.Resource) error {
		v, err := contentVersion(items)
		if err != nil {
			return err
		}
		snap.Resources[t] = cachev3.NewResources(v, items)
		return nil
	}
	for t, items := range map[types.ResponseType][]types.Resource{
		types.Listener: asResources(r.Listeners),
		types.Route:    asResources(r.Routes),
		types.Cluster:  asResources(r.Clusters),
		types.Runtime:  asResources(r.Runtimes),
	} {
		if err := add(t, items); err != nil {
			return nil, err
		}
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return snap, nil
}

// Version is a short content hash over every resource in r: equal resources,
// equal version.
func (r *Resources) Version() (string, error) {
	var all []types.Resource
	all = append(all, asResources(r.Listeners)...)
	all = append(all, asResources(r.Routes)...)
	all = append(all, asResources(r.Clusters)...)
	all = append(all, asResources(r.Runtimes)...)
	return contentVersion(all)
}

func asResources[T types.Resource](items []T) []types.Resource {
	out := make([]types.Resource, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// contentVersion hashes the deterministic wire form of items, in order.
func contentVersion(items []types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, it := range items {
		b, err := opts.Marshal(it)
		if err != nil {
			return "", fmt.Errorf("hashing %T: %w", it, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
