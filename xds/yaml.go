package xds

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// YAML renders r the way Envoy's docs write config: snake_case field names,
// map keys sorted, one document with listeners, routes, scopes (when a
// listener is scoped), clusters and runtimes. Of the runtime layers, only
// those with keys are shown (the empty ones are served all the same). The
// output is deterministic (golden files rely on it).
func (r *Resources) YAML() ([]byte, error) {
	doc := map[string][]any{}
	var runtimes []proto.Message
	for _, rt := range r.Runtimes {
		if len(rt.GetLayer().GetFields()) > 0 {
			runtimes = append(runtimes, rt)
		}
	}
	parts := map[string][]proto.Message{
		"listeners": messages(r.Listeners),
		"routes":    messages(r.Routes),
		"clusters":  messages(r.Clusters),
		"runtimes":  runtimes,
	}
	if len(r.Scopes) > 0 {
		parts["scopes"] = messages(r.Scopes)
	}
	for key, items := range parts {
		doc[key] = []any{}
		for _, m := range items {
			v, err := plain(m)
			if err != nil {
				return nil, err
			}
			doc[key] = append(doc[key], v)
		}
	}
	return yaml.Marshal(doc)
}

// MessageYAML renders one message (a bootstrap, say) like YAML does.
func MessageYAML(m proto.Message) ([]byte, error) {
	v, err := plain(m)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(v)
}

func messages[T proto.Message](items []T) []proto.Message {
	out := make([]proto.Message, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// plain converts m to maps and slices through protojson, so the YAML encoder
// (which sorts map keys) makes the output deterministic.
func plain(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering %T: %w", m, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("rendering %T: %w", m, err)
	}
	return integers(v), nil
}

// integers turns JSON numbers into int64 where they are whole, so YAML shows
// 1000000, not 1e+06.
func integers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = integers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = integers(e)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
