package proof

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdValidator checks an object as the Kubernetes API server checks a
// custom resource on create: the CRD's OpenAPI schema, then its CEL rules
// (x-kubernetes-validations).
type crdValidator struct {
	schema     validation.SchemaValidator
	structural *structuralschema.Structural
	cel        *cel.Validator
}

// loadCRDs reads every CustomResourceDefinition in files (multi-document
// YAML) and returns a validator per "group/version/Kind" served.
func loadCRDs(t *testing.T, files ...string) map[string]*crdValidator {
	out := map[string]*crdValidator{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("CRDs: %v", err)
		}
		for _, doc := range bytes.Split(data, []byte("\n---")) {
			if !bytes.Contains(doc, []byte("kind: CustomResourceDefinition")) {
				continue
			}
			var crd apiextv1.CustomResourceDefinition
			if err := yaml.Unmarshal(doc, &crd); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, v := range crd.Spec.Versions {
				if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
					continue
				}
				var internal apiextensions.JSONSchemaProps
				if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
					t.Fatalf("%s %s: %v", crd.Name, v.Name, err)
				}
				sv, _, err := validation.NewSchemaValidator(&internal)
				if err != nil {
					t.Fatalf("%s %s: %v", crd.Name, v.Name, err)
				}
				st, err := structuralschema.NewStructural(&internal)
				if err != nil {
					t.Fatalf("%s %s: %v", crd.Name, v.Name, err)
				}
				out[crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Kind] = &crdValidator{
					schema: sv, structural: st, cel: cel.NewValidator(st, true, celconfig.PerCallLimit),
				}
			}
		}
	}
	return out
}

// validate checks obj as the API server does: its schema's defaults
// applied first.
func (v *crdValidator) validate(obj map[string]any) field.ErrorList {
	structuraldefaulting.Default(obj, v.structural)
	errs := validation.ValidateCustomResource(nil, obj, v.schema)
	if v.cel != nil {
		celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// moduleDir is where the Go module cache keeps a module of this build.
func moduleDir(t *testing.T, path string) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// TestGoldensPassCRDValidation: every custom resource in the goldens passes
// its project's CRD, schema and CEL rules, as an API server would check it.
func TestGoldensPassCRDValidation(t *testing.T) {
	gw := moduleDir(t, "sigs.k8s.io/gateway-api")
	eg := moduleDir(t, "github.com/envoyproxy/gateway")
	istio := moduleDir(t, "istio.io/api")
	egCRDs, _ := filepath.Glob(filepath.Join(eg, "charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_*.yaml"))
	gwCRDs, _ := filepath.Glob(filepath.Join(gw, "config/crd/standard/*.yaml"))
	files := append(append(gwCRDs, egCRDs...), filepath.Join(istio, "kubernetes/customresourcedefinitions.gen.yaml"))
	crds := loadCRDs(t, files...)
	if len(crds) < 10 {
		t.Fatalf("only %d CRD versions found in %v", len(crds), files)
	}
	goldens, _ := filepath.Glob("../testdata/golden/*.yaml")
	checked := 0
	for _, f := range goldens {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			// Decoded as the API server decodes JSON: whole numbers as int64.
			js, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := utiljson.Unmarshal(js, &obj); err != nil {
				t.Fatal(err)
			}
			api, _ := obj["apiVersion"].(string)
			kind, _ := obj["kind"].(string)
			if !strings.Contains(api, "/") || strings.HasPrefix(api, "apps/") {
				continue // core Kubernetes kinds: decoded strictly by the other test
			}
			v := crds[api+"/"+kind]
			if v == nil {
				t.Errorf("%s, object %d: no CRD for %s %s", f, i+1, api, kind)
				continue
			}
			checked++
			for _, e := range v.validate(obj) {
				t.Errorf("%s, object %d (%s %s): %v", f, i+1, kind, name(obj), e)
			}
		}
	}
	t.Logf("%d custom resources validated against %d CRD versions", checked, len(crds))
}

func name(obj map[string]any) string {
	m, _ := obj["metadata"].(map[string]any)
	return fmt.Sprint(m["name"])
}
