package report

import (
	"sync/atomic"

	"github.com/shadowlab/shadowlab/policy"
)

// PolicyRoute is one route of the policy in use as the report lists it
// (Report.Policy): what is mirrored, where, and how far it has moved on.
type PolicyRoute struct {
	Route   string  `json:"route"`
	Primary string  `json:"primary"`
	Shadow  string  `json:"shadow"`  // "" when the route is not mirrored
	Percent float64 `json:"percent"` // the mirrored share, 0–100
	// Tenants are the tenants mirrored (the shadow's tenant list); [] is
	// every client.
	Tenants []string `json:"tenants"`
	// Compared says the shadow's answers are captured and compared.
	Compared bool `json:"compared"`
	// Stage is the rollout's stage; "" when the route has no rollout.
	Stage policy.Stage `json:"stage"`
	// Admission is the scope of the route's admission ("local" or
	// "global"); "" without.
	Admission string `json:"admission"`
}

// policyRoutes holds the routes of the policy in use.
type policyRoutes struct{ p atomic.Pointer[[]PolicyRoute] }

// UsePolicy makes pol the policy Report.Policy lists.
func (r *Reporter) UsePolicy(pol *policy.Policy) {
	out := make([]PolicyRoute, 0, len(pol.Routes))
	for _, rt := range pol.Routes {
		pr := PolicyRoute{Route: rt.Name, Tenants: []string{}}
		if rt.Primary != nil {
			pr.Primary = rt.Primary.Name
		}
		if s := rt.Shadow; s != nil {
			if s.Service != nil {
				pr.Shadow = s.Service.Name
			}
			pr.Percent, pr.Compared = s.Percent, s.Capture
			if s.Tenants != nil {
				pr.Tenants = append(pr.Tenants, s.Tenants.Values...)
			}
		}
		if rt.Rollout != nil {
			pr.Stage = rt.Rollout.Stage
		}
		if rt.Admission != nil {
			pr.Admission = rt.Admission.Scope.String()
		}
		out = append(out, pr)
	}
	r.policy.p.Store(&out)
}

// policyList is the routes of the policy in use; [] before UsePolicy.
func (r *Reporter) policyList() []PolicyRoute {
	if p := r.policy.p.Load(); p != nil {
		return *p
	}
	return []PolicyRoute{}
}
