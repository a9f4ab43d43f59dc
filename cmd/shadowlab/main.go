// Command shadowlab proves a new service against live traffic: it programs
// Envoy to mirror selected routes to a shadow service.
//
//	shadowlab validate FILE        check a policy, list every problem
//	shadowlab translate FILE       print the Envoy resources a policy becomes
//	shadowlab render --target T FILE  print a mesh's manifests for a policy
//	shadowlab serve --policy FILE  run the xDS control plane, follow FILE
//	shadowlab bootstrap            print an Envoy bootstrap for `serve`
//	shadowlab report               print the comparison report of a running serve
//	shadowlab demo                 run the whole thing on loopback
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shadowlab/shadowlab/auth"
	"github.com/shadowlab/shadowlab/budget"
	"github.com/shadowlab/shadowlab/demo"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/render"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/xds"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the command ran and failed (invalid policy, server error)
	exitUsage   = 2
	usageHeader = `usage: shadowlab <command> [flags]

commands:
  validate FILE               check a policy; every problem with its line
  translate FILE              print the Envoy resources FILE becomes (YAML)
  render --target T FILE      print the manifests for Istio, the Gateway API or Envoy Gateway
  serve --policy FILE         run the xDS control plane and follow FILE
  bootstrap                   print an Envoy bootstrap for serve
  report                      print what serve found: per route, outcomes, differing paths, noise, latency
  status [ROUTE]              each rolled-out route's stage and gates: pass, fail or inconclusive
  promote --policy FILE ROUTE shadow → canary → promoted (or --percent, --tenant), through passing gates only
  rollback --policy FILE ROUTE back to shadow: the primary answers everyone
  demo                        build a demo on loopback ports, drive traffic, report

run 'shadowlab <command> -h' for a command's flags
`
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageHeader)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "validate":
		return validate(args, stdout, stderr)
	case "translate":
		return translate(args, stdout, stderr)
	case "render":
		return renderCmd(args, stdout, stderr)
	case "serve":
		return serveCmd(ctx, args, stderr)
	case "bootstrap":
		return bootstrap(args, stdout, stderr)
	case "report":
		return reportCmd(ctx, args, stdout, stderr)
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "status":
		return statusCmd(ctx, args, stdout, stderr)
	case "promote":
		return promoteCmd(ctx, args, stdout, stderr)
	case "rollback":
		return rollbackCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageHeader)
		return exitOK
	default:
		fmt.Fprintf(stderr, "shadowlab: unknown command %q\n\n%s", cmd, usageHeader)
		return exitUsage
	}
}

// flagSet returns a flag set that reports to stderr; parse errors are usage
// errors.
func flagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shadowlab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// oneFile parses flags and expects exactly one positional FILE.
func oneFile(name string, args []string, stderr io.Writer) (string, int, bool) {
	fs := flagSet(name, stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "usage: shadowlab %s FILE\n", name) }
	if code, ok := parse(fs, args); !ok {
		return "", code, false
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return "", exitUsage, false
	}
	return fs.Arg(0), 0, true
}

// loadPolicy loads path, printing every problem on failure.
func loadPolicy(path string, stderr io.Writer) (*policy.Policy, bool) {
	p, err := policy.Load(path)
	if err != nil {
		var perr *policy.Error
		if errors.As(err, &perr) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n%s\n", path, len(perr.Problems)+perr.More, perr.Error())
		} else {
			fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		}
		return nil, false
	}
	return p, true
}

func validate(args []string, stdout, stderr io.Writer) int {
	path, code, ok := oneFile("validate", args, stderr)
	if !ok {
		return code
	}
	p, ok := loadPolicy(path, stderr)
	if !ok {
		return exitFailed
	}
	mirrored := 0
	for _, r := range p.Routes {
		if r.Shadow != nil {
			mirrored++
		}
	}
	fmt.Fprintf(stdout, "%s: ok: %d listener(s), %d service(s), %d route(s), %d mirrored; hash %.12s\n",
		path, len(p.Listeners), len(p.Services), len(p.Routes), mirrored, p.Hash)
	return exitOK
}

