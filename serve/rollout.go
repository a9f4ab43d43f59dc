package serve

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
)

// rollbackEvery is how often serve judges the gates of the routes in
// canary with autoRollback.
const rollbackEvery = 2 * time.Second

// autoRollback returns to shadow every route in canary with autoRollback
// whose gates fail (the route's, or one of its canary tenants'), by
// editing the policy file as `shadowlab rollback` does: serve then follows
// the file, and the file says what happened. A file that cannot be written
// is logged, at most once a minute per route, and tried again.
func (in *Instance) autoRollback(reg prometheus.Registerer) func(ctx context.Context) error {
	done := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_rollout_auto_rollbacks_total",
		Help: "Routes returned to shadow because a gate failed during canary.",
	}, []string{"route"})
	reg.MustRegister(done)
	lastErr := map[string]time.Time{}
	return func(ctx context.Context) error {
		t := time.NewTicker(rollbackEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			for _, rr := range in.Reporter.Rollout().Routes {
				if rr.Stage != policy.StageCanary || !rr.AutoRollback || !failing(rr) {
					continue
				}
				shadow := policy.StageShadow
				if err := policy.EditFile(in.cfg.PolicyPath, rr.Route, policy.RolloutEdit{Stage: &shadow}); err != nil {
					if time.Since(lastErr[rr.Route]) > time.Minute {
						lastErr[rr.Route] = time.Now()
						in.log.Error("automatic rollback: the gates fail, but the policy file could not be edited", zap.String("route", rr.Route), zap.Error(err))
					}
					continue
				}
				done.WithLabelValues(rr.Route).Inc()
				in.log.Warn("automatic rollback: a gate failed during canary; the route is back in shadow", zap.String("route", rr.Route),
					zap.String("policy", in.cfg.PolicyPath), zap.Any("gates", rr.Gates))
			}
		}
	}
}

// failing reports whether the route's gates fail, or one of its canary
// tenants'.
func failing(rr report.RouteRollout) bool {
	if rr.Verdict == report.Fail {
		return true
	}
	for _, t := range rr.Tenants {
		for _, c := range rr.CanaryTenants {
			if t.Tenant == c && t.Verdict == report.Fail {
				return true
			}
		}
	}
	return false
}
