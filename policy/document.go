package policy

import "time"

// The policy file as written: what Parse decodes, strictly, before it is
// checked and compiled into a Policy. Nothing outside this package sees
// these types; optional fields are pointers, nil when not written.

type document struct {
	Version   int                   `yaml:"version"`
	Listeners []docListener         `yaml:"listeners"`
	Services  map[string]docService `yaml:"services"`
	Routes    []docRoute            `yaml:"routes"`
}

type docListener struct {
	Name           string `yaml:"name"`
	Address        string `yaml:"address"`
	TrustRequestID bool   `yaml:"trustRequestID"`
}

type docService struct {
	Endpoints      []string  `yaml:"endpoints"`
	ConnectTimeout *duration `yaml:"connectTimeout"`
	Protocol       string    `yaml:"protocol"`
	TLS            *docTLS   `yaml:"tls"`
	GRPC           *docGRPC  `yaml:"grpc"`
}

type docGRPC struct {
	Descriptors string `yaml:"descriptors"`
	Reflection  bool   `yaml:"reflection"`
}

type docTLS struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"serverName"`
}

type docRoute struct {
	Name      string        `yaml:"name"`
	Match     Match         `yaml:"match"`
	Primary   string        `yaml:"primary"`
	Listeners []string      `yaml:"listeners"`
	Timeout   *duration     `yaml:"timeout"`
	Shadow    *docShadow    `yaml:"shadow"`
	Compare   *docCompare   `yaml:"compare"`
	Admission *docAdmission `yaml:"admission"`
	Rollout   *docRollout   `yaml:"rollout"`
}

type docShadow struct {
	Service         string   `yaml:"service"`
	Percent         *float64 `yaml:"percent"`
	Tenants         *Tenants `yaml:"tenants"`
	UnsafeMethods   bool     `yaml:"unsafeMethods"`
	MaxConcurrent   *uint32  `yaml:"maxConcurrent"`
	MaxRequestBytes *int64   `yaml:"maxRequestBytes"`
	Capture         *bool    `yaml:"capture"`
	StickyOn        string   `yaml:"stickyOn"`
}

type docCompare struct {
	Ignore           []string `yaml:"ignore"`
	NumericTolerance *float64 `yaml:"numericTolerance"`
	UnorderedArrays  []string `yaml:"unorderedArrays"`
	Headers          []string `yaml:"headers"`
	VaryOn           []string `yaml:"varyOn"`
	LearnNoise       *bool    `yaml:"learnNoise"`
	Redact           []string `yaml:"redact"`
	Reveal           []string `yaml:"reveal"`
	MaxBodyBytes     *int64   `yaml:"maxBodyBytes"`
}

type docAdmission struct {
	Rate     string    `yaml:"rate"`
	MaxDelay *duration `yaml:"maxDelay"`
	Key      string    `yaml:"key"`
	Mode     string    `yaml:"mode"`
	Scope    string    `yaml:"scope"`
}

// duration is a time.Duration written as a Go duration string ("1s",
// "250ms", "2m").
type duration struct {
	time.Duration
}
