package admission

import (
	"errors"
	"fmt"
	"time"
)

// Bounds enforced by Validate. They keep every sum of times in int64 range:
// times are clamped to [0, 2^62) ns and spans are at most a year.
const (
	// MaxLimit is the largest Limit (counts are stored as uint32).
	MaxLimit = 1_000_000_000
	// MaxSpan bounds Window, MaxDelay and Slack.
	MaxSpan = 366 * 24 * time.Hour
	// MinRetrySpread is the shortest horizon over which Retry-After values
	// are spread (see Decision.RetryAfter): whole seconds need a few dozen
	// distinct values to de-synchronise a burst even when Window is 1s.
	MinRetrySpread = time.Minute
)

// Mode says what happens to a request over the budget.
type Mode uint8

// Modes. The zero Mode is unset and fails Validate.
const (
	// ModeDelay holds a request until its slot in the schedule (at most
	// MaxDelay), then admits it; a request whose slot is further away is
	// rejected at once with a Retry-After.
	ModeDelay Mode = iota + 1
	// ModeReject admits a request at once while the sliding window has
	// room and rejects it with a Retry-After otherwise. Nothing is held.
	ModeReject
	// ModeObserve admits every request but decides and counts as ModeDelay
	// would when MaxDelay > 0, as ModeReject would otherwise: the dry run
	// for tuning a limit.
	ModeObserve
)

