package wire

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRolloutConfigRoundTrip(t *testing.T) {
	in := RolloutConfig{Route: "orders", StickyHeader: "x-user"}
	out, err := ParseRolloutConfig(in.AppendJSON(nil))
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	_, err = ParseRolloutConfig([]byte(`{"route": "", "sticky_header": "X-User"}`))
	for _, want := range []string{"configuration.route", "configuration.sticky_header"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// A user's bucket is its key's alone, so a canary of the buckets below a
// bound is sticky, and raising the bound only adds users.
func TestBucketIsStickyAndGrows(t *testing.T) {
	c := RolloutConfig{Route: "r", StickyHeader: "x-user"}
	header := func(user string) func(string) (string, bool) {
		return func(name string) (string, bool) { return user, name == "x-user" && user != "" }
	}
	in10 := map[string]bool{}
	for i := range 10_000 {
		u := fmt.Sprintf("user-%d", i)
		b := c.Bucket(header(u), "10.0.0.1:1234")
		require.Equal(t, b, c.Bucket(header(u), "10.0.0.2:99"), "the client address changed %s's bucket", u)
		require.Equal(t, b < 100_000, InCanary("user:"+u, 100_000))
		if b < 100_000 {
			in10[u] = true
		}
	}
	require.InDelta(t, 1000, len(in10), 100)
	n20 := 0
	for i := range 10_000 {
		u := fmt.Sprintf("user-%d", i)
		in := c.Bucket(header(u), "") < 200_000
		require.False(t, in10[u] && !in, "%s left the canary when it grew", u)
		if in {
			n20++
		}
	}
	require.InDelta(t, 2000, n20, 150)
	// Without the header: the address, port ignored.
	for i := range 100 {
		a := fmt.Sprintf("10.1.%d.%d", i/250, i%250)
		require.Equal(t, c.Bucket(header(""), a+":1"), c.Bucket(header(""), a+":2"))
		require.Equal(t, c.Bucket(header(""), a+":1") < 300_000, InCanary("addr:"+a, 300_000))
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
	r := RolloutConfig{StickyHeader: "x-user"}
	for i := range 10_000 {
		u := fmt.Sprintf("u%d", i)
		h := func(string) (string, bool) { return u, true }
		if r.Bucket(h, "") < 500_000 && Sampled(c.SampleKey("", h, ""), 500_000) {
			both++
		}
	}
	require.InDelta(t, 2500, both, 250, "independent halves overlap on a quarter")
}
