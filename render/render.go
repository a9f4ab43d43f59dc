// Package render turns a policy into the manifests that give a mesh whose
// control plane owns Envoy (Istio, a Gateway API implementation, Envoy
// Gateway) the policy's behaviour, with `shadowlab serve` running beside it
// without xDS. Like xds.Translate it is pure: the same policy and options
// always render byte-identical YAML.
//
// The shadow leg lives in shadowlab's gateway, so a mirror in any of these
// APIs is a mirror to that gateway. What an API cannot express is rendered
// as the closest correct thing and said in a comment at the top of the
// output (Objects.Notes); nothing is rendered that silently behaves
// differently from the policy.
package render

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// Target is a control plane render writes for.
type Target string

// Targets.
const (
	Istio        Target = "istio"
	GatewayAPI   Target = "gateway-api"
	EnvoyGateway Target = "envoy-gateway"
	defaultImage        = "shadowlab:latest"

	// serve's ports, unless Options say otherwise.
	DefaultGatewayPort   = 18003
	DefaultAdmissionPort = 18002
	DefaultAPIPort       = 18080
)

// Targets lists every target, for messages.
var Targets = []Target{Istio, GatewayAPI, EnvoyGateway}

// Options are what the policy does not say about the mesh.
type Options struct {
	Target Target
	// Namespace is where shadowlab runs. Default "shadowlab".
	Namespace string
	// RouteNamespace is where the routes (HTTPRoute, VirtualService) and
	// the policies attached to them go. Default "default".
	RouteNamespace string
	// Gateway is the parent the routes attach to, "name" or
	// "namespace/name": a Gateway API Gateway (gateway-api,
	// envoy-gateway), an Istio Gateway, or "mesh" for Istio's sidecars.
	// Default "gateway" in RouteNamespace.
	Gateway string
	// Hosts are the hostnames the routes serve. Default: any (Istio:
	// "*", which Istio allows on gateways only).
	Hosts []string
	// Selector chooses the Istio workloads (pod labels) the WasmPlugins
	// and EnvoyFilters apply to; required for Istio: the gateway's pods,
	// or with Gateway "mesh" the callers' (the VirtualService routes their
	// outbound traffic).
	Selector map[string]string
	// ShadowlabHost is the host (IP or DNS name) Envoy reaches shadowlab
	// at. Default: shadowlab's Service in Namespace, and the Deployment,
	// Service and ConfigMap that run it are rendered too; set, they are
	// not (shadowlab runs elsewhere).
	ShadowlabHost string
	// Image is shadowlab's container image. Default "shadowlab:latest".
	Image string
	// WasmSHA256 is the hex SHA-256 of the plugin (bin/shadowlab.wasm)
	// that serve offers at its API; required when a route captures or has
	// local admission.
	WasmSHA256 string
	// PolicyYAML is the policy file, put in shadowlab's ConfigMap.
	PolicyYAML []byte
	// GatewayPort, AdmissionPort and APIPort are serve's ports.
	// Defaults DefaultGatewayPort, DefaultAdmissionPort, DefaultAPIPort.
	GatewayPort, AdmissionPort, APIPort int
}

// Render returns the manifests for p, as YAML documents. Problems (what
// the target cannot express faithfully and refuses, bad options) are
// returned all at once.
func Render(p *policy.Policy, o Options) ([]byte, error) {
	r, err := newRenderer(p, o)
	if err != nil {
		return nil, err
	}
	switch o.Target {
	case EnvoyGateway:
		r.envoyGateway()
	case GatewayAPI:
		r.gatewayAPI()
	case Istio:
		r.istio()
	}
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	return r.yaml()
}

// renderer accumulates the objects of one rendering.
type renderer struct {
	p     *policy.Policy
	o     Options
	notes []string
	objs  []obj
	errs  []error

	refNamespaces map[string]bool // gateway-api: namespaces of the Services the routes send to
}

// obj is one manifest: its comment lines and its body.
type obj struct {
	comment []string
	body    M
}

