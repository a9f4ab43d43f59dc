package wire

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRolloutConfigRoundTrip(t *testing.T) {
	in := RolloutConfig{Route: "orders", PerMillion: 100_000, StickyHeader: "x-user", TenantHeader: "x-tenant", Tenants: "acme\nglobex"}
	out, err := ParseRolloutConfig(in.AppendJSON(nil))
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	_, err = ParseRolloutConfig([]byte(`{"route": "", "per_million": 2000000, "sticky_header": "X-User"}`))
	for _, want := range []string{"configuration.route", "configuration.per_million", "configuration.sticky_header"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// A user is in or out of the canary by its key alone, and raising the
// share only adds users.
func TestCanaryIsStickyAndGrows(t *testing.T) {
	c := RolloutConfig{Route: "r", PerMillion: 100_000, StickyHeader: "x-user"}
	header := func(user string) func(string) (string, bool) {
		return func(name string) (string, bool) { return user, name == "x-user" && user != "" }
	}
	in10 := map[string]bool{}
	for i := range 10_000 {
		u := fmt.Sprintf("user-%d", i)
		if c.Canary(header(u), "10.0.0.1:1234") {
			in10[u] = true
		}
		if c.Canary(header(u), "10.0.0.2:99") != in10[u] {
			t.Fatalf("%s: the client address changed the decision", u)
		}
	}
	if n := len(in10); n < 900 || n > 1100 {
		t.Fatalf("10 %%: %d of 10000 users", n)
	}
	c.PerMillion = 200_000
	n20 := 0
	for i := range 10_000 {
		u := fmt.Sprintf("user-%d", i)
		in := c.Canary(header(u), "")
		if in10[u] && !in {
			t.Fatalf("%s left the canary when it grew", u)
		}
		if in {
			n20++
		}
	}
	if n20 < 1850 || n20 > 2150 {
		t.Fatalf("20 %%: %d of 10000 users", n20)
	}
	// Without the header: the address, port ignored.
	for i := range 100 {
		a := fmt.Sprintf("10.1.%d.%d", i/250, i%250)
		if c.Canary(header(""), a+":1") != c.Canary(header(""), a+":2") {
			t.Fatalf("%s: the port changed the decision", a)
		}
	}
}

func TestCanaryTenants(t *testing.T) {
	c := RolloutConfig{Route: "r", PerMillion: 1_000_000, TenantHeader: "x-tenant", Tenants: "acme\nglobex"}
	for tenant, want := range map[string]bool{"acme": true, "globex": true, "initech": false, "": false} {
		h := func(name string) (string, bool) { return tenant, name == "x-tenant" && tenant != "" }
		if got := c.Canary(h, "127.0.0.1:5"); got != want {
			t.Errorf("tenant %q: canary %v, want %v", tenant, got, want)
		}
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1:80": "10.0.0.1", "[::1]:80": "::1", "::1": "::1", "10.0.0.1": "10.0.0.1", "": ""} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// A sticky shadow sample and a canary of the same users are independent:
// the keys are salted apart.
func TestSampleKey(t *testing.T) {
	c := CaptureConfig{SampleStickyHeader: "x-user"}
	h := func(name string) (string, bool) { return "u1", name == "x-user" }
	none := func(string) (string, bool) { return "", false }
	require.Equal(t, "shadow-user:u1", c.SampleKey("id-1", h, "10.0.0.1:80"))
	require.Equal(t, "shadow-addr:10.0.0.1", c.SampleKey("id-1", none, "10.0.0.1:80"))
	require.Equal(t, "id-1", (&CaptureConfig{}).SampleKey("id-1", h, ""))
	both := 0
	r := RolloutConfig{PerMillion: 500_000, StickyHeader: "x-user"}
	s := CaptureConfig{SampleStickyHeader: "x-user", SamplePerMillion: 500_000}
	for i := range 10_000 {
		u := fmt.Sprintf("u%d", i)
		h := func(string) (string, bool) { return u, true }
		if r.Canary(h, "") && Sampled(s.SampleKey("", h, ""), s.SamplePerMillion) {
			both++
		}
	}
	require.InDelta(t, 2500, both, 250, "independent halves overlap on a quarter")
}