func translate(args []string, stdout, stderr io.Writer) int {
	path, code, ok := oneFile("translate", args, stderr)
	if !ok {
		return code
	}
	p, ok := loadPolicy(path, stderr)
	if !ok {
		return exitFailed
	}
	// What serve would publish with its default ports, the plugin read by
	// Envoy from a file.
	res, err := xds.Translate(p, xds.Options{
		GatewayAddress:   "127.0.0.1:18003",
		AdmissionAddress: "127.0.0.1:18002",
		APIAddress:       "127.0.0.1:18080",
		Wasm:             xds.WasmCode{Filename: "/etc/shadowlab/shadowlab.wasm"},
	})
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	out, err := res.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	_, _ = stdout.Write(out)
	return exitOK
}

func renderCmd(args []string, stdout, stderr io.Writer) int {
	fs := flagSet("render", stderr)
	var o render.Options
	target := fs.String("target", "", "istio, gateway-api or envoy-gateway")
	fs.StringVar(&o.Namespace, "namespace", "shadowlab", "the namespace shadowlab runs in")
	fs.StringVar(&o.RouteNamespace, "route-namespace", "default", "the namespace of the routes and the policies attached to them")
	fs.StringVar(&o.Gateway, "gateway", "gateway", "the parent Gateway, name or namespace/name (istio: an Istio Gateway, or \"mesh\" for sidecars)")
	fs.Func("host", "a hostname the routes serve (repeat it; default: any)", func(v string) error {
		o.Hosts = append(o.Hosts, v)
		return nil
	})
	fs.Func("selector", "istio: the labels of the workloads that run the plugins, key=value (repeat it or separate with commas)", func(v string) error {
		if o.Selector == nil {
			o.Selector = map[string]string{}
		}
		for kv := range strings.SplitSeq(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("want key=value, got %q", kv)
			}
			o.Selector[k] = val
		}
		return nil
	})
	fs.StringVar(&o.ShadowlabHost, "shadowlab-host", "", "the host (IP or DNS name) Envoy reaches shadowlab at; default: its Service, and the Deployment that runs it is rendered too")
	fs.StringVar(&o.Image, "image", "shadowlab:latest", "shadowlab's container image")
	fs.IntVar(&o.GatewayPort, "gateway-port", render.DefaultGatewayPort, "serve's gateway port (--gateway-address)")
	fs.IntVar(&o.AdmissionPort, "admission-port", render.DefaultAdmissionPort, "serve's global admission port (--admission-address)")
	fs.IntVar(&o.APIPort, "api-port", render.DefaultAPIPort, "serve's API port (--api-address)")
	wasm := fs.String("wasm", "", "the plugin (default: shadowlab.wasm beside the executable, then bin/shadowlab.wasm)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: shadowlab render --target istio|gateway-api|envoy-gateway [flags] FILE")
		return exitUsage
	}
	o.Target = render.Target(*target)
	path := fs.Arg(0)
	p, ok := loadPolicy(path, stderr)
	if !ok {
		return exitFailed
	}
	var err error
	if o.PolicyYAML, err = policy.ReadFile(path); err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	if o.WasmSHA256, err = serve.WasmSHA256(*wasm); err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	out, err := render.Render(p, o)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: render %s for %s:\n%v\n", path, o.Target, indent(err.Error()))
		return exitFailed
	}
	_, _ = stdout.Write(out)
	return exitOK
}

// indent puts each line of s under a two-space margin.
func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

