package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shadowlab/shadowlab/policy"
)

// percent is a mirrored route's runtime entry: its key and its percentage
// as Envoy reads a fractional percent, built once per route content.
type percent struct {
	key   string
	entry []byte // key and percentage, as the layer's version hashes them
	value *structpb.Value
	shard int
}

func newPercent(r *policy.Route) *percent {
	key := MirrorPercentKey(r.Name)
	return &percent{
		key:   key,
		entry: binary.BigEndian.AppendUint32([]byte(key+"\x00"), r.Shadow.PerMillion),
		value: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"numerator":   structpb.NewNumberValue(float64(r.Shadow.PerMillion)),
			"denominator": structpb.NewStringValue(percentDenominator.String()),
		}}),
		shard: RuntimeShard(r.Name),
	}
}

// runtimeLayers are the RTDS layers of the mirror percentages (ps, in
// policy order): RuntimeShards layers, each route's key in the layer
// RuntimeShard names (the bootstrap lists them all, so a percentage edit
// sends one small layer over delta xDS). versions[i] is runtimes[i]'s
// content version, from its keys and values; a layer whose version was
// built last time is reused from kept.
//
// The single layer of bootstraps made before the shards (RuntimeLayer) is
// not served alongside: go-control-plane's ADS mode answers a
// state-of-the-world request only when it names every resource of its type
// in the snapshot, so an Envoy that asks for the shards would never be
// answered while an unrequested layer is in it (measured: its runtime
// initialisation timed out after 15 s and the percentages never loaded).
// Such an Envoy is told to regenerate its bootstrap (Server's log).
func runtimeLayers(ps []*percent, kept map[string]*runtimev3.Runtime) (runtimes []*runtimev3.Runtime, versions []string) {
	members := make([][]*percent, RuntimeShards)
	for _, pc := range ps {
		members[pc.shard] = append(members[pc.shard], pc)
	}
	layer := func(name string, ps []*percent) {
		h := sha256.New()
		h.Write([]byte(name))
		for _, pc := range ps {
			h.Write(pc.entry)
		}
		v := shortHash(h)
		rt, ok := kept[v]
		if !ok {
			fields := make(map[string]*structpb.Value, len(ps))
			for _, pc := range ps {
				fields[pc.key] = pc.value
			}
			rt = &runtimev3.Runtime{Name: name, Layer: &structpb.Struct{Fields: fields}}
		}
		runtimes, versions = append(runtimes, rt), append(versions, v)
	}
	for i, ps := range members {
		layer(RuntimeShardName(i), ps)
	}
	return runtimes, versions
}

// shortHash is the content version of what was written to h.
func shortHash(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil))[:16] }
