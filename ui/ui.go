// Package ui is the operator's page: a static single-page app, embedded in
// the binary, that reads shadowlab's JSON API and shows the comparison per
// route, per pair and per admission scope. ui/CONTRACT.md is what the page
// reads and which selectors the browser tests rely on.
//
// The page holds no data and needs no credentials to load: every number it
// shows comes from the API, which asks for its own bearer token. Everything
// it shows comes from traffic (paths, headers, bodies, route names), so the
// page builds its DOM from text only and is served under a strict Content
// Security Policy that allows nothing but its own files.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the path the page is served under: the handler answers
// Prefix (index.html) and Prefix + a file name, nothing else.
const Prefix = "/ui/"

// ContentSecurityPolicy allows the page its own script, style, images and
// API calls and nothing else: no inline script or style, no other origin,
// no framing, no form posts, no <base>. What traffic put in a body cannot
// run even if it ever reached the DOM as markup.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// asset is one embedded file, read once, with the headers it is served with.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes maps the extensions the page uses to their media types;
// a file with another extension is not served (see loadAssets).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// assets are the embedded files by their path under Prefix ("" is
// index.html), loaded when the package is initialised: the set is fixed at
// build time, so a request is one map lookup and never touches a file
// system path it was given.
var assets = loadAssets()

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		out[name] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a build defect.
		panic("ui: reading embedded files: " + err.Error())
	}
	if a, ok := out["index.html"]; ok {
		out[""] = a
	}
	return out
}

// Handler serves the page under Prefix: Prefix itself is index.html, and
// app.js, app.css and favicon.svg are served by name. Any other path is a
// 404 and any method other than GET and HEAD a 405, so the handler can be
// mounted on the API's mux without widening what that port answers.
//
// Every response, errors included, carries ContentSecurityPolicy,
// X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer. Files
// are sent with Cache-Control: no-cache and an ETag of their content, so a
// browser revalidates each load (a 304 when nothing changed) and never runs
// an old app.js against a newer API after an upgrade.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		// Relative references in index.html resolve against the directory.
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	a, found := assets[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with a 304, HEAD without a body
	// and Range requests; a zero time sends no Last-Modified.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
