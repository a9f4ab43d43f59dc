package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/serve"
)

// The operator page's browser tests: headless Chromium (Debian's package,
// e2e/chromium.sh) drives the page `serve` serves at /ui/, by the selectors
// of ui/CONTRACT.md, and checks what it shows against the same JSON API.
//
// Screenshots of each page go to the test's artefact directory (logged;
// kept with `go test -artifacts`, as `make test` runs it) and, when
// SHADOWLAB_SCREENSHOTS names a directory, there too: `make screenshots`
// refreshes the README's docs/screenshots/*.png that way.

// Viewports of the screenshots: a laptop and a phone.
const (
	laptopWidth, laptopHeight = 1280, 800
	phoneWidth, phoneHeight   = 390, 844
)

// browser is one headless Chromium with one tab, for one test; sub gives
// it to a subtest.
type browser struct {
	t *testing.T
	*tab
}

type tab struct {
	ctx  context.Context
	dirs []string // where screenshots are written

	mu         sync.Mutex
	exceptions []string // uncaught exceptions of the page
	console    []string // its console's errors and warnings
	urls       []string // every URL the tab went to, hash changes too
}

// sub is b for the subtest t: failures fail t.
func (b *browser) sub(t *testing.T) *browser { return &browser{t: t, tab: b.tab} }

// newBrowser starts Chromium as CI runs it (as root): headless, no
// sandbox, no GPU, a fresh profile, shared memory in the temporary
// directory. Everything stops when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin, err := harness.ChromiumBin()
	require.NoError(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(laptopWidth, laptopHeight),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, tab: &tab{ctx: ctx, dirs: []string{t.ArtifactDir()}}}
	if dir := os.Getenv("SHADOWLAB_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		b.dirs = append(b.dirs, dir)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			t.Logf("the page's console (errors and warnings):\n%s", strings.Join(b.console, "\n"))
		}
	})
	start := time.Now()
	require.NoError(t, chromedp.Listen(ctx, b.listen), "starting %s", bin)
	version, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	require.NoError(t, err)
	b.do(chromedp.EmulateViewport(laptopWidth, laptopHeight))
	t.Logf("browser: %s (%s), started in %v; screenshots in %s", bin, version, time.Since(start).Round(time.Millisecond), strings.Join(b.dirs, " and "))
	return b
}

// listen keeps the page's uncaught exceptions and console errors; it runs
// in the tab's event loop, so it only appends.
func (b *tab) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		b.exceptions = append(b.exceptions, fmt.Sprintf("%s (%s:%d:%d)", text, d.URL, d.LineNumber, d.ColumnNumber))
	case *page.EventFrameNavigated:
		b.urls = append(b.urls, ev.Frame.URL+ev.Frame.URLFragment)
	case *page.EventNavigatedWithinDocument:
		b.urls = append(b.urls, ev.URL)
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.console = append(b.console, string(ev.Type)+": "+strings.Join(parts, " "))
	}
}

// noExceptions checks that the page threw nothing uncaught so far.
func (b *browser) noExceptions() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.Empty(b.t, b.exceptions, "uncaught exceptions in the page")
}

// do runs actions, failing the test on an error; 30 s at most.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.view())
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v\n%s", expr, err, b.view())
	}
	return v
}

// waitJS waits, polling every 100 ms without reloading, until the
// expression is truthy; on timeout the test fails with what, and with the
// view's HTML.
func (b *browser) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+10*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("waiting %v for %s (%s): %v\n%s", timeout, what, expr, err, b.view())
	}
}

// view is the view's HTML (its start), for a failure's message.
func (b *browser) view() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`location.href + "\n" + (document.querySelector('#view') || document.body || document.documentElement).outerHTML.slice(0, 4000)`))
	if err != nil {
		return "(the page's HTML could not be read: " + err.Error() + ")"
	}
	return "the page (" + html
}

// exists reports whether a CSS selector matches in the page now.
func exists(b *browser, selector string) bool {
	b.t.Helper()
	return eval[bool](b, `document.querySelector(`+jsString(selector)+`) !== null`)
}

