package xds

import (
	"fmt"
	"net"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// BootstrapConfig says how an Envoy reaches shadowlab.
type BootstrapConfig struct {
	NodeID       string // node.id; any unique name per Envoy
	XDSAddress   string // host:port of `shadowlab serve`'s xDS port
	AdminAddress string // host:port for Envoy's admin interface
	Delta        bool   // incremental (DELTA_GRPC) instead of state of the world
	// TLS is Envoy's client certificate for the xDS port (paths on
	// Envoy's machine); nil: plain TCP.
	TLS *ClientTLS
}

// Bootstrap is the Envoy bootstrap for cfg: listeners and clusters over ADS,
// the RTDS layer that carries mirror percentages, and a quick reconnect to
// the control plane (Envoy keeps its last config while it is away).
func Bootstrap(cfg BootstrapConfig) (*bootstrapv3.Bootstrap, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("bootstrap: node id is empty")
	}
	xdsAddr, err := socketAddress(cfg.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: xds %w", err)
	}
	adminAddr, err := socketAddress(cfg.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: admin %w", err)
	}
	apiType := corev3.ApiConfigSource_GRPC
	if cfg.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	kind := clusterv3.Cluster_STATIC
	if net.ParseIP(xdsAddr.GetSocketAddress().GetAddress()) == nil {
		kind = clusterv3.Cluster_STRICT_DNS
	}

	b := &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: cfg.NodeID, Cluster: NodeCluster},
		Admin: &bootstrapv3.Admin{Address: adminAddr},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   apiType,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
						ClusterName: XDSCluster,
						RetryPolicy: &corev3.RetryPolicy{RetryBackOff: &corev3.BackoffStrategy{
							BaseInterval: durationpb.New(250 * time.Millisecond),
							MaxInterval:  durationpb.New(2 * time.Second),
						}},
					}}}},
			},
			LdsConfig: adsSource(),
			CdsConfig: adsSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{{
				Name:                 XDSCluster,
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
				ConnectTimeout:       durationpb.New(time.Second),
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					ClusterName: XDSCluster,
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
						HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: xdsAddr}},
					}}}},
				},
				TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: http2Options()},
			}},
		},
		LayeredRuntime: &bootstrapv3.LayeredRuntime{Layers: runtimeBootstrapLayers()},
	}
	toShadowlab(b.StaticResources.Clusters[0], cfg.TLS, "h2")
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap fails Envoy validation: %w", err)
	}
	return b, nil
}

// runtimeBootstrapLayers are Envoy's runtime layers: defaults, the
// percentages' RTDS shards (RuntimeShardName), and the admin layer.
func runtimeBootstrapLayers() []*bootstrapv3.RuntimeLayer {
	layers := []*bootstrapv3.RuntimeLayer{{Name: "defaults", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: &structpb.Struct{}}}}
	for i := range RuntimeShards {
		name := RuntimeShardName(i)
		layers = append(layers, &bootstrapv3.RuntimeLayer{Name: name, LayerSpecifier: &bootstrapv3.RuntimeLayer_RtdsLayer_{
			RtdsLayer: &bootstrapv3.RuntimeLayer_RtdsLayer{Name: name, RtdsConfig: adsSource()}}})
	}
	return append(layers, &bootstrapv3.RuntimeLayer{Name: "admin", LayerSpecifier: &bootstrapv3.RuntimeLayer_AdminLayer_{AdminLayer: &bootstrapv3.RuntimeLayer_AdminLayer{}}})
}