// String returns the policy spelling: "delay", "reject" or "observe".
func (m Mode) String() string {
	switch m {
	case ModeDelay:
		return "delay"
	case ModeReject:
		return "reject"
	case ModeObserve:
		return "observe"
	case 0:
		return "unset"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "delay", "reject" or "observe". Its error is a
// *ConfigError.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "delay":
		return ModeDelay, nil
	case "reject":
		return ModeReject, nil
	case "observe":
		return ModeObserve, nil
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return 0, &ConfigError{Field: "mode", Problem: fmt.Sprintf("must be delay, reject or observe (got %q)", s)}
}

// MarshalText implements encoding.TextMarshaler, so a Mode is a JSON string.
func (m Mode) MarshalText() ([]byte, error) {
	if m < ModeDelay || m > ModeObserve {
		return nil, fmt.Errorf("%w: mode: cannot encode %s", ErrInvalidConfig, m)
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (see ParseMode).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Config is the budget of one key: at most Limit requests reach the
// upstream in any window of length Window (sliding, not aligned).
//
// A State is only meaningful for the Config that produced it: after a
// change of Limit, Window, Slack or Mode start keys from the zero State
// (for example by naming shared-data keys after the configuration).
type Config struct {
	// Limit is the number of requests admitted per Window, 1 to MaxLimit.
	Limit int
	// Window is the length of the sliding window, greater than 0 and at
	// most MaxSpan: 1s, 15m, 500ms, 3h20m...
	Window time.Duration
	// MaxDelay is the longest a request may be held. Required (> 0) with
	// ModeDelay, must be 0 with ModeReject; with ModeObserve > 0 simulates
	// ModeDelay and 0 simulates ModeReject. At most MaxSpan.
	MaxDelay time.Duration
	// Mode is what happens to requests over the budget. Required.
	Mode Mode
	// Slack is how late the caller may release a held request after the
	// Delay it was given (timer or tick granularity: the wasm plugin
	// releases from OnTick). The schedule spaces slots by
	// (Window+Slack)/Limit so that the guarantee holds at the upstream
	// despite late releases. 0 (the default) means exact release. At most
	// Window.
	Slack time.Duration
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid admission config")

// ConfigError is one problem with one Config field. It wraps
// ErrInvalidConfig.
type ConfigError struct {
	Field   string // "limit", "window", "maxDelay", "mode", "slack" (policy spelling)
	Problem string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Validate reports every problem of c, each a *ConfigError naming its field,
// joined with errors.Join; nil if c is valid.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if c.Limit < 1 || c.Limit > MaxLimit {
		add("limit", "must be between 1 and %d (got %d)", MaxLimit, c.Limit)
	}
	if c.Window <= 0 || c.Window > MaxSpan {
		add("window", "must be greater than 0 and at most %s (got %s)", MaxSpan, c.Window)
	}
	if c.Mode < ModeDelay || c.Mode > ModeObserve {
		add("mode", "must be delay, reject or observe (got %s)", c.Mode)
	}
	switch {
	case c.MaxDelay < 0 || c.MaxDelay > MaxSpan:
		add("maxDelay", "must be between 0 and %s (got %s)", MaxSpan, c.MaxDelay)
	case c.Mode == ModeDelay && c.MaxDelay == 0:
		add("maxDelay", "required with mode delay: how long a request may be held")
	case c.Mode == ModeReject && c.MaxDelay != 0:
		add("maxDelay", "must be 0 with mode reject, which holds nothing (got %s)", c.MaxDelay)
	}
	if c.Slack < 0 || c.Slack > c.Window {
		add("slack", "must be between 0 and the window %s (got %s)", c.Window, c.Slack)
	}
	return errors.Join(errs...)
}

// MaxRetryAfter is the largest RetryAfter Decide returns under c (0 if c is
// invalid): ceil((wait + spread) / 1s), where spread = max(Window,
// MinRetrySpread) and wait bounds how far ahead the budget can first admit a
// refused request: three slots of the delay schedule, or one window plus one
// sub-window (Window/16) for the reject window.
func (c Config) MaxRetryAfter() int {
	p, ok := c.plan()
	if !ok {
		return 0
	}
	return int(ceilDiv(p.maxWait+p.spread, int64(time.Second)))
}

// IdleAfter bounds how long a key's State stays busy after its last
// decision or release under c (0 if c is invalid): from then on State.Idle
// holds and the State decides like the zero State, so a store may expire
// it (the shared budget sets it as the key's time to live). It is the sum
// of the spans each part of the State can reach ahead of its last time,
// plus a second for clocks that disagree: the schedule (MaxDelay and four
// slots), the window (one Window and a sub-window) and the Retry-After
// horizon (the wait bound, one spread and a booking step).
func (c Config) IdleAfter() time.Duration {
	p, ok := c.plan()
	if !ok {
		return 0
	}
	busy := p.maxDelay + 4*p.spacing + p.window + p.bucket + p.unit + p.maxWait + p.spread + p.book
	return time.Duration(busy) + time.Second
}

// The reject window cuts time into sub-windows of length ceil(W/subWindows)
// and keeps the newest buckets of them: every instant within W before now
// lies in one of them.
const (
	subWindows = 16
	buckets    = subWindows + 1
)

// plan is a valid Config in the units Decide works in (nanoseconds).
type plan struct {
	limit    int64
	window   int64
	spacing  int64 // T = ceil((Window+Slack)/Limit): grid step of the schedule
	bucket   int64 // ceil(Window/subWindows): width of a reject-mode sub-window
	unit     int64 // resolution of the times stored per sub-window (1 ns below 4.3 s)
	maxDelay int64
	book     int64 // Retry-After booking step: the budget's pace for whole-second clumps
	spread   int64 // horizon over which Retry-After values are spread
	maxWait  int64 // bound on (earliest admission - now) for a refused request
	future   int64 // a schedule further ahead than now+future is stale
	schedule bool  // delay schedule (ModeDelay, ModeObserve with MaxDelay); else reject window
	observe  bool
}

// plan converts c; ok is false if c is invalid (Decide then admits).
func (c Config) plan() (p plan, ok bool) {
	if c.Limit < 1 || c.Limit > MaxLimit || c.Window <= 0 || c.Window > MaxSpan ||
		c.MaxDelay < 0 || c.MaxDelay > MaxSpan || c.Slack < 0 || c.Slack > c.Window {
		return p, false
	}
	switch c.Mode {
	case ModeDelay:
		p.schedule = c.MaxDelay > 0
		if !p.schedule {
			return p, false
		}
	case ModeReject:
		if c.MaxDelay != 0 {
			return p, false
		}
	case ModeObserve:
		p.schedule, p.observe = c.MaxDelay > 0, true
	default:
		return p, false
	}
	p.limit = int64(c.Limit)
	p.window = int64(c.Window)
	p.spacing = ceilDiv(int64(c.Window+c.Slack), p.limit)
	p.bucket = ceilDiv(p.window, subWindows)
	p.unit = p.bucket>>32 + 1
	p.maxDelay = int64(c.MaxDelay)
	p.spread = max(p.window, int64(MinRetrySpread))
	// Retry-After is in whole seconds, so the retries of a burst come back
	// in clumps, one per second. Of a clump the schedule can take the
	// requests whose slot is within MaxDelay, (D+T)/T of them; the window
	// takes Limit. Booking faster than that only sends clients back to be
	// refused again.
	sec := int64(time.Second)
	if p.schedule {
		p.book = p.spacing
		if p.spacing < sec { // else sec*T/(D+T) < T; and sec*T stays in range
			p.book = max(p.spacing, ceilDiv(sec*p.spacing, p.maxDelay+p.spacing))
		}
		// The last admitted release is within MaxDelay of its decision;
		// next is at most two slots after it (one, plus the phase at the
		// start of a schedule), and the offset adds less than one.
		p.maxWait = 3 * p.spacing
	} else {
		p.book = max(p.spacing, ceilDiv(sec, p.limit))
		p.maxWait = p.window + p.bucket + p.unit
	}
	p.future = p.maxDelay + p.window + 2*p.spacing
	return p, true
}

// ceilDiv is ceil(a/b) for a >= 0, b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
