package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// RolloutEdit is a change to one route's rollout block; nil fields are
// left as they are.
type RolloutEdit struct {
	Stage   *Stage
	Percent *float64
	// AddTenant switches the canary on for one more tenant (a value of the
	// rollout's tenants header, created from the shadow's tenants header
	// when the rollout has no tenants yet).
	AddTenant string
}

// EditRollout applies edit to route's rollout block (created when absent)
// in the policy file data, and returns the new file, which is checked in
// full: an edit that would make the policy invalid is refused with the
// problems, and nothing is written. Comments are kept; the YAML is
// re-indented.
func EditRollout(data []byte, source, route string, edit RolloutEdit) ([]byte, error) {
	if len(data) > MaxFileBytes || yamlNodeBound(data) > MaxYAMLNodes { // as Parse would
		return nil, fmt.Errorf("%s: %w (over %s or %d YAML nodes)", source, ErrTooLarge, mib(MaxFileBytes), MaxYAMLNodes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a policy (a YAML mapping)", source)
	}
	routes := mapValue(doc.Content[0], "routes")
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: no routes", source)
	}
	var rn *yaml.Node
	for _, item := range routes.Content {
		if n := mapValue(item, "name"); n != nil && n.Value == route {
			rn = item
		}
	}
	if rn == nil {
		return nil, fmt.Errorf("%s: no route %q", source, route)
	}
	ro := mapValue(rn, "rollout")
	if ro == nil {
		ro = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		rn.Content = append(rn.Content, scalar("rollout"), ro)
	}
	if ro.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: routes[%q].rollout: not a mapping", source, ro.Line, route)
	}
	if edit.Stage != nil {
		setMap(ro, "stage", scalar(string(*edit.Stage)))
	}
	if edit.Percent != nil {
		setMap(ro, "percent", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(*edit.Percent, 'g', -1, 64)})
	}
	if t := edit.AddTenant; t != "" {
		tn := mapValue(ro, "tenants")
		if tn == nil {
			p, err := Parse(data, source)
			if err != nil {
				return nil, err
			}
			h := p.Route(route).TenantHeader()
			if h == "" {
				return nil, fmt.Errorf("%s: route %q has no tenants header (give rollout.tenants.header, or shadow.tenants)", source, route)
			}
			tn = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
			tn.Content = []*yaml.Node{scalar("header"), scalar(h), scalar("values"), {Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}}
			setMap(ro, "tenants", tn)
		}
		vals := mapValue(tn, "values")
		if vals == nil || vals.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%s: routes[%q].rollout.tenants.values: not a list", source, route)
		}
		for _, v := range vals.Content {
			if v.Value == t {
				return nil, fmt.Errorf("the canary of route %q is already on for tenant %q", route, t)
			}
		}
		vals.Content = append(vals.Content, scalar(t))
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if _, err := Parse(out.Bytes(), source); err != nil {
		return nil, fmt.Errorf("the edited policy is not valid; nothing was written:\n%w", err)
	}
	return out.Bytes(), nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

// mapValue is the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMap sets key to v in mapping m, in place or appended.
func setMap(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v.HeadComment, v.LineComment = m.Content[i+1].HeadComment, m.Content[i+1].LineComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

// EditFile applies edit to route's rollout block in the policy file at
// path (EditRollout) and writes it back atomically (WriteFile): nothing is
// written unless the edited policy is valid.
func EditFile(path, route string, edit RolloutEdit) error {
	data, err := ReadFile(path)
	if err == nil {
		data, err = EditRollout(data, path, route, edit)
	}
	if err == nil {
		err = WriteFile(path, data)
	}
	return err
}

// WriteFile replaces the file at path with data atomically (a temporary
// file beside it, renamed over it), keeping its permissions: a reader — a
// serve following the file — never sees half a policy.
func WriteFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr, os.Chmod(f.Name(), mode)); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
