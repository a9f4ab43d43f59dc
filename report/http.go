package report

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shadowlab/shadowlab/wire"
	"go.uber.org/zap"
)

// maxPairsLimit bounds GET /api/v1/pairs?limit=.
const maxPairsLimit = 1000

// Handler serves:
//
//	GET /metrics                  Prometheus text format of Registry()
//	GET /api/v1/report            Report (all routes)
//	GET /api/v1/routes/{route}    RouteReport; 404 naming the route if unknown
//	GET /api/v1/pairs             {"pairs": [PairRecord...]}, newest first;
//	                              ?route=R&outcome=O&request_id=X&limit=N (default 50, max 1000)
//	GET /api/v1/pairs/{id}        PairDetail: the pair with its responses (redacted);
//	                              404 when the store no longer has it
//	GET /api/v1/admission         admission outcomes per scope, route and key
//	GET /api/v1/rollout           RolloutReport: each rolled-out route's stage and gates
//	GET /api/v1/rollout/{route}   RouteRollout; 404 naming the route if it has no rollout
//	POST /api/v1/admission/local  a wasm plugin's counts since its last report (NDJSON)
//	GET /healthz                  {"status": "ok"}; 503 with the reason when the store
//	                              cannot be written (results are then kept in memory)
//
// Errors are JSON {"error": "..."}; a bad or unknown query parameter is a
// 400 naming the parameter.
func (r *Reporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/report", r.serveReport)
	mux.HandleFunc("GET /api/v1/routes/{route}", r.serveRoute)
	mux.HandleFunc("GET /api/v1/pairs", r.servePairs)
	mux.HandleFunc("GET /api/v1/pairs/{id}", r.servePair)
	mux.HandleFunc("GET /healthz", r.serveHealth)
	mux.HandleFunc("GET /api/v1/admission", r.serveAdmission)
	mux.HandleFunc("GET /api/v1/rollout", r.serveRollout)
	mux.HandleFunc("GET /api/v1/rollout/{route}", r.serveRouteRollout)
	mux.HandleFunc("POST "+wire.ReportPath, r.serveLocalAdmission)
	return mux
}

func (r *Reporter) serveReport(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	r.writeJSON(w, http.StatusOK, r.Report())
}

func (r *Reporter) serveRollout(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	r.writeJSON(w, http.StatusOK, r.Rollout())
}

func (r *Reporter) serveRouteRollout(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	route := req.PathValue("route")
	for _, rr := range r.Rollout().Routes {
		if rr.Route == route {
			r.writeJSON(w, http.StatusOK, rr)
			return
		}
	}
	r.writeError(w, http.StatusNotFound, fmt.Errorf("route %q: no rollout (not in the policy, or the route has no rollout block)", route))
}

func (r *Reporter) serveRoute(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	route := req.PathValue("route")
	rr, ok := r.RouteReport(route)
	if !ok {
		r.writeError(w, http.StatusNotFound, fmt.Errorf("route %q: no results (not in the policy, or no pair recorded yet)", route))
		return
	}
	r.writeJSON(w, http.StatusOK, rr)
}

func (r *Reporter) servePairs(w http.ResponseWriter, req *http.Request) {
	q, err := queryParams(req, "route", "outcome", "request_id", "limit")
	if err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	pq := PairsQuery{Route: q["route"], Outcome: Outcome(q["outcome"]), RequestID: q["request_id"], Limit: 50}
	if pq.Outcome != "" && !knownOutcome(pq.Outcome) {
		r.writeError(w, http.StatusBadRequest, fmt.Errorf("outcome: must be one of %s (got %q)", outcomeList(), pq.Outcome))
		return
	}
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPairsLimit {
			r.writeError(w, http.StatusBadRequest, fmt.Errorf("limit: must be an integer from 1 to %d (got %q)", maxPairsLimit, s))
			return
		}
		pq.Limit = n
	}
	pairs, err := r.Pairs(req.Context(), pq)
	if err != nil {
		r.log.Error("listing recent pairs failed", zap.Error(err))
		r.writeError(w, http.StatusInternalServerError, err)
		return
	}
	r.writeJSON(w, http.StatusOK, struct {
		Pairs []PairRecord `json:"pairs"`
	}{pairs})
}

func (r *Reporter) servePair(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	s := req.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		r.writeError(w, http.StatusBadRequest, fmt.Errorf("pair id: must be a positive integer (got %q)", clip(s, 40)))
		return
	}
	pd, ok, err := r.Pair(req.Context(), id)
	switch {
	case err != nil:
		r.log.Error("reading a pair failed", zap.Error(err))
		r.writeError(w, http.StatusInternalServerError, err)
	case !ok:
		r.writeError(w, http.StatusNotFound, fmt.Errorf("pair %d: not kept (the store keeps the last %d non-match pairs)", id, r.cfg.MaxRecentPairs))
	default:
		r.writeJSON(w, http.StatusOK, pd)
	}
}

func (r *Reporter) serveHealth(w http.ResponseWriter, req *http.Request) {
	if err := r.Healthy(req.Context()); err != nil {
		r.writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	r.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// queryParams returns the query parameters, refusing unknown or repeated
// ones.
func queryParams(req *http.Request, allowed ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	names := make([]string, 0, len(vals))
	for name := range vals {
		names = append(names, name)
	}
	slices.Sort(names)
	out := map[string]string{}
	for _, name := range names {
		switch {
		case !slices.Contains(allowed, name):
			if len(allowed) == 0 {
				return nil, fmt.Errorf("%s: unknown query parameter (this endpoint takes none)", name)
			}
			return nil, fmt.Errorf("%s: unknown query parameter (known: %s)", name, strings.Join(allowed, ", "))
		case len(vals[name]) > 1:
			return nil, fmt.Errorf("%s: given %d times", name, len(vals[name]))
		}
		out[name] = vals[name][0]
	}
	return out, nil
}

func outcomeList() string {
	return strings.Join([]string{string(Match), string(Diff), string(PrimaryOnly), string(ShadowOnly), string(Ambiguous), string(Skipped)}, ", ")
}

func (r *Reporter) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		r.log.Error("encoding a response failed", zap.Error(err))
		http.Error(w, `{"error":"encoding the response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (r *Reporter) writeError(w http.ResponseWriter, status int, err error) {
	r.writeJSON(w, status, map[string]string{"error": err.Error()})
}
