package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/wire"
)

// config is the plugin configuration (wire.PluginConfig, which Envoy passes
// as PluginConfig.configuration) and the admission budget built from it.
type config struct {
	wire.PluginConfig
	// adm is the validated admission configuration built from the above.
	adm admission.Config
}

// configFieldName maps admission.ConfigError fields to the plugin's names.
var configFieldName = map[string]string{
	"limit":    "limit",
	"window":   "window_ms",
	"maxDelay": "max_delay_ms",
	"mode":     "mode",
	"slack":    "slack_ms",
	"tick":     "tick_ms",
}

// parseConfig decodes the configuration (wire.ParsePluginConfig: syntax,
// types, defaults, tick and report) and validates its budget with
// admission.Config.Validate, reporting every problem at once in the
// plugin's field names.
func parseConfig(data []byte) (config, error) {
	pc, err := wire.ParsePluginConfig(data)
	c := config{PluginConfig: pc}
	if err != nil {
		return c, err
	}
	var errs []error
	mode, modeErr := admission.ParseMode(c.Mode)
	if modeErr != nil {
		errs = append(errs, configError(modeErr))
		// Validate the rest as if the mode were right: the maxDelay rules
		// depend on it and would only add noise.
		mode = admission.ModeObserve
	}
	c.adm = admission.Config{
		Limit:    int(c.Limit),
		Window:   time.Duration(c.WindowMs) * time.Millisecond,
		MaxDelay: time.Duration(c.MaxDelayMs) * time.Millisecond,
		Mode:     mode,
		Slack:    time.Duration(c.SlackMs) * time.Millisecond,
	}
	for _, err := range unjoin(c.adm.Validate()) {
		var ce *admission.ConfigError
		if errors.As(err, &ce) && ce.Field == "slack" && c.SlackMs == c.TickMs {
			ce = &admission.ConfigError{Field: "tick", Problem: ce.Problem} // the slack is the tick's (its default)
			err = ce
		}
		errs = append(errs, configError(err))
	}
	return c, errors.Join(errs...)
}

// configError names an admission error by the plugin's field.
func configError(err error) error {
	var ce *admission.ConfigError
	if !errors.As(err, &ce) {
		return errors.New("configuration: " + err.Error())
	}
	name := configFieldName[ce.Field]
	if name == "" {
		name = ce.Field
	}
	return errors.New("configuration." + name + ": " + ce.Problem)
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// hash is a short FNV-1a hash of everything that shapes a key's state (the
// admission config, the key header and the policy route), in hex. It is
// part of every shared data key, so a changed configuration starts from
// fresh states instead of reading ones another configuration wrote.
func (c *config) hash() string {
	h := uint32(2166136261)
	write := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		h ^= 0xff // field separator
		h *= 16777619
	}
	write(strconv.Itoa(c.adm.Limit))
	write(strconv.FormatInt(int64(c.adm.Window), 10))
	write(strconv.FormatInt(int64(c.adm.MaxDelay), 10))
	write(c.adm.Mode.String())
	write(strconv.FormatInt(int64(c.adm.Slack), 10))
	write(c.KeyHeader)
	write(c.Route)
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := range b {
		b[7-i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// logConfigError flattens a configuration error for Envoy's log.
func logConfigError(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
