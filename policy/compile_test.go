package policy

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// edit sets (or, with del, removes) one value in the valid example policy.
// Paths are dotted; numbers index lists, and the index one past the end
// appends. A value of type y is YAML text.
type edit struct {
	path  string
	value any
}

type y string

type deleteValue struct{}

var del = deleteValue{}

// TestRules has one case per validation rule: an edit of the valid example
// and the problem it must cause (path, and a part of the message). A case
// with an empty path must be accepted. Unless more is set, the problem must
// be the only one.
func TestRules(t *testing.T) {
	const (
		route1 = `{name: other, match: {pathPrefix: /other}, primary: billing-legacy}`
		twin   = `{name: twin, match: {pathPrefix: /billing/records, methods: [GET]}, primary: billing-legacy}`
	)
	tests := map[string]struct {
		edits []edit
		path  string
		msg   string
		more  bool
	}{
		// version
		"version 2":       {edits: []edit{{"version", 2}}, path: "version", msg: "must be 1 (got 2)"},
		"version 0":       {edits: []edit{{"version", 0}}, path: "version", msg: "must be 1 (got 0)"},
		"version missing": {edits: []edit{{"version", del}}, path: "version", msg: `required: write "version: 1"`},
		"version text":    {edits: []edit{{"version", "one"}}, path: "version", msg: `must be a whole number (got "one")`},

		// decoding
		"unknown field, close":   {edits: []edit{{"routes.0.shadow.percnt", 5}}, path: "routes[0].shadow.percnt", msg: `field "percnt" not known (did you mean "percent"?)`},
		"unknown field, case":    {edits: []edit{{"routes.0.match.path_prefix", "/x"}}, path: "routes[0].match.path_prefix", msg: `did you mean "pathPrefix"?`, more: true},
		"unknown field, far":     {edits: []edit{{"listeners.0.colour", "red"}}, path: "listeners[0].colour", msg: `field "colour" not known (known fields: address, name, trustRequestID)`},
		"unknown top-level":      {edits: []edit{{"route", y("[]")}}, path: "route", msg: `did you mean "routes"?`},
		"list expected":          {edits: []edit{{"routes.0.match.methods", "GET"}}, path: "routes[0].match.methods", msg: `must be a list (got "GET"; write [GET])`},
		"mapping expected":       {edits: []edit{{"routes.0.shadow", y("[a]")}}, path: "routes[0].shadow", msg: "must be a mapping (got a list)"},
		"string expected":        {edits: []edit{{"routes.0.primary", y("{a: b}")}}, path: "routes[0].primary", msg: "must be a string (got a mapping)"},
		"bool expected":          {edits: []edit{{"routes.0.shadow.unsafeMethods", "maybe"}}, path: "routes[0].shadow.unsafeMethods", msg: `must be true or false (got "maybe")`},
		"number expected":        {edits: []edit{{"routes.0.shadow.percent", "ten"}}, path: "routes[0].shadow.percent", msg: `must be a number (got "ten")`},
		"whole number expected":  {edits: []edit{{"routes.0.compare.maxBodyBytes", 1.5}}, path: "routes[0].compare.maxBodyBytes", msg: `must be a whole number (got "1.5")`},
		"float into integer":     {edits: []edit{{"routes.0.compare.maxBodyBytes", y("1e6")}}, path: "routes[0].compare.maxBodyBytes", msg: `must be a whole number (got "1e+06")`},
		"integer overflow":       {edits: []edit{{"routes.0.shadow.maxConcurrent", 1 << 32}}, path: "routes[0].shadow.maxConcurrent", msg: "must be a whole number between 0 and 4294967295 (got 4294967296)"},
		"yes is not a bool":      {edits: []edit{{"routes.0.shadow.unsafeMethods", y("yes")}}, path: "routes[0].shadow.unsafeMethods", msg: `must be true or false (got "yes")`},
		"negative into unsigned": {edits: []edit{{"routes.0.shadow.maxConcurrent", -1}}, path: "routes[0].shadow.maxConcurrent", msg: "must be a whole number between 0 and 4294967295 (got -1)"},
		"bad duration":           {edits: []edit{{"routes.0.timeout", "5 seconds"}}, path: "routes[0].timeout", msg: `invalid duration "5 seconds"`},
		"duration not scalar":    {edits: []edit{{"routes.0.timeout", y("[1s]")}}, path: "routes[0].timeout", msg: "must be a duration"},

		// listeners
		"no listeners":              {edits: []edit{{"listeners", y("[]")}}, path: "listeners", msg: "at least one listener is required"},
		"listener name missing":     {edits: []edit{{"listeners.0.name", del}}, path: "listeners[0].name", msg: "required"},
		"listener name upper case":  {edits: []edit{{"listeners.0.name", "Ingress"}}, path: "listeners[0].name", msg: `invalid name "Ingress": use 1 to 63 lower-case letters`},
		"listener name says why":    {edits: []edit{{"listeners.0.name", "in.gress"}}, path: "listeners[0].name", msg: "names become Envoy cluster names, stat prefixes and runtime keys"},
		"listener name too long":    {edits: []edit{{"listeners.0.name", strings.Repeat("a", 64)}}, path: "listeners[0].name", msg: "invalid name"},
		"listener name dash end":    {edits: []edit{{"listeners.0.name", "in-"}}, path: "listeners[0].name", msg: "invalid name"},
		"listener name duplicate":   {edits: []edit{{"listeners.1", y(`{name: ingress, address: "0.0.0.0:10001"}`)}}, path: "listeners[1].name", msg: `duplicate listener name "ingress" (first at line`},
		"listener address missing":  {edits: []edit{{"listeners.0.address", del}}, path: "listeners[0].address", msg: "required: host:port"},
		"listener address no port":  {edits: []edit{{"listeners.0.address", "0.0.0.0"}}, path: "listeners[0].address", msg: `must be host:port, e.g. 0.0.0.0:10000 (got "0.0.0.0": missing port in address)`},
		"listener address no host":  {edits: []edit{{"listeners.0.address", ":10000"}}, path: "listeners[0].address", msg: "host is missing"},
		"listener address dns name": {edits: []edit{{"listeners.0.address", "example.com:80"}}, path: "listeners[0].address", msg: `host must be an IP address or "localhost" (got "example.com")`},
		"listener port 0":           {edits: []edit{{"listeners.0.address", "0.0.0.0:0"}}, path: "listeners[0].address", msg: "port must be between 1 and 65535 (got 0)"},
		"listener port 65536":       {edits: []edit{{"listeners.0.address", "0.0.0.0:65536"}}, path: "listeners[0].address", msg: "port must be between 1 and 65535 (got 65536)"},
		"listener port named":       {edits: []edit{{"listeners.0.address", "0.0.0.0:http"}}, path: "listeners[0].address", msg: "port must be between 1 and 65535 (got http)"},
		"listener ipv6 unbracketed": {edits: []edit{{"listeners.0.address", "::1:80"}}, path: "listeners[0].address", msg: "too many colons"},
		"listener ipv6 zone":        {edits: []edit{{"listeners.0.address", "[fe80::1%eth0]:80"}}, path: "listeners[0].address", msg: "IPv6 zones are not supported"},
		"listener ipv6":             {edits: []edit{{"listeners.0.address", "[::1]:10000"}}},
		"listener localhost":        {edits: []edit{{"listeners.0.address", "localhost:10000"}}},
		"listener address duplicate": {
			edits: []edit{{"listeners.1", y(`{name: other, address: "0.0.0.0:10000"}`)}},
			path:  "listeners[1].address", msg: `duplicate address "0.0.0.0:10000" (first at line`,
		},
		"listener address duplicate, spelled differently": {
			edits: []edit{{"listeners.0.address", "[::1]:80"}, {"listeners.1", y(`{name: other, address: "[0:0::1]:80"}`)}},
			path:  "listeners[1].address", msg: "duplicate address",
		},
		"two listeners": {edits: []edit{{"listeners.1", y(`{name: other, address: "127.0.0.1:10001"}`)}}},

		// services
		"no services":           {edits: []edit{{"services", y("{}")}}, path: "services", msg: "at least one service is required", more: true},
		"service name invalid":  {edits: []edit{{"services.Billing", y(`{endpoints: ["127.0.0.1:1"]}`)}}, path: "services.Billing", msg: `invalid name "Billing"`},
		"service name with dot": {edits: []edit{{"services", y(`{billing-legacy: {endpoints: ["127.0.0.1:1"]}, billing-v2: {endpoints: ["127.0.0.1:2"]}, "a.b": {endpoints: ["127.0.0.1:3"]}}`)}}, path: `services["a.b"]`, msg: `invalid name "a.b"`},
		"no endpoints":          {edits: []edit{{"services.billing-v2.endpoints", y("[]")}}, path: "services.billing-v2.endpoints", msg: "at least one endpoint (host:port) is required"},
		"endpoints missing":     {edits: []edit{{"services.billing-v2", y("{}")}}, path: "services.billing-v2.endpoints", msg: "at least one endpoint"},
		"endpoint dns name":     {edits: []edit{{"services.billing-v2.endpoints.0", "billing-v2.internal:8082"}}},
		"endpoint localhost":    {edits: []edit{{"services.billing-v2.endpoints.0", "localhost:8082"}}},
		"endpoint ipv6":         {edits: []edit{{"services.billing-v2.endpoints.0", "[::1]:8082"}}},
		"endpoint bad host":     {edits: []edit{{"services.billing-v2.endpoints.0", "billing_v2:8082"}}, path: "services.billing-v2.endpoints[0]", msg: `host must be an IP address, "localhost" or a DNS host name (got "billing_v2")`},
		"endpoint bad ipv4":     {edits: []edit{{"services.billing-v2.endpoints.0", "10.0.0.256:8082"}}, path: "services.billing-v2.endpoints[0]", msg: "host must be an IP address"},
		"endpoint no port":      {edits: []edit{{"services.billing-v2.endpoints.0", "127.0.0.1"}}, path: "services.billing-v2.endpoints[0]", msg: "missing port"},
		"endpoint port":         {edits: []edit{{"services.billing-v2.endpoints.0", "127.0.0.1:0"}}, path: "services.billing-v2.endpoints[0]", msg: "port must be between 1 and 65535 (got 0)"},
		"endpoint empty":        {edits: []edit{{"services.billing-v2.endpoints.0", ""}}, path: "services.billing-v2.endpoints[0]", msg: "required: host:port"},
		"endpoint duplicate": {
			edits: []edit{{"services.billing-v2.endpoints.1", "127.0.0.1:8082"}},
			path:  "services.billing-v2.endpoints[1]", msg: `duplicate endpoint "127.0.0.1:8082" (first at line`,
		},
		"connect timeout 0":   {edits: []edit{{"services.billing-v2.connectTimeout", "0s"}}, path: "services.billing-v2.connectTimeout", msg: "must be greater than 0 and at most 60s (got 0s)"},
		"connect timeout 61s": {edits: []edit{{"services.billing-v2.connectTimeout", "61s"}}, path: "services.billing-v2.connectTimeout", msg: "at most 60s (got 1m1s)"},
		"connect timeout 60s": {edits: []edit{{"services.billing-v2.connectTimeout", "60s"}}},

		// routes
		"no routes":            {edits: []edit{{"routes", y("[]")}}, path: "routes", msg: "at least one route is required"},
		"route name missing":   {edits: []edit{{"routes.0.name", del}}, path: "routes[0].name", msg: "required"},
		"route name invalid":   {edits: []edit{{"routes.0.name", "billing records"}}, path: "routes[0].name", msg: `invalid name "billing records"`},
		"route name duplicate": {edits: []edit{{"routes.1", y(route1)}, {"routes.1.name", "billing-records"}}, path: "routes[1].name", msg: `duplicate route name "billing-records" (first at line`},
		"primary missing":      {edits: []edit{{"routes.0.primary", del}}, path: "routes[0].primary", msg: "required"},
		"primary unknown":      {edits: []edit{{"routes.0.primary", "billing-v3"}}, path: "routes[0].primary", msg: `unknown service "billing-v3" (defined: billing-legacy, billing-v2)`},
		"route listener unknown": {
			edits: []edit{{"routes.0.listeners", y("[egress]")}},
			path:  "routes[0].listeners[0]", msg: `unknown listener "egress" (defined: ingress)`,
		},
		"route listener twice": {edits: []edit{{"routes.0.listeners", y("[ingress, ingress]")}}, path: "routes[0].listeners[1]", msg: `listener "ingress" listed twice`},
		"route listener empty": {edits: []edit{{"routes.0.listeners", y(`[""]`)}}, path: "routes[0].listeners[0]", msg: "must not be empty"},
		"route listener known": {edits: []edit{{"routes.0.listeners", y("[ingress]")}}},
		"route timeout 0":      {edits: []edit{{"routes.0.timeout", "0s"}}, path: "routes[0].timeout", msg: "must be greater than 0 and at most 1h (got 0s)"},
		"route timeout 2h":     {edits: []edit{{"routes.0.timeout", "2h"}}, path: "routes[0].timeout", msg: "at most 1h (got 2h0m0s)"},
		"route timeout 1h":     {edits: []edit{{"routes.0.timeout", "1h"}}},

		// match
		"match missing":        {edits: []edit{{"routes.0.match", del}}, path: "routes[0].match", msg: "one of grpc, pathPrefix, path or pathRegex is required"},
		"match two paths":      {edits: []edit{{"routes.0.match.path", "/billing"}}, path: "routes[0].match", msg: "exactly one of grpc, pathPrefix, path or pathRegex is allowed (got pathPrefix and path)"},
		"grpc service":         {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.grpc", "shop.v1.Orders"}}},
		"grpc method":          {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.grpc", "shop.v1.Orders/GetOrder"}}},
		"grpc with slash":      {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.grpc", "/shop.v1.Orders"}}, path: "routes[0].match.grpc", msg: `must be a gRPC service (package.Service) or method`},
		"grpc bad method":      {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.grpc", "shop.Orders/Get-Order"}}, path: "routes[0].match.grpc", msg: `method "Get-Order" is not a proto identifier`},
		"grpc and prefix":      {edits: []edit{{"routes.0.match.grpc", "shop.Orders"}}, path: "routes[0].match", msg: "exactly one of grpc, pathPrefix, path or pathRegex is allowed (got grpc and pathPrefix)"},
		"grpc reflection":      {edits: []edit{{"services.billing-v2.grpc", y("{reflection: true}")}}},
		"grpc no source":       {edits: []edit{{"services.billing-v2.grpc", y("{}")}}, path: "services.billing-v2.grpc", msg: "needs descriptors (a FileDescriptorSet file) or reflection: true"},
		"grpc both sources":    {edits: []edit{{"services.billing-v2.grpc", y("{reflection: true, descriptors: x.binpb}")}}, path: "services.billing-v2.grpc", msg: "descriptors and reflection are exclusive"},
		"grpc missing file":    {edits: []edit{{"services.billing-v2.grpc", y("{descriptors: /nonexistent/x.binpb}")}}, path: "services.billing-v2.grpc.descriptors", msg: "cannot read the descriptor set"},
		"grpc not a set":       {edits: []edit{{"services.billing-v2.grpc", y("{descriptors: testdata/valid.policy.yaml}")}}, path: "services.billing-v2.grpc.descriptors", msg: "is not a FileDescriptorSet", more: true},
		"grpc over http1":      {edits: []edit{{"services.billing-v2.protocol", "http1"}, {"services.billing-v2.grpc", y("{reflection: true}")}}, path: "services.billing-v2.protocol", msg: "gRPC needs HTTP/2"},
		"match empty prefix":   {edits: []edit{{"routes.0.match.pathPrefix", ""}}, path: "routes[0].match.pathPrefix", msg: "must not be empty"},
		"prefix without slash": {edits: []edit{{"routes.0.match.pathPrefix", "billing"}}, path: "routes[0].match.pathPrefix", msg: `must start with "/" (got "billing")`},
		"path without slash":   {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.path", "billing"}}, path: "routes[0].match.path", msg: `must start with "/"`},
		"path with query":      {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.path", "/billing?x=1"}}, path: "routes[0].match.path", msg: "must not contain '?' or '#'"},
		"regex bad":            {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.pathRegex", "/billing/(v1"}}, path: "routes[0].match.pathRegex", msg: "invalid RE2 regular expression: missing closing )"},
		"regex not RE2":        {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.pathRegex", "/(?=x)"}}, path: "routes[0].match.pathRegex", msg: "invalid or unsupported Perl syntax"},
		"regex good":           {edits: []edit{{"routes.0.match.pathPrefix", del}, {"routes.0.match.pathRegex", "/billing/v[0-9]+/records"}}},
		"method lower case":    {edits: []edit{{"routes.0.match.methods", y("[get]")}}, path: "routes[0].match.methods[0]", msg: `method "get" must be upper case (write "GET")`},
		"method not a token":   {edits: []edit{{"routes.0.match.methods", y(`["GE T"]`)}}, path: "routes[0].match.methods[0]", msg: `invalid method "GE T"`},
		"method empty":         {edits: []edit{{"routes.0.match.methods", y(`[""]`)}}, path: "routes[0].match.methods[0]", msg: "must not be empty"},
		"method duplicate":     {edits: []edit{{"routes.0.match.methods", y("[GET, HEAD, GET]")}}, path: "routes[0].match.methods[2]", msg: `duplicate method "GET"`},
		"method any":           {edits: []edit{{"routes.0.match.methods", del}}},
		"header name upper":    {edits: []edit{{"routes.0.match.headers", y("[{name: X-Env, exact: prod}]")}}, path: "routes[0].match.headers[0].name", msg: `header name "X-Env" must be lower case (write "x-env")`},
		"header name invalid":  {edits: []edit{{"routes.0.match.headers", y(`[{name: "x env", exact: prod}]`)}}, path: "routes[0].match.headers[0].name", msg: `invalid header name "x env"`},
		"header name missing":  {edits: []edit{{"routes.0.match.headers", y("[{exact: prod}]")}}, path: "routes[0].match.headers[0].name", msg: "required"},
		"header :method":       {edits: []edit{{"routes.0.match.headers", y(`[{name: ":method", exact: GET}]`)}}, path: "routes[0].match.headers[0].name", msg: "use match.methods"},
		"header :path":         {edits: []edit{{"routes.0.match.headers", y(`[{name: ":path", exact: /}]`)}}, path: "routes[0].match.headers[0].name", msg: "use match.path"},
		"header :authority":    {edits: []edit{{"routes.0.match.headers", y(`[{name: ":authority", exact: a}]`)}}, path: "routes[0].match.headers[0].name", msg: `pseudo-headers cannot be matched here (got ":authority")`},
		"header no matcher":    {edits: []edit{{"routes.0.match.headers", y("[{name: x-env}]")}}, path: "routes[0].match.headers[0]", msg: "one of exact, prefix, regex or present is required"},
		"header two matchers":  {edits: []edit{{"routes.0.match.headers", y("[{name: x-env, exact: a, present: true}]")}}, path: "routes[0].match.headers[0]", msg: "exactly one of exact, prefix, regex or present is allowed (got exact and present)"},
		"header empty exact":   {edits: []edit{{"routes.0.match.headers", y(`[{name: x-env, exact: ""}]`)}}, path: "routes[0].match.headers[0].exact", msg: "must not be empty"},
		"header bad regex":     {edits: []edit{{"routes.0.match.headers", y(`[{name: x-env, regex: "a["}]`)}}, path: "routes[0].match.headers[0].regex", msg: "invalid RE2 regular expression: missing closing ]"},
		"header matchers": {edits: []edit{{"routes.0.match.headers",
			y(`[{name: x-a, exact: a}, {name: x-b, prefix: b}, {name: x-c, regex: "c+"}, {name: x-d, present: false, invert: true}]`)}}},

		// unreachable routes
		"same match": {edits: []edit{{"routes.1", y(twin)}}, path: "routes[1].match", msg: `unreachable: same match as route "billing-records" at line`},
		"same match, methods reordered": {
			edits: []edit{{"routes.0.match.methods", y("[GET, HEAD]")}, {"routes.1", y(twin)}, {"routes.1.match.methods", y("[HEAD, GET]")}},
			path:  "routes[1].match", msg: "unreachable",
		},
		"same match, one listener each": {edits: []edit{
			{"listeners.1", y(`{name: other, address: "0.0.0.0:10001"}`)},
			{"routes.0.listeners", y("[ingress]")}, {"routes.1", y(twin)}, {"routes.1.listeners", y("[other]")},
		}},
		"same match, shared listener": {
			edits: []edit{
				{"listeners.1", y(`{name: other, address: "0.0.0.0:10001"}`)},
				{"routes.0.listeners", y("[ingress]")}, {"routes.1", y(twin)}, {"routes.1.listeners", y("[other, ingress]")},
			},
			path: "routes[1].match", msg: "unreachable",
		},
		"same path, other header": {edits: []edit{{"routes.1", y(twin)}, {"routes.1.match.headers", y("[{name: x-env, exact: canary}]")}}},

		// shadow
		"shadow service missing": {edits: []edit{{"routes.0.shadow.service", del}}, path: "routes[0].shadow.service", msg: "required"},
		"shadow service unknown": {edits: []edit{{"routes.0.shadow.service", "billing-v3"}}, path: "routes[0].shadow.service", msg: `unknown service "billing-v3" (defined: billing-legacy, billing-v2)`},
		"shadow is primary":      {edits: []edit{{"routes.0.shadow.service", "billing-legacy"}}, path: "routes[0].shadow.service", msg: `must differ from primary "billing-legacy"`},
		"percent missing":        {edits: []edit{{"routes.0.shadow.percent", del}}, path: "routes[0].shadow.percent", msg: "required"},
		"percent 150":            {edits: []edit{{"routes.0.shadow.percent", 150}}, path: "routes[0].shadow.percent", msg: "must be between 0 and 100 (got 150)"},
		"percent negative":       {edits: []edit{{"routes.0.shadow.percent", -0.5}}, path: "routes[0].shadow.percent", msg: "(got -0.5)"},
		"percent NaN":            {edits: []edit{{"routes.0.shadow.percent", y(".nan")}}, path: "routes[0].shadow.percent", msg: "(got NaN)"},
		"percent infinite":       {edits: []edit{{"routes.0.shadow.percent", y(".inf")}}, path: "routes[0].shadow.percent", msg: "(got +Inf)"},
		"percent 0":              {edits: []edit{{"routes.0.shadow.percent", 0}}},
		"percent 100":            {edits: []edit{{"routes.0.shadow.percent", 100}}},
		"percent fine-grained":   {edits: []edit{{"routes.0.shadow.percent", 0.000001}}},
		"tenants header missing": {edits: []edit{{"routes.0.shadow.tenants.header", del}}, path: "routes[0].shadow.tenants.header", msg: "required"},
		"tenants header upper":   {edits: []edit{{"routes.0.shadow.tenants.header", "X-Tenant"}}, path: "routes[0].shadow.tenants.header", msg: `must be lower case (write "x-tenant")`},
		"tenants header pseudo":  {edits: []edit{{"routes.0.shadow.tenants.header", ":authority"}}, path: "routes[0].shadow.tenants.header", msg: "pseudo-headers are not allowed here"},
		"tenants no values":      {edits: []edit{{"routes.0.shadow.tenants.values", y("[]")}}, path: "routes[0].shadow.tenants.values", msg: "at least one value is required"},
		"tenants empty value":    {edits: []edit{{"routes.0.shadow.tenants.values.1", ""}}, path: "routes[0].shadow.tenants.values[1]", msg: "must not be empty"},
		"tenants duplicate":      {edits: []edit{{"routes.0.shadow.tenants.values.2", "acme"}}, path: "routes[0].shadow.tenants.values[2]", msg: `duplicate value "acme" (first at line`},
		"max concurrent 0":       {edits: []edit{{"routes.0.shadow.maxConcurrent", 0}}, path: "routes[0].shadow.maxConcurrent", msg: "must be between 1 and 100000 (got 0)"},
		"max concurrent big":     {edits: []edit{{"routes.0.shadow.maxConcurrent", 100001}}, path: "routes[0].shadow.maxConcurrent", msg: "(got 100001)"},
		"max concurrent limit":   {edits: []edit{{"routes.0.shadow.maxConcurrent", 100000}}},
		"unsafe on safe methods": {edits: []edit{{"routes.0.shadow.unsafeMethods", true}}},
		"only unsafe methods": {
			edits: []edit{{"routes.0.match.methods", y("[POST, PUT]")}},
			path:  "routes[0].shadow.unsafeMethods", msg: "nothing would be mirrored: the route matches only POST, PUT",
		},
		"unsafe methods opted in": {edits: []edit{{"routes.0.match.methods", y("[POST]")}, {"routes.0.shadow.unsafeMethods", true}}},
		"compare without shadow":  {edits: []edit{{"routes.0.shadow", del}}, path: "routes[0].compare", msg: "compare needs a shadow"},
		"no shadow, no compare":   {edits: []edit{{"routes.0.shadow", del}, {"routes.0.compare", del}}},

		// compare
		"ignore bad path":        {edits: []edit{{"routes.0.compare.ignore.0", "$.items["}}, path: "routes[0].compare.ignore[0]", msg: `invalid JSON path "$.items[": unclosed '['`},
		"ignore no dollar":       {edits: []edit{{"routes.0.compare.ignore.0", "generated_at"}}, path: "routes[0].compare.ignore[0]", msg: `must start with "$"`},
		"ignore whole body":      {edits: []edit{{"routes.0.compare.ignore.0", "$"}}, path: "routes[0].compare.ignore[0]", msg: "would ignore the whole body"},
		"ignore quoted":          {edits: []edit{{"routes.0.compare.ignore.0", "$['generated at'].*[0]"}}},
		"unordered bad path":     {edits: []edit{{"routes.0.compare.unorderedArrays.0", "$..items"}}, path: "routes[0].compare.unorderedArrays[0]", msg: "recursive descent"},
		"unordered root":         {edits: []edit{{"routes.0.compare.unorderedArrays.0", "$"}}},
		"secret compare header":  {edits: []edit{{"routes.0.compare.headers", y("[content-type, set-cookie]")}}, path: "routes[0].compare.headers[1]", msg: `"set-cookie" carries secrets`},
		"unordered keyed":        {edits: []edit{{"routes.0.compare.unorderedArrays", y(`["$.items by id"]`)}}},
		"unordered keyed no key": {edits: []edit{{"routes.0.compare.unorderedArrays", y(`["$.items by "]`)}}, path: "routes[0].compare.unorderedArrays[0]", msg: `name the member after "by"`},
		"tolerance negative":     {edits: []edit{{"routes.0.compare.numericTolerance", -0.1}}, path: "routes[0].compare.numericTolerance", msg: "must be a number of at least 0 (got -0.1)"},
		"tolerance infinite":     {edits: []edit{{"routes.0.compare.numericTolerance", y(".inf")}}, path: "routes[0].compare.numericTolerance", msg: "(got +Inf)"},
		"compare header upper":   {edits: []edit{{"routes.0.compare.headers.0", "Content-Type"}}, path: "routes[0].compare.headers[0]", msg: `must be lower case (write "content-type")`},
		"compare header pseudo":  {edits: []edit{{"routes.0.compare.headers.0", ":status"}}, path: "routes[0].compare.headers[0]", msg: "pseudo-headers are not allowed here"},
		"compare header twice":   {edits: []edit{{"routes.0.compare.headers.1", "content-type"}}, path: "routes[0].compare.headers[1]", msg: `duplicate header "content-type"`},
		"compare header empty":   {edits: []edit{{"routes.0.compare.headers.0", ""}}, path: "routes[0].compare.headers[0]", msg: "required"},
		"max body 0":             {edits: []edit{{"routes.0.compare.maxBodyBytes", 0}}, path: "routes[0].compare.maxBodyBytes", msg: "must be between 1 and 67108864 (64 MiB) (got 0)"},
		"max body too big":       {edits: []edit{{"routes.0.compare.maxBodyBytes", 64<<20 + 1}}, path: "routes[0].compare.maxBodyBytes", msg: "(got 67108865)"},
		"max body 64 MiB":        {edits: []edit{{"routes.0.compare.maxBodyBytes", 64 << 20}}},
		"vary on":                {edits: []edit{{"routes.0.compare.varyOn", y("[accept-language, cookie]")}}},
		"vary on upper case":     {edits: []edit{{"routes.0.compare.varyOn", y("[Accept-Language]")}}, path: "routes[0].compare.varyOn[0]", msg: `must be lower case (write "accept-language")`},
		"vary on twice":          {edits: []edit{{"routes.0.compare.varyOn", y("[a, a]")}}, path: "routes[0].compare.varyOn[1]", msg: `duplicate header "a"`},
		"protocol http2":         {edits: []edit{{"services.billing-v2.protocol", "http2"}}},
		"protocol unknown":       {edits: []edit{{"services.billing-v2.protocol", "grpc"}}, path: "services.billing-v2.protocol", msg: `must be auto, http1 or http2 (got "grpc")`},
		"tls without CA":         {edits: []edit{{"services.billing-v2.tls", y("{serverName: billing.internal}")}}, path: "services.billing-v2.tls.ca", msg: "required: the CA file"},
		"tls two hosts, no name": {edits: []edit{{"services.billing-v2.endpoints", y(`["a.internal:1", "b.internal:1"]`)}, {"services.billing-v2.tls", y("{ca: /nonexistent}")}}, path: "services.billing-v2.tls.serverName", msg: "required when the endpoints have different hosts (a.internal, b.internal)", more: true},
		"tls unreadable CA":      {edits: []edit{{"services.billing-v2.tls", y("{ca: /nonexistent/ca.pem}")}}, path: "services.billing-v2.tls.ca", msg: "cannot read the CA file"},
		"tls CA not PEM":         {edits: []edit{{"services.billing-v2.tls", y("{ca: testdata/valid.policy.yaml}")}}, path: "services.billing-v2.tls.ca", msg: "holds no PEM certificate"},
		"tls cert without key":   {edits: []edit{{"services.billing-v2.tls", y("{cert: /x.pem}")}}, path: "services.billing-v2.tls.key", msg: "required with cert", more: true},
		"tls bad cert":           {edits: []edit{{"services.billing-v2.tls", y("{cert: /x.pem, key: /y.pem}")}}, path: "services.billing-v2.tls.cert", msg: "cannot load the client certificate and key", more: true},
		"tls bad server name":    {edits: []edit{{"services.billing-v2.tls", y("{serverName: 'a b'}")}}, path: "services.billing-v2.tls.serverName", msg: "must be a DNS host name", more: true},
		"redact empty":           {edits: []edit{{"routes.0.compare.redact", y(`[password, ""]`)}}, path: "routes[0].compare.redact[1]", msg: "must not be empty"},
		"compare empty block":    {edits: []edit{{"routes.0.compare", y("{}")}}},
		"reveal unknown":         {edits: []edit{{"routes.0.compare.reveal", y(`[API-Key, colour]`)}}, path: "routes[0].compare.reveal[1]", msg: `"colour" is not a name redacted by default (password, `},
		"reveal default":         {edits: []edit{{"routes.0.compare.reveal", y(`[ssn, apiKey]`)}}},

		// admission
		"rate missing":        {edits: []edit{{"routes.0.admission.rate", del}}, path: "routes[0].admission.rate", msg: `required, e.g. "100/s"`},
		"rate without window": {edits: []edit{{"routes.0.admission.rate", "100"}}, path: "routes[0].admission.rate", msg: `invalid rate "100": want "count/window"`},
		"rate count 0":        {edits: []edit{{"routes.0.admission.rate", "0/s"}}, path: "routes[0].admission.rate", msg: `count must be a whole number from 1 to 1000000000 (got "0")`},
		"rate count negative": {edits: []edit{{"routes.0.admission.rate", "-5/s"}}, path: "routes[0].admission.rate", msg: `(got "-5")`},
		"rate count too big":  {edits: []edit{{"routes.0.admission.rate", "1000000001/s"}}, path: "routes[0].admission.rate", msg: "count must be"},
		"rate bad window":     {edits: []edit{{"routes.0.admission.rate", "100/fortnight"}}, path: "routes[0].admission.rate", msg: `window must be a unit (ms, s, m, h) or a Go duration such as "15m" (got "fortnight")`},
		"rate window 0":       {edits: []edit{{"routes.0.admission.rate", "100/0s"}}, path: "routes[0].admission.rate", msg: "window must be between 1ms and 24h (got 0s)"},
		"rate window 48h":     {edits: []edit{{"routes.0.admission.rate", "100/48h"}}, path: "routes[0].admission.rate", msg: "(got 48h0m0s)"},
		"rate 15m":            {edits: []edit{{"routes.0.admission.rate", "10000/15m"}}},
		"mode bad":            {edits: []edit{{"routes.0.admission.mode", "queue"}}, path: "routes[0].admission.mode", msg: `must be delay, reject or observe (got "queue")`},
		"scope bad":           {edits: []edit{{"routes.0.admission.scope", "cluster"}}, path: "routes[0].admission.scope", msg: `must be local or global (got "cluster")`},
		"scope global":        {edits: []edit{{"routes.0.admission.scope", "global"}}},
		"key bad":             {edits: []edit{{"routes.0.admission.key", "tenant"}}, path: "routes[0].admission.key", msg: `must be "route" or "header:<header name>" (got "tenant")`},
		"key header upper":    {edits: []edit{{"routes.0.admission.key", "header:X-Tenant"}}, path: "routes[0].admission.key", msg: `must be lower case (write "x-tenant")`},
		"key header empty":    {edits: []edit{{"routes.0.admission.key", "header:"}}, path: "routes[0].admission.key", msg: "required: a lower-case header name"},
		"key header pseudo":   {edits: []edit{{"routes.0.admission.key", "header::authority"}}, path: "routes[0].admission.key", msg: "pseudo-headers are not allowed here"},
		"key route":           {edits: []edit{{"routes.0.admission.key", "route"}}},
		"max delay missing":   {edits: []edit{{"routes.0.admission.maxDelay", del}}, path: "routes[0].admission.maxDelay", msg: "required with mode delay"},
		"max delay default mode": {
			edits: []edit{{"routes.0.admission.maxDelay", del}, {"routes.0.admission.mode", del}},
			path:  "routes[0].admission.maxDelay", msg: "required with mode delay",
		},
		"max delay 0":              {edits: []edit{{"routes.0.admission.maxDelay", "0s"}}, path: "routes[0].admission.maxDelay", msg: "must be greater than 0 and at most 1h (got 0s)"},
		"max delay 2h":             {edits: []edit{{"routes.0.admission.maxDelay", "2h"}}, path: "routes[0].admission.maxDelay", msg: "(got 2h0m0s)"},
		"max delay with reject":    {edits: []edit{{"routes.0.admission.mode", "reject"}}, path: "routes[0].admission.maxDelay", msg: "has no effect with mode reject"},
		"reject without max delay": {edits: []edit{{"routes.0.admission.mode", "reject"}, {"routes.0.admission.maxDelay", del}}},
		"observe with max delay":   {edits: []edit{{"routes.0.admission.mode", "observe"}}},
		"observe without delay":    {edits: []edit{{"routes.0.admission.mode", "observe"}, {"routes.0.admission.maxDelay", del}}},
		"admission without shadow": {edits: []edit{{"routes.0.shadow", del}, {"routes.0.compare", del}}},
		"window too short": {
			edits: []edit{{"routes.0.admission.rate", "5/10ms"}}, path: "routes[0].admission.rate",
			msg: `window 10ms is shorter than 100ms: held requests cannot be released that precisely; use e.g. "50/100ms"`,
		},
		"max delay below spacing": {
			edits: []edit{{"routes.0.admission.rate", "10/s"}, {"routes.0.admission.maxDelay", "50ms"}}, path: "routes[0].admission.maxDelay",
			msg: "50ms is shorter than the spacing of admitted requests at 10/s (110ms): no request could ever be held",
		},
		"max delay below spacing, global": {
			edits: []edit{{"routes.0.admission.rate", "10/s"}, {"routes.0.admission.maxDelay", "100ms"}, {"routes.0.admission.scope", "global"}}, path: "routes[0].admission.maxDelay",
			msg: "(115ms)",
		},
		"max delay at spacing":   {edits: []edit{{"routes.0.admission.rate", "10/s"}, {"routes.0.admission.maxDelay", "110ms"}}},
		"observe below spacing":  {edits: []edit{{"routes.0.admission.rate", "1/h"}, {"routes.0.admission.maxDelay", "1m"}, {"routes.0.admission.mode", "observe"}}, path: "routes[0].admission.maxDelay", msg: "no request could ever be held"},
		"reject with short rate": {edits: []edit{{"routes.0.admission.rate", "1000/100ms"}, {"routes.0.admission.mode", "reject"}, {"routes.0.admission.maxDelay", del}}},
	}
	base, err := os.ReadFile("testdata/valid.policy.yaml")
	require.NoError(t, err)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var doc any
			require.NoError(t, yaml.Unmarshal(base, &doc))
			for _, e := range tc.edits {
				doc = setPath(t, doc, strings.Split(e.path, "."), e.value)
			}
			data, err := yaml.Marshal(doc)
			require.NoError(t, err)

			p, err := Parse(data, "case.yaml")
			if tc.path == "" {
				require.NoError(t, err, "policy:\n%s", data)
				require.NotEmpty(t, p.Hash)
				return
			}
			require.Nil(t, p)
			require.ErrorIs(t, err, ErrInvalid)
			var perr *Error
			require.ErrorAs(t, err, &perr)
			found := false
			for _, pr := range perr.Problems {
				if pr.Path == tc.path && strings.Contains(pr.Msg, tc.msg) {
					found = true
					require.Positive(t, pr.Line, "problem without a line")
				}
			}
			require.True(t, found, "want %s: …%s…\ngot:\n%v\npolicy:\n%s", tc.path, tc.msg, err, data)
			if !tc.more {
				require.Len(t, perr.Problems, 1, "want only one problem, got:\n%v", err)
			}
		})
	}
}

// setPath returns node with the value at segs set to v (or removed, for
// del).
func setPath(t *testing.T, node any, segs []string, v any) any {
	t.Helper()
	if len(segs) == 0 {
		if s, ok := v.(y); ok {
			var out any
			require.NoError(t, yaml.Unmarshal([]byte(s), &out))
			return out
		}
		return v
	}
	if node == nil {
		if _, err := strconv.Atoi(segs[0]); err == nil {
			node = []any{}
		} else {
			node = map[string]any{}
		}
	}
	switch n := node.(type) {
	case map[string]any:
		if len(segs) == 1 && v == del {
			delete(n, segs[0])
			return n
		}
		n[segs[0]] = setPath(t, n[segs[0]], segs[1:], v)
		return n
	case []any:
		i, err := strconv.Atoi(segs[0])
		require.NoError(t, err)
		require.LessOrEqual(t, i, len(n))
		if i == len(n) {
			n = append(n, nil)
		}
		if len(segs) == 1 && v == del {
			return append(n[:i], n[i+1:]...)
		}
		n[i] = setPath(t, n[i], segs[1:], v)
		return n
	}
	t.Fatalf("cannot set %v in %T", segs, node)
	return nil
}
