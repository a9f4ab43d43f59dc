package report

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzLocalAdmission: any plugin report body is answered without a panic;
// whatever is accepted counts only routes with local admission of the
// policy in use, with at most MaxAdmissionKeys keys (+ OtherKey) a route.
func FuzzLocalAdmission(f *testing.F) {
	f.Add([]byte(pluginLine("jobs", "k", 1) + "\n" + pluginLine("nope", "", 2)))
	f.Add([]byte(strings.Replace(pluginLine("jobs", "", 1), `"admitted":1`, `"admitted":18446744073709551615`, 1)))
	f.Add([]byte(pluginLine("plain", "a", 1) + "\n\n" + pluginLine("jobs", "b", 1) + "\n" + pluginLine("jobs", "c", 1) + "\n" + pluginLine("jobs", "d", 1)))
	f.Add([]byte(`{"route":"jobs"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		const maxKeys = 2
		r := newTestReporter(t, Config{MaxAdmissionKeys: maxKeys})
		useLocalRoutes(t, r, "jobs")
		h := r.Handler()
		for range 2 { // twice: counts add up
			req := httptest.NewRequest(http.MethodPost, "/api/v1/admission/local", strings.NewReader(string(body)))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent && w.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
		perRoute := map[string]int{}
		for _, a := range r.Admission() {
			if a.Scope != "local" || a.Route != "jobs" {
				t.Fatalf("counted %s/%s", a.Scope, a.Route)
			}
			perRoute[a.Route]++
		}
		if perRoute["jobs"] > maxKeys+1 {
			t.Fatalf("%d keys kept for jobs, want at most %d + %s", perRoute["jobs"], maxKeys, OtherKey)
		}
	})
}