func newRenderer(p *policy.Policy, o Options) (*renderer, error) {
	if !slices.Contains(Targets, o.Target) {
		return nil, fmt.Errorf("target %q: want one of istio, gateway-api, envoy-gateway", o.Target)
	}
	if o.Namespace == "" {
		o.Namespace = "shadowlab"
	}
	if o.RouteNamespace == "" {
		o.RouteNamespace = "default"
	}
	if o.Gateway == "" {
		o.Gateway = "gateway"
	}
	if o.Image == "" {
		o.Image = defaultImage
	}
	for _, p := range []struct {
		port *int
		def  int
	}{{&o.GatewayPort, DefaultGatewayPort}, {&o.AdmissionPort, DefaultAdmissionPort}, {&o.APIPort, DefaultAPIPort}} {
		if *p.port == 0 {
			*p.port = p.def
		}
	}
	var errs []error
	for _, n := range []struct{ what, v string }{{"namespace", o.Namespace}, {"route namespace", o.RouteNamespace}} {
		if !dnsLabel.MatchString(n.v) {
			errs = append(errs, fmt.Errorf("%s %q: not a Kubernetes namespace name", n.what, n.v))
		}
	}
	if len(p.Listeners) > 1 {
		errs = append(errs, fmt.Errorf("the policy has %d listeners; a mesh's control plane decides where routes are served: render a policy with one listener per gateway", len(p.Listeners)))
	}
	if o.Target == Istio && len(o.Selector) == 0 {
		errs = append(errs, errors.New("istio: --selector is required (the labels of the workloads whose Envoy runs the plugins, e.g. app=orders)"))
	}
	needWasm := false
	for _, rt := range p.Routes {
		if rt.Shadow != nil && rt.Shadow.Capture || rt.Admission != nil && rt.Admission.Scope == wire.ScopeLocal {
			needWasm = true
		}
	}
	if needWasm && o.Target != GatewayAPI && !sha256Hex.MatchString(o.WasmSHA256) {
		errs = append(errs, errors.New("the plugin's SHA-256 is needed (capture and local admission run shadowlab's plugin): build it with `make build`, render finds bin/shadowlab.wasm or takes --wasm"))
	}
	seen := map[string]string{}
	for _, rt := range p.Routes {
		if rt.Candidate() {
			errs = append(errs, fmt.Errorf("route %q: rollout stage %s is served through shadowlab's own xDS only (serve with --xds-address): a mesh's routes cannot yet pick a canary's users and fall back; render it at stage shadow", rt.Name, rt.Rollout.Stage))
		}
		k := kname(rt.Name)
		if other, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("routes %q and %q have the same Kubernetes name %q", other, rt.Name, k))
		}
		seen[k] = rt.Name
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &renderer{p: p, o: o}, nil
}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// kname is a policy name as a Kubernetes object name (DNS-1123: "_"
// becomes "-").
func kname(s string) string { return strings.ReplaceAll(s, "_", "-") }

func (r *renderer) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(r.notes, n) {
		r.notes = append(r.notes, n)
	}
}

func (r *renderer) fail(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	for _, e := range r.errs {
		if e.Error() == err.Error() {
			return
		}
	}
	r.errs = append(r.errs, err)
}

func (r *renderer) add(body M, comment ...string) {
	r.objs = append(r.objs, obj{comment: comment, body: body})
}

// parent splits Options.Gateway into namespace and name.
func (r *renderer) parent() (ns, name string) {
	if ns, name, ok := strings.Cut(r.o.Gateway, "/"); ok {
		return ns, name
	}
	return r.o.RouteNamespace, r.o.Gateway
}

// shadowlabHost is where Envoy reaches shadowlab.
func (r *renderer) shadowlabHost() string {
	if r.o.ShadowlabHost != "" {
		return r.o.ShadowlabHost
	}
	return "shadowlab." + r.o.Namespace + ".svc.cluster.local"
}

// apiAuthority is the host:port of shadowlab's API.
func (r *renderer) apiAuthority() string {
	return net.JoinHostPort(r.shadowlabHost(), strconv.Itoa(r.o.APIPort))
}

// wasmURL is where the plugin's code is fetched from: serve's API.
func (r *renderer) wasmURL() string {
	return "http://" + r.apiAuthority() + xds.WasmCodePath(r.o.WasmSHA256)
}

// sampledCapture is route rt's capture configuration for a mesh: the
// plugin samples by request ID, for the route's tenants and mirrored
// methods, and marks the sampled requests with wire.HeaderSample, which
// the mirroring route variant matches.
func sampledCapture(rt *policy.Route, reportCluster string, envoyRoutes []string) wire.CaptureConfig {
	c := xds.SampledCapture(rt, reportCluster)
	c.EnvoyRoutes = strings.Join(envoyRoutes, ",")
	return c
}

