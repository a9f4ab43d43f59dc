package pair

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
)

// maxCaptureBatch bounds one batch from the plugin (which sends at most
// wire.DefaultCapturePending a call unless configured otherwise).
const maxCaptureBatch = 16 << 20

// CaptureHandler takes the plugin's capture batches (POST
// wire.CapturePath): each record becomes a primary half offered to p. A
// malformed batch is refused whole (400); records of routes that are not
// mirrored under the policy in use are dropped and counted.
func (p *Pairer) CaptureHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxCaptureBatch+1))
		if err != nil || len(body) > maxCaptureBatch {
			http.Error(w, "batch unreadable or over 16 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		recs, err := wire.ParseCaptureBatch(body)
		if err != nil {
			p.count(dropMalformed)
			http.Error(w, "capture batch: "+err.Error(), http.StatusBadRequest)
			return
		}
		at := p.now()
		for i := range recs {
			if p.state(recs[i].Route) == nil {
				p.Drop(DropUnknown)
				continue
			}
			p.Offer(primaryHalf(&recs[i], at))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// primaryHalf is the half a capture record stands for.
func primaryHalf(r *wire.CaptureRecord, at time.Time) Half {
	h := Half{
		Route: r.Route, Side: wire.SidePrimary, RequestID: r.RequestID, Method: r.Method, Target: r.Target,
		Response:  compare.Response{Status: r.Status, Headers: make(map[string]string, len(r.Headers)), Body: r.Body},
		Latency:   time.Duration(r.LatencyMicros) * time.Microsecond,
		BodyBytes: int64(r.BodyBytes),
		TooLarge:  r.Flags&wire.FlagTooLarge != 0,
		At:        at,
	}
	h.Path, _, _ = strings.Cut(r.Target, "?")
	firstValues(h.Response.Headers, r.Headers)
	if len(r.Trailers) > 0 {
		h.Response.Trailers = make(map[string]string, len(r.Trailers))
		firstValues(h.Response.Trailers, r.Trailers)
	}
	switch {
	case r.Status == 0:
		h.Incomplete = "no response (upstream reset, timed out or refused)"
	case r.Flags&wire.FlagIncomplete != 0:
		h.Incomplete = "response body cut short"
	}
	return h
}

// firstValues puts the first value of each field into m.
func firstValues(m map[string]string, fields [][2]string) {
	for _, kv := range fields {
		if _, dup := m[kv[0]]; !dup {
			m[kv[0]] = kv[1]
		}
	}
}