// text is the trimmed text of the first match of a CSS selector ("" when
// none), non-breaking spaces made plain.
func text(b *browser, selector string) string {
	b.t.Helper()
	return eval[string](b, `((document.querySelector(`+jsString(selector)+`) || {}).textContent || "").replace(/[\u00a0\u202f]/g, " ").trim()`)
}

// goTo changes the page's hash (no reload) and waits for the view shown.
func (b *browser) goTo(hash, view string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + jsString(hash)))
	b.waitView(view)
}

// waitView waits until #view shows view (overview, route, pair, admission).
func (b *browser) waitView(view string) {
	b.t.Helper()
	b.waitJS("the "+view+" view", `document.querySelector('#view[data-view=`+jsString(view)+`]') !== null`, 20*time.Second)
}

// screenshot saves the whole page as name.png in the screenshot
// directories.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err, "screenshot %s", name)
	for _, dir := range b.dirs {
		require.NoError(b.t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s) // a string always marshals
	return string(q)
}

// The API the page reads, as ui/CONTRACT.md has it: only the fields the
// tests compare.
type (
	pageReport struct {
		Routes    []pageRoute     `json:"routes"`
		Admission []pageAdmission `json:"admission"`
		Policy    []struct {
			Route     string `json:"route"`
			Shadow    string `json:"shadow"`
			Compared  bool   `json:"compared"`
			Admission string `json:"admission"`
		} `json:"policy"`
	}
	pageRoute struct {
		Route       string   `json:"route"`
		Pairs       int      `json:"pairs"`
		MatchRate   *float64 `json:"match_rate"`
		Differences []struct {
			Pattern string `json:"pattern"`
			Kind    string `json:"kind"`
			Count   int    `json:"count"`
		} `json:"differences"`
	}
	pageAdmission struct {
		Scope    string `json:"scope"`
		Route    string `json:"route"`
		Key      string `json:"key"`
		Admitted uint64 `json:"admitted"`
		Delayed  uint64 `json:"delayed"`
		Rejected uint64 `json:"rejected"`
		Arrivals []struct {
			At int64 `json:"at"`
			N  int   `json:"n"`
		} `json:"arrivals"`
	}
	pagePair struct {
		Route       string `json:"route"`
		Differences []struct {
			Path  string `json:"path"`
			Noise bool   `json:"noise"`
		} `json:"differences"`
	}
)

// getAPI GETs path from serve's API at api with token ("" for none) and
// decodes the JSON answer into out.
func getAPI(t *testing.T, api, path, token string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+api+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, body)
	require.NoError(t, json.Unmarshal(body, out), "GET %s: %s", path, body)
}

// matchRateText is a match rate as the overview shows it.
func matchRateText(rate *float64) string {
	if rate == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", *rate*100)
}

// digits is the integer a cell shows ("1,234" → 1234), -1 when none.
func digits(s string) int {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	n, err := strconv.Atoi(b.String())
	if err != nil {
		return -1
	}
	return n
}

// overviewRow is one row of the overview's table as the page shows it.
type overviewRow struct {
	Route     string `json:"route"`
	Pairs     string `json:"pairs"`
	MatchRate string `json:"match_rate"`
}

const overviewRowsJS = `Array.from(document.querySelectorAll('table#routes tr[data-route]')).map(tr => {
	const cell = f => ((tr.querySelector('td[data-field="' + f + '"]') || {}).textContent || "").replace(/[\u00a0\u202f]/g, " ").trim();
	return {route: tr.dataset.route, pairs: cell("pairs"), match_rate: cell("match-rate")};
})`