// localAdmission is route rt's admission plugin configuration.
func localAdmission(rt *policy.Route, reportCluster string, envoyRoutes []string) wire.PluginConfig {
	c := xds.PluginConfig(rt, reportCluster)
	c.EnvoyRoutes = strings.Join(envoyRoutes, ",")
	return c
}

// mirrors reports whether route rt has a mirroring variant: it mirrors, and
// some of its methods can be mirrored (a route of unsafe methods only that
// does not mirror them mirrors nothing, as the translator does it).
func mirrors(rt *policy.Route) bool {
	if rt.Shadow == nil {
		return false
	}
	methods, any, _ := mirroredMethods(rt)
	return any || len(methods) > 0
}

// mirroredMethods are the methods a route's mirroring variant takes: the
// route's safe ones (policy.SplitMethods), or all of them when it mirrors
// unsafe methods too and captures (shadowlab's gateway marks those
// dry-run); any: every method. Without capture the mirror goes straight to
// the shadow service and no mesh API marks a mirror alone as a dry run, so
// only the safe ones are mirrored: narrowed says the route asked for more.
func mirroredMethods(rt *policy.Route) (methods []string, any, narrowed bool) {
	if rt.Shadow.UnsafeMethods && rt.Shadow.Capture {
		return rt.Match.Methods, len(rt.Match.Methods) == 0, false
	}
	safe, _ := policy.SplitMethods(rt.Match.Methods)
	return safe, false, rt.Shadow.UnsafeMethods
}

// tenantRegex is the anchored RE2 alternation of a route's tenants.
func tenantRegex(t *policy.Tenants) string {
	quoted := make([]string, len(t.Values))
	for i, v := range t.Values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// yaml writes the notes and the objects as a YAML stream.
func (r *renderer) yaml() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Rendered by `shadowlab render --target %s` from policy %s.\n", r.o.Target, r.p.Hash[:12])
	b.WriteString("# Run shadowlab beside it without xDS: shadowlab serve --xds-address \"\" (README, \"In a mesh\").\n")
	if len(r.notes) > 0 {
		b.WriteString("#\n# What this target cannot express, and what was rendered instead:\n")
		for _, n := range r.notes {
			for i, line := range wrap(n, 76) {
				if i == 0 {
					b.WriteString("# - " + line + "\n")
				} else {
					b.WriteString("#   " + line + "\n")
				}
			}
		}
	}
	for i, o := range r.objs {
		// The header comments belong to the first document: a stream
		// that starts with a document of comments alone is refused by
		// some loaders (Envoy Gateway's file provider).
		if i > 0 {
			b.WriteString("---\n")
		} else {
			b.WriteString("\n")
		}
		for _, c := range o.comment {
			for _, line := range wrap(c, 78) {
				b.WriteString("# " + line + "\n")
			}
		}
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(o.body.node()); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// wrap breaks s into lines of at most width runes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// M is a YAML mapping that keeps its keys in order.
type M []KV

// KV is one key of an M.
type KV struct {
	K string
	V any
}

func (m M) node() *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, kv := range m {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: kv.K}, valueNode(kv.V))
	}
	return n
}

func valueNode(v any) *yaml.Node {
	switch v := v.(type) {
	case M:
		return v.node()
	case []M:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, m := range v {
			n.Content = append(n.Content, m.node())
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			n.Content = append(n.Content, valueNode(e))
		}
		return n
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, e := range v {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e})
		}
		return n
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case uint32:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(uint64(v), 10)}
	case float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v, 'f', -1, 64)}
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m := M{}
		for _, k := range keys {
			m = append(m, KV{k, v[k]})
		}
		return m.node()
	case *yaml.Node:
		return v
	}
	panic(fmt.Sprintf("render: no YAML for %T", v))
}

// jsonNode parses JSON (a proto in its JSON form, a plugin configuration)
// into a YAML node, its keys in their order.
func jsonNode(js []byte) *yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal(js, &n); err != nil {
		panic("render: JSON that is not YAML: " + err.Error())
	}
	return n.Content[0]
}

