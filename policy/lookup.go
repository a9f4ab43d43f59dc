package policy

import "sort"

// Route returns the route with the given name.
func (p *Policy) Route(name string) (*Route, bool) {
	for i := range p.Routes {
		if p.Routes[i].Name == name {
			return &p.Routes[i], true
		}
	}
	return nil, false
}

// ServiceNames returns the names of all services, sorted.
func (p *Policy) ServiceNames() []string {
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
