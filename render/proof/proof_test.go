// Package proof checks shadowlab's rendered manifests against the projects'
// own Go types: every object of every golden file decodes strictly (no
// unknown field, no wrong type) into the type its apiVersion and kind
// name. It is a module of its own so that Istio's, the Gateway API's and
// Envoy Gateway's modules stay out of shadowlab's.
package proof

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	istioext "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	istionet3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1b1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	extapi "istio.io/api/extensions/v1alpha1"
	netapi "istio.io/api/networking/v1alpha3"
	secapi "istio.io/api/security/v1beta1"
)

// typeOf returns a new value of the Go type for apiVersion/kind.
func typeOf(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "gateway.networking.k8s.io/v1/HTTPRoute":
		return &gwv1.HTTPRoute{}
	case "gateway.networking.k8s.io/v1beta1/ReferenceGrant":
		return &gwv1b1.ReferenceGrant{}
	case "gateway.envoyproxy.io/v1alpha1/Backend":
		return &egv1a1.Backend{}
	case "gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy":
		return &egv1a1.EnvoyExtensionPolicy{}
	case "gateway.envoyproxy.io/v1alpha1/EnvoyPatchPolicy":
		return &egv1a1.EnvoyPatchPolicy{}
	case "networking.istio.io/v1/VirtualService":
		return &istionet.VirtualService{}
	case "networking.istio.io/v1/ServiceEntry":
		return &istionet.ServiceEntry{}
	case "networking.istio.io/v1alpha3/EnvoyFilter":
		return &istionet3.EnvoyFilter{}
	case "extensions.istio.io/v1alpha1/WasmPlugin":
		return &istioext.WasmPlugin{}
	case "security.istio.io/v1/PeerAuthentication":
		return &istiosec.PeerAuthentication{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	}
	return nil
}

// istioSpec returns a new Istio API proto for the spec of an Istio kind,
// nil for other kinds.
func istioSpec(apiVersion, kind string) proto.Message {
	switch apiVersion + "/" + kind {
	case "networking.istio.io/v1/VirtualService":
		return &netapi.VirtualService{}
	case "networking.istio.io/v1/ServiceEntry":
		return &netapi.ServiceEntry{}
	case "networking.istio.io/v1alpha3/EnvoyFilter":
		return &netapi.EnvoyFilter{}
	case "extensions.istio.io/v1alpha1/WasmPlugin":
		return &extapi.WasmPlugin{}
	case "security.istio.io/v1/PeerAuthentication":
		return &secapi.PeerAuthentication{}
	}
	return nil
}

func TestGoldensDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("../testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files under ../testdata/golden (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := bytes.Split(data, []byte("\n---\n"))
		for i, doc := range docs {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Errorf("%s, object %d: %v", f, i+1, err)
				continue
			}
			v := typeOf(head.APIVersion, head.Kind)
			if v == nil {
				t.Errorf("%s, object %d: %s %s: no Go type known to this test", f, i+1, head.APIVersion, head.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				t.Errorf("%s, object %d (%s): does not decode strictly into %T: %v", f, i+1, head.Kind, v, err)
			}
			// Istio's types decode their spec leniently (unknown fields
			// pass): decode it again, strictly, as the API's own proto.
			if spec := istioSpec(head.APIVersion, head.Kind); spec != nil {
				var obj struct {
					Spec any `json:"spec"`
				}
				if err := yaml.Unmarshal(doc, &obj); err != nil {
					t.Fatal(err)
				}
				js, err := json.Marshal(obj.Spec)
				if err != nil {
					t.Fatal(err)
				}
				if err := (protojson.UnmarshalOptions{}).Unmarshal(js, spec); err != nil {
					t.Errorf("%s, object %d (%s): its spec does not decode strictly into %T: %v", f, i+1, head.Kind, spec, err)
				}
			}
			if strings.TrimSpace(string(doc)) == "" {
				t.Errorf("%s, object %d: empty", f, i+1)
			}
		}
	}
}
