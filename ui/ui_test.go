package ui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

// checkSecurityHeaders fails the test when a response lacks one of the
// headers every answer of the handler carries, errors included.
func checkSecurityHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := rec.Header().Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestServesFiles(t *testing.T) {
	tests := map[string]struct {
		path        string
		contentType string
		contains    string
	}{
		"index":          {"/ui/", "text/html; charset=utf-8", `id="view"`},
		"index by name":  {"/ui/index.html", "text/html; charset=utf-8", `id="view"`},
		"script":         {"/ui/app.js", "text/javascript; charset=utf-8", "use strict"},
		"style sheet":    {"/ui/app.css", "text/css; charset=utf-8", "prefers-color-scheme"},
		"favicon":        {"/ui/favicon.svg", "image/svg+xml", "<svg"},
		"query is fine":  {"/ui/?x=1", "text/html; charset=utf-8", `id="view"`},
		"script by HEAD": {"/ui/app.js", "text/javascript; charset=utf-8", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			method := http.MethodGet
			if strings.Contains(name, "HEAD") {
				method = http.MethodHead
			}
			rec := get(t, method, tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
			checkSecurityHeaders(t, rec)
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			if rec.Header().Get("ETag") == "" {
				t.Error("no ETag")
			}
			if method == http.MethodHead {
				if rec.Body.Len() != 0 {
					t.Errorf("HEAD sent a body of %d bytes", rec.Body.Len())
				}
				return
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

func TestRevalidation(t *testing.T) {
	first := get(t, http.MethodGet, "/ui/app.js", nil)
	etag := first.Header().Get("ETag")
	again := get(t, http.MethodGet, "/ui/app.js", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified {
		t.Fatalf("status %d with the current ETag, want 304", again.Code)
	}
	checkSecurityHeaders(t, again)
	if other := get(t, http.MethodGet, "/ui/app.css", nil).Header().Get("ETag"); other == etag {
		t.Errorf("app.css and app.js share the ETag %s", etag)
	}
}

func TestRefuses(t *testing.T) {
	tests := map[string]struct {
		method, path string
		status       int
	}{
		"unknown file":      {http.MethodGet, "/ui/nope.js", http.StatusNotFound},
		"the embed folder":  {http.MethodGet, "/ui/static/app.js", http.StatusNotFound},
		"a directory climb": {http.MethodGet, "/ui/../ui.go", http.StatusNotFound},
		"the Go source":     {http.MethodGet, "/ui/ui.go", http.StatusNotFound},
		"outside the page":  {http.MethodGet, "/app.js", http.StatusNotFound},
		"a hash route path": {http.MethodGet, "/ui/route/users", http.StatusNotFound},
		"POST":              {http.MethodPost, "/ui/", http.StatusMethodNotAllowed},
		"PUT":               {http.MethodPut, "/ui/app.js", http.StatusMethodNotAllowed},
		"DELETE":            {http.MethodDelete, "/ui/app.js", http.StatusMethodNotAllowed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := get(t, tc.method, tc.path, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			checkSecurityHeaders(t, rec)
			if tc.status == http.StatusMethodNotAllowed {
				if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want GET, HEAD", got)
				}
			}
		})
	}
}

func TestPrefixWithoutSlashRedirects(t *testing.T) {
	rec := get(t, http.MethodGet, "/ui", nil)
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("status %d, Location %q; want 301 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	checkSecurityHeaders(t, rec)
}

// TestIndexSameOrigin keeps index.html within what the CSP allows: every
// src and href is a relative reference to one of the embedded files or an
// in-page link, and no markup runs or styles anything inline.
func TestIndexSameOrigin(t *testing.T) {
	html := get(t, http.MethodGet, "/ui/", nil).Body.String()
	refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("index.html references nothing")
	}
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "#"):
		case strings.Contains(ref, ":") || strings.HasPrefix(ref, "/") || strings.Contains(ref, ".."):
			t.Errorf("reference %q leaves the page's own files", ref)
		default:
			if _, ok := assets[ref]; !ok {
				t.Errorf("reference %q is not an embedded file", ref)
			}
		}
	}
	if m := regexp.MustCompile(`(?i)\sstyle\s*=|<style|\son[a-z]+\s*=|javascript:`).FindString(html); m != "" {
		t.Errorf("index.html contains %q", m)
	}
	for _, s := range regexp.MustCompile(`(?is)<script\b[^>]*>(.*?)</script>`).FindAllStringSubmatch(html, -1) {
		if strings.TrimSpace(s[1]) != "" {
			t.Errorf("inline script: %q", s[1])
		}
	}
}

// TestScriptBuildsNoMarkup keeps app.js from ever turning API data (which
// comes from traffic) into markup or code.
func TestScriptBuildsNoMarkup(t *testing.T) {
	js := get(t, http.MethodGet, "/ui/app.js", nil).Body.String()
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "document.write", "new Function", "createContextualFragment", "DOMParser"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js contains %q", bad)
		}
	}
	// setTimeout and setInterval with a string argument are eval too.
	if m := regexp.MustCompile(`set(?:Timeout|Interval)\(\s*["'\x60]`).FindString(js); m != "" {
		t.Errorf("app.js calls %s with a string", m)
	}
}
