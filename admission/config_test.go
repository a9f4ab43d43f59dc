package admission

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Minute, Mode: ModeDelay}
	with := func(f func(*Config)) Config {
		c := ok
		f(&c)
		return c
	}
	tests := map[string]struct {
		cfg  Config
		want []string // "field: fragment", one per problem; none if valid
	}{
		"delay":                     {cfg: ok},
		"reject":                    {cfg: Config{Limit: 10000, Window: 15 * time.Minute, Mode: ModeReject}},
		"observe as delay":          {cfg: with(func(c *Config) { c.Mode = ModeObserve })},
		"observe as reject":         {cfg: Config{Limit: 1, Window: 500 * time.Millisecond, Mode: ModeObserve}},
		"slack up to the window":    {cfg: with(func(c *Config) { c.Slack = time.Second })},
		"limit at the maximum":      {cfg: with(func(c *Config) { c.Limit = MaxLimit })},
		"odd window":                {cfg: with(func(c *Config) { c.Window = 3*time.Hour + 20*time.Minute + 7 })},
		"zero":                      {cfg: Config{}, want: []string{"limit: must be between 1", "window: must be greater than 0", "mode: must be delay, reject or observe (got unset)"}},
		"limit 0":                   {cfg: with(func(c *Config) { c.Limit = 0 }), want: []string{"limit: must be between 1 and 1000000000 (got 0)"}},
		"limit too big":             {cfg: with(func(c *Config) { c.Limit = MaxLimit + 1 }), want: []string{"limit: must be between 1 and 1000000000 (got 1000000001)"}},
		"window negative":           {cfg: with(func(c *Config) { c.Window = -time.Second }), want: []string{"window: must be greater than 0 and at most 8784h0m0s (got -1s)", "slack: must be between 0 and the window"}},
		"window too long":           {cfg: with(func(c *Config) { c.Window = MaxSpan + 1 }), want: []string{"window: must be greater than 0"}},
		"mode unknown":              {cfg: with(func(c *Config) { c.Mode = 9 }), want: []string{"mode: must be delay, reject or observe (got Mode(9))"}},
		"delay without max delay":   {cfg: with(func(c *Config) { c.MaxDelay = 0 }), want: []string{"maxDelay: required with mode delay"}},
		"reject with max delay":     {cfg: with(func(c *Config) { c.Mode = ModeReject }), want: []string{"maxDelay: must be 0 with mode reject, which holds nothing (got 2m0s)"}},
		"max delay negative":        {cfg: with(func(c *Config) { c.MaxDelay = -1 }), want: []string{"maxDelay: must be between 0 and 8784h0m0s (got -1ns)"}},
		"max delay too long":        {cfg: with(func(c *Config) { c.MaxDelay = MaxSpan + 1 }), want: []string{"maxDelay: must be between 0"}},
		"slack negative":            {cfg: with(func(c *Config) { c.Slack = -1 }), want: []string{"slack: must be between 0 and the window 1s (got -1ns)"}},
		"slack over the window":     {cfg: with(func(c *Config) { c.Slack = 2 * time.Second }), want: []string{"slack: must be between 0 and the window 1s (got 2s)"}},
		"every problem is reported": {cfg: Config{Limit: -1, Window: time.Second, MaxDelay: time.Second, Mode: ModeReject, Slack: -1}, want: []string{"limit:", "maxDelay: must be 0 with mode reject", "slack:"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if tc.cfg.MaxRetryAfter() < 1 {
					t.Fatalf("MaxRetryAfter() = %d for a valid config", tc.cfg.MaxRetryAfter())
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("%v does not wrap ErrInvalidConfig", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate() reported %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Fatalf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(tc.want[0], ce.Field+":") {
				t.Fatalf("errors.As: first *ConfigError %+v, want field of %q", ce, tc.want[0])
			}
			if tc.cfg.MaxRetryAfter() != 0 {
				t.Fatalf("MaxRetryAfter() = %d for an invalid config, want 0", tc.cfg.MaxRetryAfter())
			}
		})
	}
}

func TestMaxRetryAfter(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want int
	}{
		// spread 60 s (MinRetrySpread) + three 10 ms slots
		"100/s delay": {Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}, 61},
		// spread 60 s + one window + one sub-window (62.5 ms) + 1 ns
		"100/s reject": {Config{Limit: 100, Window: time.Second, Mode: ModeReject}, 62},
		// spread 15 m + 15 m + 56.25 s + 1 ns
		"10000/15m reject": {Config{Limit: 10000, Window: 15 * time.Minute, Mode: ModeReject}, 1857},
		// spread 15 m + three 90 ms slots
		"10000/15m delay": {Config{Limit: 10000, Window: 15 * time.Minute, MaxDelay: time.Minute, Mode: ModeDelay}, 901},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.cfg.MaxRetryAfter(); got != tc.want {
				t.Fatalf("MaxRetryAfter() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestModeText(t *testing.T) {
	for _, m := range []Mode{ModeDelay, ModeReject, ModeObserve} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Mode
		if err := json.Unmarshal(b, &back); err != nil || back != m {
			t.Fatalf("%s: JSON %s decodes to %v, %v", m, b, back, err)
		}
	}
	var m Mode
	if err := json.Unmarshal([]byte(`"queue"`), &m); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf(`Unmarshal "queue": %v, want ErrInvalidConfig`, err)
	}
	if _, err := json.Marshal(Mode(0)); err == nil {
		t.Fatal("the unset Mode encodes")
	}
}
