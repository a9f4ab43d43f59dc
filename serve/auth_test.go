package serve

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/auth"
)

func TestCheckExposure(t *testing.T) {
	tlsOn := Credentials{TLS: auth.TLSFiles{Cert: "c", Key: "k", ClientCA: "ca"}, Peers: auth.Peers{"spiffe://td/"}}
	withTokens := tlsOn
	withTokens.ReadTokenFile = "r"
	tests := map[string]struct {
		cfg  Config
		want []string // substrings of the error; none: allowed
	}{
		"loopback, no credentials": {cfg: Config{XDSAddress: "127.0.0.1:1", GatewayAddress: "[::1]:2", APIAddress: "localhost:3", AdmissionAddress: "127.0.0.1:4"}},
		"every port exposed": {
			cfg:  Config{XDSAddress: "0.0.0.0:1", GatewayAddress: ":2", APIAddress: "10.0.0.1:3", AdmissionAddress: "[::]:4"},
			want: []string{"--xds-address 0.0.0.0:1", "--gateway-address :2", "--api-address 10.0.0.1:3", "--admission-address [::]:4", "--tls-cert", flagOptOut},
		},
		"opt-out":                {cfg: Config{XDSAddress: "0.0.0.0:1", APIAddress: "0.0.0.0:3", Credentials: Credentials{InsecureBehindProxy: true}}},
		"tls covers grpc ports":  {cfg: Config{XDSAddress: "0.0.0.0:1", AdmissionAddress: "0.0.0.0:4", Credentials: tlsOn}},
		"api needs a read token": {cfg: Config{APIAddress: "0.0.0.0:3", Credentials: tlsOn}, want: []string{"--api-address 0.0.0.0:3", "--api-read-token-file"}},
		"api with tls and token": {cfg: Config{APIAddress: "0.0.0.0:3", Credentials: withTokens}},
		"tls without peers":      {cfg: Config{XDSAddress: "0.0.0.0:1", Credentials: Credentials{TLS: tlsOn.TLS}}, want: []string{"--xds-address"}},
		"off ports are fine":     {cfg: Config{XDSAddress: "127.0.0.1:1"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := checkExposure(tt.cfg)
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
