package proof

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// anyOf validates an Any's content.
type anyOf struct{ *anypb.Any }

func (a anyOf) ValidateAll() error {
	m, err := a.UnmarshalNew()
	if err != nil {
		return err
	}
	if v, ok := m.(validatable); ok {
		return v.ValidateAll()
	}
	return nil
}

// validatable is a go-control-plane message.
type validatable interface {
	proto.Message
	ValidateAll() error
}

// TestEmbeddedEnvoyProtos: every Envoy proto the goldens embed in a patch
// (Istio EnvoyFilter values, Envoy Gateway EnvoyPatchPolicy values) reads
// back from its JSON form, strictly, and passes go-control-plane's
// validation.
func TestEmbeddedEnvoyProtos(t *testing.T) {
	goldens, _ := filepath.Glob("../testdata/golden/*.yaml")
	checked := 0
	check := func(where string, v any, m validatable) {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(js, m); err != nil {
			t.Errorf("%s: does not read as %T: %v", where, m, err)
			return
		}
		if err := m.ValidateAll(); err != nil {
			t.Errorf("%s: %T does not validate: %v", where, m, err)
		}
		checked++
	}
	for _, f := range goldens {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var obj struct {
				Kind string `json:"kind"`
				Spec struct {
					ConfigPatches []struct {
						ApplyTo string `json:"applyTo"`
						Patch   struct {
							Value map[string]any `json:"value"`
						} `json:"patch"`
					} `json:"configPatches"`
					JSONPatches []struct {
						Type      string `json:"type"`
						Operation struct {
							Value map[string]any `json:"value"`
						} `json:"operation"`
					} `json:"jsonPatches"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatal(err)
			}
			where := func(k int) string {
				return filepath.Base(f) + ", object " + strconv.Itoa(i+1) + " (" + obj.Kind + "), patch " + strconv.Itoa(k+1)
			}
			for k, p := range obj.Spec.ConfigPatches {
				switch p.ApplyTo {
				case "HTTP_FILTER":
					check(where(k), p.Patch.Value, &hcmv3.HttpFilter{})
				case "HTTP_ROUTE":
					per, _ := p.Patch.Value["typed_per_filter_config"].(map[string]any)
					if len(per) == 0 {
						t.Errorf("%s: no typed_per_filter_config", where(k))
					}
					for _, v := range per { // a map of Anys: each with its "@type"
						a := &anypb.Any{}
						check(where(k), v, anyOf{a})
						if fc := (&routev3.FilterConfig{}); a.MessageIs(fc) && a.UnmarshalTo(fc) != nil {
							t.Errorf("%s: not a FilterConfig", where(k))
						}
					}
				default:
					t.Errorf("%s: applyTo %s not checked by this test", where(k), p.ApplyTo)
				}
			}
			for k, p := range obj.Spec.JSONPatches {
				if p.Type != "type.googleapis.com/envoy.config.cluster.v3.Cluster" {
					t.Errorf("%s: a %s patch, not checked by this test", where(k), p.Type)
					continue
				}
				check(where(k), p.Operation.Value, &clusterv3.Cluster{})
			}
		}
	}
	if checked == 0 {
		t.Fatal("no embedded Envoy proto found in the goldens")
	}
	t.Logf("%d embedded Envoy protos validated", checked)
}