// checkOverview compares the overview's rows with the API's report until
// they agree (the page re-reads every 2 s) or 15 s have passed, and
// returns the report.
func checkOverview(t *testing.T, b *browser, api, token string) pageReport {
	t.Helper()
	var (
		rep      pageReport
		problems []string
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		getAPI(t, api, "/api/v1/report", token, &rep)
		rows := map[string]overviewRow{}
		for _, r := range eval[[]overviewRow](b, overviewRowsJS) {
			rows[r.Route] = r
		}
		results := map[string]pageRoute{}
		for _, r := range rep.Routes {
			results[r.Route] = r
		}
		problems = problems[:0]
		var policy []string
		for _, p := range rep.Policy {
			policy = append(policy, p.Route)
			row, ok := rows[p.Route]
			if !ok {
				problems = append(problems, fmt.Sprintf(`route %s: no tr[data-route=%q] in table#routes`, p.Route, p.Route))
				continue
			}
			r, has := results[p.Route]
			if want := matchRateText(r.MatchRate); row.MatchRate != want {
				problems = append(problems, fmt.Sprintf(`route %s: td[data-field="match-rate"] shows %q, the API's match_rate %v makes %q`, p.Route, row.MatchRate, r.MatchRate, want))
			}
			if has && digits(row.Pairs) != r.Pairs {
				problems = append(problems, fmt.Sprintf(`route %s: td[data-field="pairs"] shows %q, the API has %d pairs`, p.Route, row.Pairs, r.Pairs))
			}
		}
		for _, route := range slices.Sorted(maps.Keys(rows)) {
			if !slices.Contains(policy, route) {
				problems = append(problems, fmt.Sprintf("row %s: not a route of the policy in use %v", route, policy))
			}
		}
		if len(rep.Policy) == 0 {
			problems = append(problems, "the API's report lists no policy routes (report.policy)")
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Empty(t, problems, "the overview against GET /api/v1/report")
	var shown []string
	for _, r := range rep.Routes {
		shown = append(shown, fmt.Sprintf("%s %d pairs %s", r.Route, r.Pairs, matchRateText(r.MatchRate)))
	}
	t.Logf("overview: %d policy routes, each a row; with results: %s", len(rep.Policy), strings.Join(shown, ", "))
	return rep
}

// differenceRow is one item of the route page's ul#differences.
type differenceRow struct {
	Pattern string `json:"pattern"`
	Kind    string `json:"kind"`
	Count   string `json:"count"`
	Samples int    `json:"samples"`
}

const differencesJS = `Array.from(document.querySelectorAll('ul#differences > li[data-pattern]')).map(li => ({
	pattern: li.dataset.pattern, kind: li.dataset.kind || "",
	count: ((li.querySelector('[data-field="count"]') || {}).textContent || "").trim(),
	samples: li.querySelectorAll('a.sample').length,
}))`

// openRoute shows route's page and waits until its h1 names it.
func (b *browser) openRoute(route string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/route/" + encodeURIComponent(` + jsString(route) + `)`))
	b.waitJS("route "+route+"'s page",
		`(() => { const h = document.querySelector('#view[data-view="route"] h1'); return h !== null && h.textContent.includes(`+jsString(route)+`); })()`,
		20*time.Second)
}

// openSample clicks the first sample of pattern on the route page shown
// and waits for the pair page; it returns the pair's id (from the hash).
func (b *browser) openSample(route, pattern string) string {
	b.t.Helper()
	li := `ul#differences > li[data-pattern=` + jsString(pattern) + `]`
	if !exists(b, li+` a.sample`) {
		gone := exists(b, li+` span.sample.gone`)
		b.t.Fatalf("route %s: no a.sample under %s (span.sample.gone present: %v): the seeded difference's pairs are not linked\n%s", route, li, gone, b.view())
	}
	b.do(chromedp.Click(chromedp.CSS(li + ` a.sample`)))
	b.waitJS("the pair page of a "+pattern+" sample",
		`location.hash.startsWith("#/pair/") && document.querySelector('#view[data-view="pair"]') !== null`, 20*time.Second)
	id, err := url.PathUnescape(strings.TrimPrefix(eval[string](b, `location.hash`), "#/pair/"))
	require.NoError(b.t, err)
	return id
}

// line is the selector of a pair page's body line of side (primary or
// shadow) at a JSON path, with extra classes (".diff").
func line(side, classes, path string) string {
	return `#pair-` + side + ` pre.body span.line` + classes + `[data-path=` + jsString(path) + `]`
}

// keptDemo is `shadowlab demo --keep` running as a process, past its
// scenes, keeping everything up.
type keptDemo struct {
	cmd      *exec.Cmd
	out      *syncBuffer // stdout and stderr
	exited   chan struct{}
	err      error // of Wait, once exited is closed
	api      string
	listener string
}

var keepLine = regexp.MustCompile(`keeping everything up: Envoy listener http://(\S+), operator page http://(\S+)/ui/`)

// startKeptDemo runs the built `shadowlab demo --keep` as `make demo` does
// in a terminal, and waits (5 min at most) until it has passed its scenes
// and says what it keeps up.
func startKeptDemo(t *testing.T) *keptDemo {
	t.Helper()
	envoyBin, shadowlab := demoBinaries(t)
	d := &keptDemo{out: &syncBuffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(shadowlab, "demo", "--keep")
	d.cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoyBin)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	start := time.Now()
	require.NoError(t, d.cmd.Start())
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		_ = d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-d.exited:
		case <-time.After(60 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	deadline := time.After(5 * time.Minute)
	for {
		if m := keepLine.FindStringSubmatch(d.out.String()); m != nil {
			d.listener, d.api = m[1], m[2]
			break
		}
		select {
		case <-d.exited:
			t.Fatalf("shadowlab demo --keep exited (%v) before keeping anything up:\n%s", d.err, d.out.String())
		case <-deadline:
			t.Fatalf("shadowlab demo --keep did not say it keeps everything up within 5 min:\n%s", d.out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("the demo passed its scenes in %v; kept up: Envoy listener %s, API %s", time.Since(start).Round(time.Second), d.listener, d.api)
	require.Contains(t, d.out.String(), "operator page: http://"+d.api+"/ui/")
	return d
}

// interrupt sends SIGINT (Ctrl-C) and requires the demo to stop everything
// and exit 0 within 60 s.
func (d *keptDemo) interrupt(t *testing.T) {
	t.Helper()
	start := time.Now()
	require.NoError(t, d.cmd.Process.Signal(os.Interrupt))
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("shadowlab demo --keep still running 60 s after SIGINT:\n%s", d.out.String())
	}
	require.NoError(t, d.err, "shadowlab demo --keep after SIGINT:\n%s", d.out.String())
	assert.Contains(t, d.out.String(), "stopped: everything the demo started is down")
	t.Logf("SIGINT → exit 0 in %v", time.Since(start).Round(time.Millisecond))
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// seededPatterns are the candidate's seeded differences on route, as
// "pattern kind": what the demo's own comparison scene checks the report
// against.
func seededPatterns(route string) []string {
	var out []string
	for _, sd := range backend.SeededDifferences {
		if sd.Route == route {
			out = append(out, sd.Pattern+" "+sd.Kind)
		}
	}
	slices.Sort(out)
	return out
}

// TestOperatorPage drives the operator page in headless Chromium against
// the serve of `shadowlab demo --keep`, which received the demo's traffic
// through the real Envoy (authentication off, as on loopback): the overview
// lists every policy route with the API's pairs and match rates; each route
// with seeded differences lists exactly them; a pair page highlights the
// changed field in both bodies, and the redacted field as redacted, its
// values nowhere in the page; new pairs appear without a reload; the
// admission page shows the burst. Screenshots of each page; then Ctrl-C
// stops the demo, which exits 0.
func TestOperatorPage(t *testing.T) {
	b := newBrowser(t) // first: without Chromium, fail before the demo's minute
	d := startKeptDemo(t)

	// /ui/ itself: served, and / redirects there.
	resp, err := http.Get("http://" + d.api + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "GET / (redirected to /ui/)")
	assert.Equal(t, "/ui/", resp.Request.URL.Path, "GET / redirects to /ui/")

	b.do(chromedp.Navigate("http://" + d.api + "/ui/"))
	b.waitView("overview")
	assert.False(t, eval[bool](b, visibleJS("#token-form")), "no token form shown without authentication")
	b.do(chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`))

	t.Run("overview", func(t *testing.T) {
		b := b.sub(t)
		rep := checkOverview(t, b, d.api, "")
		var mirrored int
		for _, p := range rep.Policy {
			if p.Shadow != "" {
				mirrored++
			}
		}
		assert.Positive(t, mirrored, "the demo's policy mirrors routes")
		assert.NotEmpty(t, text(b, "#updated"), "#updated says when the data was read")
		b.screenshot("overview")
		b.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile))
		b.waitView("overview")
		b.screenshot("overview-phone")
		b.do(chromedp.EmulateViewport(laptopWidth, laptopHeight))
	})

	t.Run("keyboard: Tab reaches a route, Enter opens it", func(t *testing.T) {
		b := b.sub(t)
		link := `table#routes tr[data-route="orders"] a[href]`
		require.True(t, exists(b, link), link)
		b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
		reached := false
		for range 80 {
			b.do(chromedp.KeyEvent(kb.Tab))
			if eval[bool](b, `document.activeElement === document.querySelector(`+jsString(link)+`)`) {
				reached = true
				break
			}
		}
		require.True(t, reached, "Tab never focused %s", link)
		assert.True(t, eval[bool](b, `getComputedStyle(document.activeElement).outlineStyle !== "none"`), "the focused link shows a focus outline")
		b.do(chromedp.KeyEvent(kb.Enter))
		b.waitView("route")
		assert.Contains(t, text(b, "h1"), "orders")
		b.do(chromedp.Click(chromedp.CSS("a#nav-overview")))
		b.waitView("overview")
	})

	t.Run("route pages list exactly the seeded differences", func(t *testing.T) {
		b := b.sub(t)
		for _, route := range []string{"billing-records", "orders", "users"} {
			b.openRoute(route)
			var api pageRoute
			getAPI(t, d.api, "/api/v1/routes/"+url.PathEscape(route), "", &api)
			var onPage, inAPI []string
			counts := map[string]string{}
			for _, li := range eval[[]differenceRow](b, differencesJS) {
				onPage = append(onPage, li.Pattern+" "+li.Kind)
				counts[li.Pattern+" "+li.Kind] = li.Count
				assert.Positive(t, li.Samples, "route %s, %s: a.sample links", route, li.Pattern)
			}
			for _, df := range api.Differences {
				key := df.Pattern + " " + df.Kind
				inAPI = append(inAPI, key)
				assert.Equal(t, df.Count, digits(counts[key]), `route %s, %s: [data-field="count"] %q, the API counts %d`, route, key, counts[key], df.Count)
			}
			slices.Sort(onPage)
			slices.Sort(inAPI)
			assert.Equal(t, seededPatterns(route), onPage, "route %s: ul#differences > li[data-pattern][data-kind] against the seeded differences", route)
			assert.Equal(t, inAPI, onPage, "route %s: ul#differences against GET /api/v1/routes/%s", route, route)
			assert.True(t, exists(b, "table#latency"), "route %s: table#latency", route)
			t.Logf("route %s: ul#differences lists %q", route, onPage)
			if route == "orders" {
				b.screenshot("route")
			}
		}
	})

	t.Run("pair page highlights the changed field in both bodies", func(t *testing.T) {
		b := b.sub(t)
		b.openRoute("orders")
		id := b.openSample("orders", "$.order.total")
		for _, side := range []string{"primary", "shadow"} {
			assert.True(t, exists(b, line(side, ".diff", "$.order.total")), "%s: the changed field highlighted", line(side, ".diff", "$.order.total"))
			assert.False(t, exists(b, line(side, ".diff", "$.generated_at")), "%s: noise is not highlighted", line(side, ".diff", "$.generated_at"))
			assert.True(t, exists(b, line(side, "", "$.order.id")), "%s: an unchanged field is shown", line(side, "", "$.order.id"))
			assert.False(t, exists(b, line(side, ".diff", "$.order.id")), "%s: an unchanged field is not highlighted", line(side, ".diff", "$.order.id"))
			assert.Contains(t, text(b, "#pair-"+side+" .status"), "200", "#pair-%s .status", side)
			assert.True(t, exists(b, "#pair-"+side+" table.headers"), "#pair-%s table.headers", side)
		}
		assert.True(t, exists(b, line("shadow", ".diff", "$.order.priority")), "the field only the shadow has, highlighted")
		assert.False(t, exists(b, line("primary", "", "$.order.priority")), "the primary has no $.order.priority")
		assert.True(t, exists(b, `ul#pair-differences > li[data-path="$.order.total"]`), "ul#pair-differences lists $.order.total")
		var pair pagePair
		getAPI(t, d.api, "/api/v1/pairs/"+url.PathEscape(id), "", &pair)
		assert.Equal(t, "orders", pair.Route, "pair %s", id)
		var paths []string
		for _, df := range pair.Differences {
			if !df.Noise {
				paths = append(paths, df.Path)
				assert.True(t, exists(b, `ul#pair-differences > li[data-path=`+jsString(df.Path)+`]`), "ul#pair-differences lists %s", df.Path)
			}
		}
		assert.Contains(t, paths, "$.order.total", "GET /api/v1/pairs/%s", id)
		b.screenshot("pair")
	})

	t.Run("pair page shows the redacted field as redacted", func(t *testing.T) {
		b := b.sub(t)
		b.openRoute("users")
		b.openSample("users", "$.user.ssn")
		for _, side := range []string{"primary", "shadow"} {
			sel := line(side, ".redacted", "$.user.ssn")
			require.True(t, exists(b, sel), "%s: the secret's line marked redacted", sel)
			assert.Contains(t, text(b, sel), "[redacted]", sel)
			assert.True(t, exists(b, line(side, ".diff", "$.user.ssn")), "%s: the secret differs, so its line is highlighted", line(side, ".diff", "$.user.ssn"))
		}
		html := eval[string](b, `document.documentElement.outerHTML`)
		assert.NotContains(t, html, backend.SSNPrefix, "the primary's secret is nowhere in the page")
		assert.NotContains(t, html, "000-00-0000", "the shadow's secret is nowhere in the page")
		b.screenshot("pair-redacted")
	})

	t.Run("new pairs appear without a reload", func(t *testing.T) {
		b := b.sub(t)
		b.do(chromedp.Click(chromedp.CSS("a#nav-overview")))
		b.waitView("overview")
		cell := `table#routes tr[data-route="users"] td[data-field="pairs"]`
		b.waitJS("a number of pairs for users", `/\d/.test((document.querySelector(`+jsString(cell)+`) || {}).textContent || "")`, 10*time.Second)
		before := digits(text(b, cell))
		const n = 20
		client := &http.Client{Timeout: 10 * time.Second}
		for i := range n {
			resp, err := client.Get(fmt.Sprintf("http://%s/users/%d", d.listener, 5000+10*i)) // n % 10 == 0: no seeded difference
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		start := time.Now()
		b.waitJS(fmt.Sprintf("users' pairs to grow past %d", before),
			fmt.Sprintf(`Number(((document.querySelector(%s) || {}).textContent || "").replace(/\D/g, "")) > %d`, jsString(cell), before), 20*time.Second)
		t.Logf("users' pairs: %d, then %s %v after %d requests through Envoy", before, text(b, cell), time.Since(start).Round(time.Millisecond), n)
		b.waitJS(fmt.Sprintf("users' pairs to reach %d", before+n),
			fmt.Sprintf(`Number(((document.querySelector(%s) || {}).textContent || "").replace(/\D/g, "")) >= %d`, jsString(cell), before+n), 20*time.Second)
		assert.True(t, eval[bool](b, `window.__notReloaded === true`), "the page was not reloaded")
	})

	t.Run("admission page shows the burst", func(t *testing.T) {
		b := b.sub(t)
		b.do(chromedp.Click(chromedp.CSS("a#nav-admission")))
		b.waitView("admission")
		var adm []pageAdmission
		getAPI(t, d.api, "/api/v1/admission", "", &adm)
		var jobs []pageAdmission
		for _, a := range adm {
			if a.Route == "jobs" {
				jobs = append(jobs, a)
			}
		}
		require.NotEmpty(t, jobs, "GET /api/v1/admission has the burst's route jobs: %+v", adm)
		for _, a := range jobs {
			row := fmt.Sprintf(`table#admission > tbody > tr[data-scope=%s][data-route=%s][data-key=%s]`, jsString(a.Scope), jsString(a.Route), jsString(a.Key))
			require.True(t, exists(b, row), "%s", row)
			for field, want := range map[string]uint64{"admitted": a.Admitted, "delayed": a.Delayed, "rejected": a.Rejected} {
				got := text(b, row+` td[data-field="`+field+`"]`)
				assert.Equal(t, int(want), digits(got), `%s td[data-field=%q] shows %q`, row, field, got)
			}
			assert.True(t, exists(b, row+" .waits"), "%s .waits", row)
			if len(a.Arrivals) > 0 {
				assert.True(t, exists(b, row+" .arrivals rect[data-at][data-n]"), "%s .arrivals rect[data-at][data-n]", row)
			}
		}
		b.screenshot("admission")
	})

	b.noExceptions()
	d.interrupt(t)
}

// authPolicy mirrors /users, compared (its timestamp ignored), its secret
// redacted.
const authPolicy = `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100}
    compare: {redact: [ssn], ignore: ["$.generated_at"]}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// visibleJS is a JavaScript predicate: selector matches a rendered element.
func visibleJS(selector string) string {
	return `(e => e !== null && e.getClientRects().length > 0)(document.querySelector(` + jsString(selector) + `))`
}

// TestOperatorPageAuth runs serve with a read token (the API's reads need
// it; /ui/ itself is open), the real Envoy and the example services: the
// page asks for the token, refuses a wrong one, shows the overview with the
// right one, keeps it out of the URL, and forgets it on sign-out.
func TestOperatorPageAuth(t *testing.T) {
	b := newBrowser(t)
	const token = "ui-read-token-5c1e9a0b7d3f4e62"
	tokenFile := filepath.Join(t.TempDir(), "read.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	e := newEnv(t, authPolicy, envOptions{api: true, serve: serve.Config{Credentials: serve.Credentials{ReadTokenFile: tokenFile}}})
	api := e.cpAddrs.api

	const n = 12
	for i := range n {
		resp, body := e.do(http.MethodGet, fmt.Sprintf("/users/%d", i+1), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	require.Eventually(t, func() bool {
		var r pageRoute
		req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/api/v1/routes/users", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&r) == nil && r.Pairs >= n
	}, 20*time.Second, 100*time.Millisecond, "the %d pairs reach the API", n)

	for path, want := range map[string]int{"/ui/": http.StatusOK, "/api/v1/report": http.StatusUnauthorized} {
		resp, err := e.client.Get("http://" + api + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "GET %s without a token", path)
	}

	b.do(chromedp.Navigate("http://" + api + "/ui/"))
	b.waitJS("the token form", visibleJS("#token-form"), 20*time.Second)
	assert.False(t, exists(b, `#view[data-view="overview"]`), "no overview without the token")
	assert.True(t, exists(b, `#token-form input#token[type="password"]`), "#token is a password input")
	b.screenshot("signin")

	submit := chromedp.CSS(`#token-form button, #token-form input[type="submit"]`)
	b.do(chromedp.SendKeys(chromedp.ID("token"), "wrong-token-0000"), chromedp.Click(submit))
	b.waitJS("#token-error after a wrong token", visibleJS("#token-error"), 20*time.Second)
	assert.True(t, exists(b, "#token-form"), "the form is shown again")

	b.do(chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#token").value = ""`),
		chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(submit))
	b.waitView("overview")
	cell := `table#routes tr[data-route="users"] td[data-field="pairs"]`
	b.waitJS("users' pairs", fmt.Sprintf(`Number(((document.querySelector(%s) || {}).textContent || "").replace(/\D/g, "")) >= %d`, jsString(cell), n), 20*time.Second)
	checkOverview(t, b, api, token)
	assert.False(t, eval[bool](b, visibleJS("#token-form")), "the token form is gone")
	assert.Equal(t, token, eval[string](b, `sessionStorage.getItem("shadowlab-token") || ""`), "the token is kept in sessionStorage")
	b.screenshot("overview-auth")

	b.mu.Lock()
	urls := slices.Clone(b.urls)
	b.mu.Unlock()
	urls = append(urls, eval[string](b, `location.href`))
	for _, u := range urls {
		assert.NotContains(t, u, token, "the token in a URL the page went to")
	}

	b.do(chromedp.Click(chromedp.CSS("#sign-out")))
	b.waitJS("the token form after signing out", visibleJS("#token-form"), 20*time.Second)
	assert.Empty(t, eval[string](b, `sessionStorage.getItem("shadowlab-token") || ""`), "signing out forgets the token")
	b.noExceptions()
}