func bootstrap(args []string, stdout, stderr io.Writer) int {
	fs := flagSet("bootstrap", stderr)
	var cfg xds.BootstrapConfig
	host, _ := os.Hostname()
	fs.StringVar(&cfg.NodeID, "node-id", "envoy-"+host, "Envoy node id")
	fs.StringVar(&cfg.XDSAddress, "xds-address", "127.0.0.1:18000", "host:port of shadowlab serve's xDS port")
	fs.StringVar(&cfg.AdminAddress, "admin-address", "127.0.0.1:9901", "host:port for Envoy's admin interface (port 0: any)")
	fs.BoolVar(&cfg.Delta, "delta", false, "use incremental xDS (DELTA_GRPC) instead of state of the world")
	var t xds.ClientTLS
	fs.StringVar(&t.Cert, "tls-cert", "", "Envoy's client certificate for serve's xDS port (a path on Envoy's machine); with --tls-key and --tls-ca: mutual TLS")
	fs.StringVar(&t.Key, "tls-key", "", "the key of --tls-cert (a path on Envoy's machine)")
	fs.StringVar(&t.CA, "tls-ca", "", "the CA that signs serve's certificate (a path on Envoy's machine)")
	fs.StringVar(&t.ServerID, "tls-server-id", "", "the SPIFFE ID (URI SAN) serve's certificate must carry; empty: any the CA signed")
	outPath := fs.String("out", "", "write the bootstrap to this file (atomically) instead of standard output")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if t != (xds.ClientTLS{}) {
		if t.Cert == "" || t.Key == "" || t.CA == "" {
			fmt.Fprintln(stderr, "shadowlab bootstrap: mutual TLS needs --tls-cert, --tls-key and --tls-ca")
			return exitUsage
		}
		cfg.TLS = &t
	}
	b, err := xds.Bootstrap(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	out, err := xds.MessageYAML(b)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitFailed
	}
	if *outPath == "" {
		_, _ = stdout.Write(out)
		return exitOK
	}
	if err := policy.WriteFile(*outPath, out); err != nil {
		fmt.Fprintf(stderr, "shadowlab bootstrap: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flagSet("serve", stderr)
	var cfg serve.Config
	fs.StringVar(&cfg.PolicyPath, "policy", "", "policy file to serve and follow (required)")
	fs.StringVar(&cfg.XDSAddress, "xds-address", "127.0.0.1:18000", "host:port for the xDS (ADS) gRPC server")
	fs.StringVar(&cfg.GatewayAddress, "gateway-address", "127.0.0.1:18003", "host:port for the shadow gateway Envoy mirrors to (it forwards to the shadow service and records its answer); empty: mirror without capture")
	fs.IntVar(&cfg.ScopeAt, "scope-at", 0, fmt.Sprintf("route count from which a listener whose routes each name one first path segment is split into one route configuration per segment (scoped routes), so that a one-route edit sends Envoy a small resource; 0: %d, -1: never", xds.DefaultScopeAt))
	fs.StringVar(&cfg.GatewayAdvertise, "gateway-advertise", "", "address Envoy dials for the gateway (default: --gateway-address, 0.0.0.0 as 127.0.0.1)")
	keyFile := fs.String("fingerprint-key-file", "", "file holding the key of the request fingerprints' keyed hash (at least 16 bytes; default: a random key per start)")
	fs.Int64Var(&cfg.Gateway.MaxBufferedBytes, "gateway-max-buffered", 0, "request bodies the gateway holds at once, in bytes; past it mirrored requests are shed (default 256 MiB)")
	fs.StringVar(&cfg.APIAddress, "api-address", "127.0.0.1:18080", "host:port for the report API, /metrics and the admission plugin's code; empty: off")
	fs.StringVar(&cfg.APIAdvertise, "api-advertise", "", "address Envoy dials for the API (default: --api-address, 0.0.0.0 as 127.0.0.1)")
	fs.StringVar(&cfg.AdmissionAddress, "admission-address", "127.0.0.1:18002", "host:port for the global admission (ext_proc) gRPC server; empty: global admission off")
	fs.StringVar(&cfg.AdmissionAdvertise, "admission-advertise", "", "address Envoy dials for global admission (default: --admission-address, 0.0.0.0 as 127.0.0.1)")
	fs.StringVar(&cfg.AdmissionRedis.URL, "admission-redis", "", "Redis keeping the global admission budgets, shared by every serve replica using it: redis://host:port/db (rediss:// for TLS; no password in the URL, see --admission-redis-password-file); empty: budgets in this process")
	fs.StringVar(&cfg.AdmissionRedis.PasswordFile, "admission-redis-password-file", "", "file holding the password (or ACL user's password) of --admission-redis")
	fs.DurationVar(&cfg.AdmissionRedis.Timeout, "admission-redis-timeout", budget.DefaultTimeout, "longest a decision waits for Redis; past it, or with Redis down, the request passes unchecked (counted fail_open)")
	fs.IntVar(&cfg.Admitter.MaxHeld, "max-held", 0, "requests global admission holds at once; past it they get 429 (default 5000)")
	fs.StringVar(&cfg.WasmPath, "wasm", "", "the admission plugin for local admission (default: shadowlab.wasm beside this binary, then bin/shadowlab.wasm)")
	fs.StringVar(&cfg.Report.DBPath, "db", "shadowlab.db", "SQLite file keeping results across restarts; empty: memory only")
	pairResponses := fs.Int("pair-responses", 1000, "recent non-matching pairs whose responses (redacted, 32 KiB a side) are kept for the operator page's pair view, besides those of each difference's first samples (up to as many more); 0: none kept")
	fs.DurationVar(&cfg.Pairer.TTL, "pair-ttl", 30*time.Second, "how long a captured half waits for its other side")
	fs.DurationVar(&cfg.Pairer.Grace, "pair-grace", time.Second, "how long a complete pair waits for a duplicate half before it is compared")
	peers := credentialFlags(fs, &cfg.Credentials)
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or console")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	switch n := *pairResponses; {
	case n < 0:
		fmt.Fprintf(stderr, "--pair-responses: must be 0 or more (got %d)\n", n)
		return exitUsage
	case n == 0:
		cfg.Report.NoExhibits = true
	default:
		cfg.Report.MaxExhibits, cfg.Report.MaxPinnedExhibits = n, n
	}
	if cfg.PolicyPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: shadowlab serve --policy FILE [--xds-address host:port] [--gateway-address host:port] [--api-address host:port] [--db FILE]")
		return exitUsage
	}
	var err error
	if cfg.Credentials.Peers, err = auth.ParsePeers(*peers); err != nil {
		fmt.Fprintf(stderr, "shadowlab: --tls-allowed-peers: %v\n", err)
		return exitUsage
	}
	if e := cfg.Credentials.EnvoyTLS; *e == (xds.ClientTLS{}) {
		cfg.Credentials.EnvoyTLS = nil
	}
	if *keyFile != "" {
		key, err := os.ReadFile(*keyFile)
		if err != nil || len(key) < 16 {
			fmt.Fprintf(stderr, "shadowlab: --fingerprint-key-file: want a readable file of at least 16 bytes (%v)\n", err)
			return exitUsage
		}
		cfg.Gateway.FingerprintKey = key
	}
	log, err := newLogger(*level, *format, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab: %v\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()

	// Load first: a broken policy must stop serve before it listens, with
	// every problem printed plainly.
	if _, ok := loadPolicy(cfg.PolicyPath, stderr); !ok {
		return exitFailed
	}
	in, err := serve.Start(ctx, cfg, log)
	if err != nil {
		log.Error("serve failed to start", zap.Error(err))
		return exitFailed
	}
	if err := in.Wait(); err != nil {
		log.Error("serve stopped", zap.Error(err))
		return exitFailed
	}
	log.Info("serve stopped")
	return exitOK
}

// credentialFlags declares serve's credential flags into c; the allowed
// peers come back as their flag's text.
func credentialFlags(fs *flag.FlagSet, c *serve.Credentials) *string {
	fs.StringVar(&c.TLS.Cert, "tls-cert", "", "serve's certificate (PEM) for every port; with --tls-key, --tls-client-ca and --tls-allowed-peers: mutual TLS, re-read when the files change")
	fs.StringVar(&c.TLS.Key, "tls-key", "", "the key of --tls-cert")
	fs.StringVar(&c.TLS.ClientCA, "tls-client-ca", "", "the CA that signs the peers' client certificates (Envoy's)")
	peers := fs.String("tls-allowed-peers", "", "comma-separated SPIFFE IDs allowed to connect (spiffe://TD/ns/N/sa/envoy), or prefixes ending in / (spiffe://TD/ for a trust domain)")
	fs.StringVar(&c.ReadTokenFile, "api-read-token-file", "", "file holding the bearer token for the API's reads (reports, /metrics)")
	fs.StringVar(&c.WriteTokenFile, "api-write-token-file", "", "file holding the bearer token for the API's writes (capture batches, admission reports); Envoy's plugin writes with its client certificate")
	c.EnvoyTLS = &xds.ClientTLS{}
	fs.StringVar(&c.EnvoyTLS.Cert, "envoy-tls-cert", "", "Envoy's client certificate, as a path on Envoy's machine (for the clusters toward the gateway, admission and the API)")
	fs.StringVar(&c.EnvoyTLS.Key, "envoy-tls-key", "", "the key of --envoy-tls-cert, as a path on Envoy's machine")
	fs.StringVar(&c.EnvoyTLS.CA, "envoy-tls-ca", "", "the CA of serve's certificate, as a path on Envoy's machine")
	fs.StringVar(&c.EnvoyTLS.ServerID, "envoy-tls-server-id", "", "the SPIFFE ID serve's certificate carries, checked by Envoy; empty: any the CA signed")
	fs.BoolVar(&c.InsecureBehindProxy, "insecure-behind-authenticating-proxy", false, "let ports without credentials bind beyond loopback: something in front authenticates")
	return peers
}

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("report", stderr)
	var servers []string
	fs.Func("server", "base URL of shadowlab serve's API (--api-address); repeat it, or separate with commas, for several replicas: their admission rows side by side with the merged ones (default http://127.0.0.1:18080)", func(v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				servers = append(servers, strings.TrimRight(s, "/"))
			}
		}
		return nil
	})
	route := fs.String("route", "", "show only this route")
	asJSON := fs.Bool("json", false, `print the report as JSON; with several servers: {"replicas":[{"server":URL,"report":{...}}],"admission":[the merged rows]}`)
	maxPaths := fs.Int("paths", 20, "differing paths shown per route")
	tokenFile := fs.String("token-file", "", "file holding the API's read token (serve --api-read-token-file)")
	caFile := fs.String("ca-file", "", "CA of serve's certificate, for an https:// --server")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	client, token, err := apiClient(*tokenFile, *caFile)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: shadowlab report [--server URL]... [--route NAME] [--json]")
		return exitUsage
	}
	if len(servers) == 0 {
		servers = []string{"http://127.0.0.1:18080"}
	}
	if len(servers) > 1 {
		return reportReplicas(ctx, client, token, servers, *route, *asJSON, *maxPaths, stdout, stderr)
	}
	// The text report of one route filters the whole report: a route's
	// admission rows are not part of /api/v1/routes/{route}.
	url := servers[0] + "/api/v1/report"
	if *route != "" && *asJSON {
		url = servers[0] + "/api/v1/routes/" + neturl.PathEscape(*route)
	}
	body, err := httpGet(ctx, client, url, token)
	if err != nil {
		fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		_, _ = stdout.Write(body)
		return exitOK
	}
	var rep report.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		fmt.Fprintf(stderr, "shadowlab report: reading %s: %v\n", url, err)
		return exitFailed
	}
	if err := report.Render(stdout, rep, report.RenderOptions{Route: *route, MaxPaths: *maxPaths}); err != nil {
		fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// reportReplicas is `report` against several serve replicas: each one's
// comparison report (the pairs its own Envoys mirrored), then one
// admission table with each replica's global rows and the rows merged
// across replicas. Every server must answer: a report that silently
// missed a replica would understate what reached the service.
func reportReplicas(ctx context.Context, client *http.Client, token string, servers []string, route string, asJSON bool, maxPaths int,
	stdout, stderr io.Writer) int {
	type replica struct {
		Server string        `json:"server"`
		Report report.Report `json:"report"`
	}
	var all []replica
	admission := map[string][]report.AdmissionReport{}
	for _, s := range servers {
		url := s + "/api/v1/report"
		body, err := httpGet(ctx, client, url, token)
		if err != nil {
			fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
			return exitFailed
		}
		var rep report.Report
		if err := json.Unmarshal(body, &rep); err != nil {
			fmt.Fprintf(stderr, "shadowlab report: reading %s: %v\n", url, err)
			return exitFailed
		}
		name := s
		if u, err := neturl.Parse(s); err == nil && u.Host != "" {
			name = u.Host
		}
		if _, dup := admission[name]; dup {
			fmt.Fprintf(stderr, "shadowlab report: --server %s given twice\n", name)
			return exitUsage
		}
		admission[name] = rep.Admission
		all = append(all, replica{Server: s, Report: rep})
	}
	merged := report.MergeAdmission(admission)
	if route != "" {
		merged = slices.DeleteFunc(merged, func(a report.AdmissionReport) bool { return a.Route != route })
	}
	if asJSON {
		out, err := json.MarshalIndent(struct {
			Replicas  []replica                `json:"replicas"`
			Admission []report.AdmissionReport `json:"admission"`
		}{all, merged}, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
			return exitFailed
		}
		_, _ = stdout.Write(append(out, '\n'))
		return exitOK
	}
	found := len(merged) > 0
	for _, r := range all {
		rep := report.Report{GeneratedAt: r.Report.GeneratedAt, Routes: r.Report.Routes}
		if route != "" {
			rep.Routes = slices.DeleteFunc(rep.Routes, func(rr report.RouteReport) bool { return rr.Route != route })
		}
		if len(rep.Routes) == 0 {
			continue
		}
		found = true
		fmt.Fprintf(stdout, "== %s ==\n", r.Server)
		if err := report.Render(stdout, rep, report.RenderOptions{MaxPaths: maxPaths}); err != nil {
			fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(stdout)
	}
	if route != "" && !found {
		fmt.Fprintf(stderr, "shadowlab report: route %q is in no replica's report\n", route)
		return exitFailed
	}
	if err := report.Render(stdout, report.Report{Admission: merged}, report.RenderOptions{}); err != nil {
		fmt.Fprintf(stderr, "shadowlab report: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// httpGet fetches url and fails on any status but 200, with the server's
// message.
func httpGet(ctx context.Context, client *http.Client, url, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is shadowlab serve running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// apiClient is the client of report: it trusts caFile's CA if given, and
// sends the token in tokenFile ("" for none).
func apiClient(tokenFile, caFile string) (*http.Client, string, error) {
	var token string
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if caFile == "" {
		return http.DefaultClient, token, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, "", fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("--ca-file %s: no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, token, nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("demo", stderr)
	var cfg demo.Config
	fs.StringVar(&cfg.BinDir, "bin-dir", "", "directory holding the shadowlab and backend binaries (default: next to this binary)")
	fs.IntVar(&cfg.Requests, "requests", 600, "requests of mixed traffic to drive")
	fs.BoolVar(&cfg.Verbose, "v", false, "show the processes' logs")
	fs.StringVar(&cfg.Attach, "attach", "", "policy file of a deployment already running (docker compose): start nothing, drive its Envoy and services (the file is edited by scene 2, then put back)")
	fs.StringVar(&cfg.API, "api", "127.0.0.1:18080", "with --attach: host:port of serve's API")
	fs.DurationVar(&cfg.Wait, "wait", 2*time.Minute, "with --attach: how long the deployment may take to be ready")
	fs.BoolVar(&cfg.Keep, "keep", false, "after every scene passed, keep everything up for the operator page (its address printed) until Ctrl-C; not with --attach")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if err := demo.Run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "shadowlab demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("--log-format: want json or console (got %q)", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