// endpoint splits a service endpoint into host and port.
func endpoint(ep string) (host string, port int) {
	h, p, _ := net.SplitHostPort(ep)
	port, _ = strconv.Atoi(p)
	return h, port
}

// isIP reports whether host is an IP literal.
func isIP(host string) bool { return net.ParseIP(host) != nil }

// protoNode checks m (check) and renders it as YAML in its JSON form, as
// the mesh's API takes Envoy protos.
func (r *renderer) protoNode(m proto.Message) any {
	r.check(m)
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		r.fail("%T: %v", m, err)
	}
	return jsonNode(js)
}

// check runs go-control-plane's validation on m, on the message inside it
// for an Any.
func (r *renderer) check(m proto.Message) {
	if a, ok := m.(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			r.fail("%s: %v", a.GetTypeUrl(), err)
			return
		}
		m = inner
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			r.fail("%T does not validate: %v", m, err)
		}
	}
}

// deployment renders what runs shadowlab in the cluster, unless it runs
// elsewhere (Options.ShadowlabHost).
func (r *renderer) deployment() {
	if r.o.ShadowlabHost != "" {
		return
	}
	ns := r.o.Namespace
	labels := map[string]string{"app.kubernetes.io/name": "shadowlab"}
	r.add(M{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", M{{"name", ns}}}}, "shadowlab runs here.")
	r.add(M{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", M{{"name", "shadowlab-policy"}, {"namespace", ns}}},
		{"data", M{{"policy.yaml", string(r.o.PolicyYAML)}}}}, "The policy serve follows (edit it here; serve reloads it).")
	args := []string{"serve", "--policy", "/etc/shadowlab/policy.yaml", "--xds-address", "",
		"--gateway-address", "0.0.0.0:" + strconv.Itoa(r.o.GatewayPort),
		"--admission-address", "0.0.0.0:" + strconv.Itoa(r.o.AdmissionPort),
		"--api-address", "0.0.0.0:" + strconv.Itoa(r.o.APIPort),
		"--db", "/var/lib/shadowlab/reports.db",
		"--wasm", "/usr/local/lib/shadowlab/shadowlab.wasm", // where examples/compose/Dockerfile puts it
		"--insecure-behind-authenticating-proxy"}
	ports := []M{
		{{"name", "gateway"}, {"port", r.o.GatewayPort}, {"targetPort", r.o.GatewayPort}},
		{{"name", "grpc-admission"}, {"port", r.o.AdmissionPort}, {"targetPort", r.o.AdmissionPort}, {"appProtocol", "kubernetes.io/h2c"}},
		{{"name", "http-api"}, {"port", r.o.APIPort}, {"targetPort", r.o.APIPort}},
	}
	r.add(M{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", M{{"name", "shadowlab"}, {"namespace", ns}}},
		{"spec", M{
			{"replicas", 1},
			{"selector", M{{"matchLabels", labels}}},
			{"template", M{
				{"metadata", M{{"labels", labels}}},
				{"spec", M{
					{"containers", []M{{
						{"name", "shadowlab"}, {"image", r.o.Image}, {"command", []string{"shadowlab"}}, {"args", args},
						{"ports", []M{{{"containerPort", r.o.GatewayPort}}, {{"containerPort", r.o.AdmissionPort}}, {{"containerPort", r.o.APIPort}}}},
						{"readinessProbe", M{{"httpGet", M{{"path", "/readyz"}, {"port", r.o.APIPort}}}}},
						{"volumeMounts", []M{{{"name", "policy"}, {"mountPath", "/etc/shadowlab"}}, {{"name", "data"}, {"mountPath", "/var/lib/shadowlab"}}}},
					}}},
					{"volumes", []M{
						{{"name", "policy"}, {"configMap", M{{"name", "shadowlab-policy"}}}},
						{{"name", "data"}, {"emptyDir", M{}}},
					}},
				}},
			}},
		}}}, "shadowlab serve without xDS: gateway, capture, admission and reports. Its ports are plain: they are meant to sit behind the mesh's mTLS (Istio: the namespace's PeerAuthentication below) or a NetworkPolicy; see README, \"In a mesh\".")
	r.add(M{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", M{{"name", "shadowlab"}, {"namespace", ns}}},
		{"spec", M{{"selector", labels}, {"ports", ports}}}})
}
