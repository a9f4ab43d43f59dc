// shadowlab's operator page: reads the JSON API (ui/CONTRACT.md) and shows
// routes, pairs and admission. Everything the API returns comes from traffic
// (paths, headers, bodies, route names), so the DOM is built from text nodes
// and attributes only, never parsed from markup.
"use strict";

(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = "shadowlab-token";
  const API = "../api/v1/";
  const SVGNS = "http://www.w3.org/2000/svg";

  const OUTCOMES = ["match", "diff", "primary_only", "shadow_only", "ambiguous", "skipped"];
  const NOT_MATCHED = OUTCOMES.slice(1);
  const OUTCOME_LABEL = {
    match: "match", diff: "diff", primary_only: "primary only", shadow_only: "shadow only",
    ambiguous: "ambiguous", skipped: "skipped",
  };
  const OUTCOME_HELP = {
    match: "both answered alike (or differed only on learned noise)",
    diff: "both answered, with at least one difference",
    primary_only: "the shadow's answer never came (timed out, shed or failed)",
    shadow_only: "the primary's answer never came",
    ambiguous: "two answers claimed one request id and side: never paired",
    skipped: "not compared (body over the limit, unsupported)",
  };

  // Thresholds of the attention rule, stated in the legend of the overview.
  const RULE = { matchRate: 0.99, uncompared: 0.05, p99Ratio: 2 };

  // ---------------------------------------------------------------- DOM

  // h and s describe elements (HTML and SVG); patch turns descriptions into
  // DOM, reusing the nodes already there so that a refresh keeps focus,
  // selection and scroll positions. Strings become text nodes.
  function h(tag, props, ...kids) {
    return { t: tag, p: props || {}, c: flat(kids), ns: null };
  }
  function s(tag, props, ...kids) {
    return { t: tag, p: props || {}, c: flat(kids), ns: SVGNS };
  }
  function flat(kids) {
    const out = [];
    const add = (k) => {
      if (k === null || k === undefined || k === false) return;
      if (Array.isArray(k)) k.forEach(add);
      else if (typeof k === "object") out.push(k);
      else out.push(String(k));
    };
    add(kids);
    return out;
  }

  function create(v) {
    if (typeof v === "string") return document.createTextNode(v);
    const el = v.ns ? document.createElementNS(v.ns, v.t) : document.createElement(v.t);
    setProps(el, {}, v.p);
    for (const k of v.c) el.appendChild(create(k));
    el._v = v;
    return el;
  }

  function setProps(el, old, neu) {
    for (const k of Object.keys(old)) {
      if (k in neu) continue;
      if (k === "on") for (const ev of Object.keys(old.on)) el["on" + ev] = null;
      else if (k === "style") for (const n of Object.keys(old.style)) el.style.removeProperty(n);
      else if (k !== "key") el.removeAttribute(k);
    }
    for (const [k, val] of Object.entries(neu)) {
      if (k === "key") continue;
      if (k === "on") {
        for (const ev of Object.keys(old.on || {})) if (!(ev in val)) el["on" + ev] = null;
        for (const [ev, fn] of Object.entries(val)) el["on" + ev] = fn;
        continue;
      }
      if (k === "style") {
        // CSSOM, not a style attribute: the CSP forbids inline styles.
        for (const n of Object.keys(old.style || {})) if (!(n in val)) el.style.removeProperty(n);
        for (const [n, x] of Object.entries(val)) el.style.setProperty(n, String(x));
        continue;
      }
      if (/^on/i.test(k)) throw new Error("event handler attributes are not allowed: " + k);
      if (val === null || val === undefined || val === false) {
        el.removeAttribute(k);
        continue;
      }
      const str = val === true ? "" : String(val);
      if (k === "href" && !str.startsWith("#")) throw new Error("only in-page links are allowed");
      if (el.getAttribute(k) !== str) el.setAttribute(k, str);
    }
  }

  function patch(node, v) {
    if (typeof v === "string") {
      if (node.nodeType === Node.TEXT_NODE) {
        if (node.data !== v) node.data = v;
        return node;
      }
      return create(v);
    }
    if (!node._v || node._v.t !== v.t || node._v.ns !== v.ns) return create(v);
    setProps(node, node._v.p, v.p);
    patchChildren(node, v.c);
    node._v = v;
    return node;
  }

  function keyOf(v) {
    return v && typeof v === "object" && v.p.key !== undefined ? v.t + "\u0000" + v.p.key : null;
  }

  function patchChildren(parent, kids) {
    const old = Array.from(parent.childNodes);
    const keyed = new Map();
    const plain = [];
    for (const n of old) {
      const k = n._v ? keyOf(n._v) : null;
      if (k !== null) keyed.set(k, n);
      else plain.push(n);
    }
    const used = new Set();
    let pi = 0;
    kids.forEach((v, i) => {
      let node = null;
      const k = keyOf(v);
      if (k !== null) {
        node = keyed.get(k) || null;
        if (node && used.has(node)) node = null;
      } else if (pi < plain.length) {
        node = plain[pi++];
      }
      node = node ? patch(node, v) : create(v);
      used.add(node);
      const at = parent.childNodes[i] || null;
      if (at !== node) parent.insertBefore(node, at);
    });
    for (const n of old) if (!used.has(n) && n.parentNode === parent) parent.removeChild(n);
  }

  // ------------------------------------------------------------ format

  const num = (n) => (typeof n === "number" && isFinite(n) ? String(Math.round(n)) : "—");
  const pad2 = (n) => String(n).padStart(2, "0");

  function fmtRate(r) {
    return typeof r === "number" && isFinite(r) ? (r * 100).toFixed(1) + " %" : "—";
  }
  function fmtShare(part, whole) {
    if (!whole) return "—";
    const p = (part / whole) * 100;
    return (p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + " %";
  }
  function fmtPercent(p) {
    if (typeof p !== "number") return "—";
    return (Number.isInteger(p) ? String(p) : p.toFixed(1)) + " %";
  }
  function fmtMs(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "—";
    if (ms < 0) return "> 1 h";
    if (ms >= 60000) return (ms / 60000).toFixed(ms >= 600000 ? 0 : 1) + " min";
    if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 1 : 2) + " s";
    if (ms >= 100) return ms.toFixed(0) + " ms";
    if (ms >= 10) return ms.toFixed(1) + " ms";
    return ms.toFixed(2) + " ms";
  }
  function fmtBound(ms) {
    if (ms >= 3600000) return ms / 3600000 + " h";
    if (ms >= 60000) return ms / 60000 + " min";
    if (ms >= 1000) return ms / 1000 + " s";
    return ms + " ms";
  }
  function fmtRatio(a, b) {
    if (!(b > 0) || typeof a !== "number") return "—";
    const r = a / b;
    return (r >= 10 ? r.toFixed(0) : r.toFixed(2)) + "×";
  }
  function fmtBytes(n) {
    if (typeof n !== "number") return "—";
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MiB";
    if (n >= 1024) return (n / 1024).toFixed(1) + " KiB";
    return n + " B";
  }
  function toDate(t) {
    if (t instanceof Date) return t;
    if (typeof t === "number") return new Date(t * 1000);
    const d = new Date(t);
    return isNaN(d.getTime()) ? null : d;
  }
  function fmtClock(t) {
    const d = toDate(t);
    return d ? pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()) : "—";
  }
  function fmtWhen(t) {
    const d = toDate(t);
    if (!d) return "—";
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    const day = d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
    return sameDay ? fmtClock(d) : day + " " + fmtClock(d);
  }
  function isoOf(t) {
    const d = toDate(t);
    return d ? d.toISOString() : "";
  }
  function timeEl(t) {
    return h("time", { datetime: isoOf(t), title: isoOf(t) }, fmtWhen(t));
  }

  const hrefRoute = (name) => "#/route/" + encodeURIComponent(name);
  const hrefPair = (id) => "#/pair/" + encodeURIComponent(String(id));
  const enc = encodeURIComponent;

  const arr = (x) => (Array.isArray(x) ? x : []);
  const obj = (x) => (x && typeof x === "object" && !Array.isArray(x) ? x : {});
  const outcomesOf = (x) => obj(x && x.outcomes);

  // ------------------------------------------------------------- API

  class AuthError extends Error {
    constructor(hadToken) {
      super("the API asks for a token");
      this.hadToken = hadToken;
    }
  }
  class HTTPError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let memToken = "";
  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return memToken;
    }
  }
  function setToken(t) {
    memToken = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // Storage refused (private mode): the token lives in memory.
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = "Bearer " + token;
    let res;
    try {
      res = await fetch(API + path, { headers, cache: "no-store", credentials: "same-origin", redirect: "error" });
    } catch (e) {
      throw new HTTPError(0, "the shadowlab API is unreachable");
    }
    if (res.status === 401) throw new AuthError(token !== "");
    if (!res.ok) {
      let msg = res.status + (res.statusText ? " " + res.statusText : "");
      try {
        const j = await res.json();
        if (j && typeof j.error === "string") msg = res.status + ": " + j.error;
      } catch (e) {
        // Not JSON: the status says enough.
      }
      throw new HTTPError(res.status, "/api/v1/" + path.split("?")[0] + " answered " + msg);
    }
    try {
      return await res.json();
    } catch (e) {
      throw new HTTPError(res.status, "/api/v1/" + path.split("?")[0] + " answered something that is not JSON");
    }
  }

  // optional reads what a view can do without: any failure but a 401
  // reads as null.
  async function optional(p) {
    try {
      return await p;
    } catch (e) {
      if (e instanceof AuthError) throw e;
      return null;
    }
  }
  async function orNotFound(p) {
    try {
      return await p;
    } catch (e) {
      if (e instanceof HTTPError && e.status === 404) return null;
      throw e;
    }
  }

  // pool runs fn over items, at most n at a time.
  async function pool(items, n, fn) {
    const out = new Array(items.length);
    let i = 0;
    const worker = async () => {
      while (i < items.length) {
        const k = i++;
        out[k] = await fn(items[k], k);
      }
    };
    await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
    return out;
  }

  // ------------------------------------------------------------ state

  const $ = (id) => document.getElementById(id);
  const els = {};
  const state = {
    route: { view: "overview" },
    gen: 0, // bumped on every navigation: late answers for the old view are dropped
    inflight: -1,
    timer: 0,
    authWait: false,
    rendered: false, // the current view has shown its data
    focusNext: false, // move focus to the new view's heading once it is shown
    bounds: null, // Report.delay_bucket_bounds_ms, read once
    pairIds: new Map(), // route + request id → {id} | {gone} | {err}, with the time it was read
    jump: null, // {gen, path}: the difference last shown in the pair's bodies
    errorText: "",
  };

  function parseHash() {
    const raw = location.hash.replace(/^#/, "");
    const dec = (x) => {
      try {
        return decodeURIComponent(x);
      } catch (e) {
        return x;
      }
    };
    if (raw === "" || raw === "/") return { view: "overview" };
    if (raw === "/admission") return { view: "admission" };
    let m = /^\/route\/(.+)$/.exec(raw);
    if (m) return { view: "route", name: dec(m[1]) };
    m = /^\/pair\/(.+)$/.exec(raw);
    if (m) return { view: "pair", id: dec(m[1]) };
    return { view: "unknown", raw };
  }

  function navigate() {
    state.route = parseHash();
    state.gen++;
    state.rendered = false;
    clearTimeout(state.timer);
    els.view.removeAttribute("data-view");
    patchChildren(els.view, [h("p", { class: "loading" }, "Loading…")]);
    const active = state.route.view === "admission" ? "nav-admission" : state.route.view === "unknown" ? "" : "nav-overview";
    for (const id of ["nav-overview", "nav-admission"]) {
      if (id === active) $(id).setAttribute("aria-current", "page");
      else $(id).removeAttribute("aria-current");
    }
    load();
  }

  async function load() {
    if (state.authWait || state.inflight === state.gen) return;
    clearTimeout(state.timer);
    const gen = state.gen;
    const r = state.route;
    state.inflight = gen;
    try {
      const view = VIEWS[r.view] || VIEWS.unknown;
      const data = await view.fetch(r);
      if (gen !== state.gen) return;
      const out = view.render(data, r);
      patchChildren(els.view, flat(out.nodes));
      els.view.setAttribute("data-view", out.view);
      document.title = out.title ? out.title + " · shadowlab" : "shadowlab";
      state.rendered = true;
      setUpdated(new Date());
      showError("");
      if (state.focusNext) {
        state.focusNext = false;
        const h1 = els.view.querySelector("h1");
        if (h1) {
          h1.setAttribute("tabindex", "-1");
          h1.focus({ preventScroll: true });
        }
      }
    } catch (e) {
      if (gen !== state.gen) return;
      if (e instanceof AuthError) {
        askToken(e.hadToken);
        return;
      }
      showError(e.message || String(e));
      if (!state.rendered) {
        patchChildren(els.view, [
          h("div", { class: "empty" },
            h("h1", null, "Cannot show this view"),
            h("p", null, "The page keeps trying every 2 s."),
          ),
        ]);
      }
      if (!(e instanceof HTTPError)) console.error(e);
    } finally {
      if (state.inflight === gen) state.inflight = -1;
      if (gen === state.gen) schedule();
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = 0;
    if (!state.authWait && document.visibilityState === "visible") state.timer = setTimeout(load, POLL_MS);
  }

  function setUpdated(d) {
    els.updated.textContent = "Updated " + fmtClock(d);
    els.updated.title = "The page last read the API at " + d.toISOString() + "; it re-reads every 2 s while visible.";
  }

  function showError(text) {
    if (text === state.errorText) return;
    state.errorText = text;
    if (!text) {
      els.error.hidden = true;
      els.error.textContent = "";
      return;
    }
    els.error.textContent = "";
    els.error.append(
      textEl("strong", "Cannot read the API. "),
      document.createTextNode(text + ". Retrying every 2 s" + (state.rendered ? "; what is shown is from the last successful read." : ".")),
    );
    els.error.hidden = false;
  }
  function textEl(tag, text) {
    const e = document.createElement(tag);
    e.textContent = text;
    return e;
  }

  function askToken(refused) {
    if (refused) setToken("");
    state.authWait = true;
    clearTimeout(state.timer);
    showError("");
    els.view.removeAttribute("data-view");
    patchChildren(els.view, []);
    state.rendered = false;
    els.signOut.hidden = true;
    els.tokenError.hidden = !refused;
    els.tokenForm.hidden = false;
    els.token.value = "";
    els.token.focus();
  }

  function signIn(ev) {
    ev.preventDefault();
    const t = els.token.value.trim();
    if (!t) {
      els.token.focus();
      return;
    }
    setToken(t);
    els.token.value = "";
    els.tokenForm.hidden = true;
    els.tokenError.hidden = true;
    els.signOut.hidden = false;
    state.authWait = false;
    state.focusNext = true;
    navigate();
  }

  function signOut(ev) {
    ev.preventDefault();
    setToken("");
    state.pairIds.clear();
    els.signOut.hidden = true;
    state.authWait = false;
    navigate();
  }

  // ------------------------------------------------------------ charts

  // A history chart's time axis runs from the oldest bucket of the history
  // (at least AXIS_MIN_S before now) to now, at most AXIS_MAX_S: a demo
  // that ran for a minute fills a fifth of the chart, not one pixel of an
  // hour. The API's buckets are drawn as they are up to a span of
  // BIN_RAW_MAX_S; past it they are summed into wider bins, so that an
  // hour stays readable.
  const AXIS_MIN_S = 300;
  const AXIS_MAX_S = 3600;
  const BIN_RAW_MAX_S = 900;
  const BIN_WIDER = [[1800, 30], [2700, 60], [Infinity, 120]]; // span up to → bin (s)

  // timeAxis lays a history out on a time axis {t0, t1, bin, step, n, now}
  // (unix seconds): n bins of bin seconds from t0 to t1, the end of the
  // bucket now fills. Bins end on t1, so the last bin holds the current
  // bucket whatever its width; step is the API's bucket width.
  function timeAxis(history, nowMs) {
    const step = Math.max(1, Number(history && history.bucket_seconds) || 10);
    const starts = [];
    for (const b of arr(history && history.buckets)) {
      const t = toDate(b.start);
      if (t) starts.push(t.getTime() / 1000);
    }
    const now = (typeof nowMs === "number" ? nowMs : Date.now()) / 1000;
    const latest = starts.length ? Math.max(...starts) + step : now;
    const end = Math.max(now, latest); // a server clock ahead of ours
    const t1 = Math.ceil(end / step) * step;
    const oldest = starts.length ? Math.min(...starts) : t1;
    const from = Math.max(t1 - AXIS_MAX_S, Math.min(oldest, t1 - AXIS_MIN_S));
    const want = t1 - from;
    let bin = step;
    if (want > BIN_RAW_MAX_S) {
      for (const [upTo, b] of BIN_WIDER) {
        if (want <= upTo) {
          bin = Math.max(step, Math.ceil(b / step) * step);
          break;
        }
      }
    }
    const n = Math.max(1, Math.ceil(want / bin));
    const t0 = t1 - n * bin;
    return { t0, t1, bin, step, n, now };
  }

  // binOf is the start of the axis bin that holds the bucket starting at t
  // (unix seconds), or null when it falls outside the axis.
  function binOf(axis, t) {
    if (t < axis.t0 || t >= axis.t1) return null;
    return axis.t1 - (Math.floor((axis.t1 - t - axis.step) / axis.bin) + 1) * axis.bin;
  }

  // binned sums fields (name → function of a bucket) per bin of the axis:
  // a Map from bin start to {field: sum}, only bins that saw a bucket.
  function binned(axis, buckets, fields) {
    const out = new Map();
    for (const b of buckets) {
      const t = toDate(b.start);
      if (!t) continue;
      const k = binOf(axis, t.getTime() / 1000);
      if (k === null) continue;
      let c = out.get(k);
      if (!c) {
        c = {};
        for (const f of Object.keys(fields)) c[f] = 0;
        out.set(k, c);
      }
      for (const [f, fn] of Object.entries(fields)) c[f] += fn(b) || 0;
    }
    return out;
  }

  function fmtSpan(sec) {
    const m = Math.round(sec / 60);
    return m >= 60 ? (m % 60 === 0 ? m / 60 + " h" : (m / 60).toFixed(1) + " h") : m + " min";
  }
  function fmtBin(sec) {
    return sec < 60 ? sec + " s" : sec / 60 + " min";
  }
  function fmtHM(t) {
    const d = toDate(t);
    return d ? pad2(d.getHours()) + ":" + pad2(d.getMinutes()) : "—";
  }
  // axisWords is how a chart names its axis: "last 6 min".
  function axisWords(axis) {
    return "last " + fmtSpan(axis.t1 - axis.t0);
  }

  // sparkline draws the match rate, match ÷ (match + diff), of each bin of
  // the axis that compared a pair; bins without compared pairs are skipped.
  function sparkline(history, opts) {
    const w = (opts && opts.w) || 120;
    const hgt = (opts && opts.h) || 24;
    const axis = timeAxis(history);
    const bins = binned(axis, arr(history && history.buckets), { match: (b) => b.match, diff: (b) => b.diff });
    const pts = [];
    for (const [t, c] of Array.from(bins.entries()).sort((a, b) => a[0] - b[0])) {
      if (c.match + c.diff > 0) pts.push({ t, r: c.match / (c.match + c.diff), match: c.match, n: c.match + c.diff });
    }
    const caption = h("span", { class: "spark-axis", "aria-hidden": "true" },
      h("span", null, fmtHM(axis.t0)), h("span", { class: "spark-span" }, axisWords(axis)), h("span", null, fmtHM(axis.now)));
    if (pts.length === 0) {
      return h("span", { class: "muted spark-none", title: "No compared pairs (match or diff) in the " + axisWords(axis) }, "no trend");
    }
    let lo = Math.min(...pts.map((p) => p.r), 0.9);
    lo = Math.max(0, Math.floor(lo * 20) / 20);
    const x = (t) => 2 + ((t + axis.bin / 2 - axis.t0) / (axis.t1 - axis.t0)) * (w - 4);
    const y = (r) => 2 + (1 - (r - lo) / (1 - lo || 1)) * (hgt - 4);
    const last = pts[pts.length - 1];
    const lowest = pts.reduce((m, p) => (p.r < m.r ? p : m), pts[0]);
    const label = "Match rate per " + fmtBin(axis.bin) + " over the " + axisWords(axis) + " (" + fmtClock(axis.t0) + " to " + fmtClock(axis.now) +
      "): latest " + fmtRate(last.r) + " (" + last.match + " of " + last.n + " compared), lowest " + fmtRate(lowest.r) + " at " + fmtClock(lowest.t) +
      ". Computed in the page from the API's match and diff counts, match ÷ (match + diff) per " + fmtBin(axis.bin) +
      "; spans without compared pairs are skipped. Dashed line: 99 %; the scale runs from " + Math.round(lo * 100) + " % to 100 %.";
    const kids = [s("line", { class: "spark-base", x1: 0, x2: w, y1: hgt - 0.5, y2: hgt - 0.5 })];
    if (lo < RULE.matchRate) {
      const yt = y(RULE.matchRate).toFixed(1);
      kids.push(s("line", { class: "spark-ref", x1: 0, x2: w, y1: yt, y2: yt }));
    }
    if (pts.length > 1) {
      kids.push(s("polyline", { class: "spark-line", points: pts.map((p) => x(p.t).toFixed(1) + "," + y(p.r).toFixed(1)).join(" ") }));
    }
    kids.push(s("circle", { class: last.r < RULE.matchRate ? "spark-end bad" : "spark-end", cx: x(last.t).toFixed(1), cy: y(last.r).toFixed(1), r: pts.length > 1 ? 2 : 2.5 }));
    return h("span", { class: "spark", title: label },
      s("svg", { class: "sparkline", width: w, height: hgt, viewBox: "0 0 " + w + " " + hgt, role: "img", "aria-label": label, focusable: "false" }, kids),
      caption);
  }

  // barStrip draws counts per bin of the axis, stacked by series: bins is a
  // Map from bin start to {field: count}, each series {field, label, cls}.
  function barStrip(axis, bins, series, opts) {
    const w = opts.w;
    const hgt = opts.h;
    const span = axis.t1 - axis.t0;
    const total = (c) => series.reduce((a, sr) => a + (c[sr.field] || 0), 0);
    const max = Math.max(1, ...Array.from(bins.values()).map(total));
    const bw = (axis.bin / span) * w;
    const gap = bw >= 4 ? Math.min(2, bw * 0.15) : 0;
    const rects = [];
    for (const [t, c] of bins) {
      let y = hgt;
      const x = ((t - axis.t0) / span) * w;
      const tip = fmtClock(t) + "–" + fmtClock(t + axis.bin) + ": " + series.map((sr) => (c[sr.field] || 0) + " " + sr.label).join(", ");
      for (const sr of series) {
        const v = c[sr.field] || 0;
        if (v <= 0) continue;
        const bh = Math.max(1, (v / max) * (hgt - 1));
        y -= bh;
        rects.push(s("rect", {
          class: sr.cls, x: (x + gap / 2).toFixed(2), y: y.toFixed(2),
          width: Math.max(bw - gap, 1).toFixed(2), height: bh.toFixed(2),
        }, s("title", null, tip)));
      }
    }
    return s("svg", {
      class: "strip " + (opts.cls || ""), width: w, height: hgt, viewBox: "0 0 " + w + " " + hgt,
      preserveAspectRatio: "none", role: "img", "aria-label": opts.label, focusable: "false",
    }, s("line", { class: "axis", x1: 0, x2: w, y1: hgt - 0.5, y2: hgt - 0.5 }), rects);
  }

  // timeLabels labels a wide chart's axis: the time at each end, the span
  // in the middle.
  function timeLabels(axis) {
    return h("div", { class: "axis-labels" },
      h("span", null, fmtClock(axis.t0)), h("span", { class: "axis-span" }, axisWords(axis)), h("span", null, fmtClock(axis.now)));
  }

  // ------------------------------------------------------------ shared bits

  function badge(text, cls, title) {
    return h("span", { class: "badge " + (cls || ""), title: title || null }, text);
  }
  function outcomeBadge(o) {
    return badge(OUTCOME_LABEL[o] || o, "outcome-" + o, OUTCOME_HELP[o] || null);
  }
  function verdictBadge(v) {
    if (!v) return null;
    return badge(v, "verdict-" + v, "rollout gates: " + v);
  }
  function stageBadge(st) {
    if (!st) return h("span", { class: "muted", title: "No rollout block: the route only mirrors" }, "—");
    return badge(st.replace("_", " "), "stage stage-" + st);
  }
  function section(title, id, ...kids) {
    return h("section", { class: "card", "aria-labelledby": id + "-h" }, h("h2", { id: id + "-h" }, title), kids);
  }
  function tableWrap(tbl, label) {
    return h("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, tbl);
  }
  function crumbs(...items) {
    return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", null, items.map((it) => h("li", null, it))));
  }
  function mono(text, cls) {
    return h("code", { class: "mono " + (cls || "") }, text);
  }
  function statLine(label, value, title, cls) {
    return h("div", { class: "stat " + (cls || ""), title: title || null }, h("dt", null, label), h("dd", null, value));
  }

  // notMatched lists the outcomes other than match that a route saw.
  function notMatched(outcomes, pairs) {
    const items = NOT_MATCHED.filter((o) => (outcomes[o] || 0) > 0);
    if (items.length === 0) return h("span", { class: "muted" }, "none");
    return h("ul", { class: "inline-list" }, items.map((o) =>
      h("li", {
        class: "oc oc-" + o,
        title: OUTCOME_LABEL[o] + ": " + OUTCOME_HELP[o] + ". " + outcomes[o] + " of " + pairs + " pairs (" + fmtShare(outcomes[o], pairs) + ", computed in the page)",
      }, h("span", { class: "n" }, num(outcomes[o])), " " + OUTCOME_LABEL[o])));
  }

  // ------------------------------------------------------------ overview

  function admissionTotals(rows, route) {
    const t = { admitted: 0, delayed: 0, rejected: 0, rows: 0 };
    for (const a of rows) {
      if (a.route !== route) continue;
      t.admitted += a.admitted || 0;
      t.delayed += a.delayed || 0;
      t.rejected += a.rejected || 0;
      t.rows++;
    }
    return t;
  }

  function attentionReasons(rr, rollout, adm) {
    const out = [];
    if (rr && rr.pairs > 0) {
      const oc = outcomesOf(rr);
      if (typeof rr.match_rate === "number" && rr.match_rate < RULE.matchRate) {
        out.push("match rate " + fmtRate(rr.match_rate) + " is below 99 %");
      }
      for (const o of ["primary_only", "shadow_only", "skipped"]) {
        const n = oc[o] || 0;
        if (n / rr.pairs > RULE.uncompared) out.push(OUTCOME_LABEL[o] + " " + fmtShare(n, rr.pairs) + " of pairs");
      }
      const lat = obj(rr.latency);
      const p = obj(lat.primary);
      const sh = obj(lat.shadow);
      if (p.count > 0 && sh.count > 0 && p.p99_ms > 0 && sh.p99_ms > RULE.p99Ratio * p.p99_ms) {
        out.push("shadow p99 is " + fmtRatio(sh.p99_ms, p.p99_ms) + " the primary's");
      }
    }
    if (rollout && rollout.verdict === "fail") out.push("rollout gates fail");
    if (adm.rejected > 0) out.push("admission rejected " + adm.rejected + " requests");
    return out;
  }

  async function fetchOverview() {
    const report = await api("report");
    if (Array.isArray(report.delay_bucket_bounds_ms)) state.bounds = report.delay_bucket_bounds_ms;
    const results = new Map(arr(report.routes).map((r) => [r.route, r]));
    let policy = arr(report.policy);
    if (policy.length === 0 && results.size > 0) {
      policy = Array.from(results.keys()).map((route) => ({ route, unknown: true }));
    }
    // The trend needs each route's history; read the route when the
    // report's copy has none.
    const need = Array.from(results.values()).filter((r) => !r.history).map((r) => r.route);
    const histories = new Map();
    await pool(need, 4, async (route) => {
      const rr = await optional(api("routes/" + enc(route)));
      if (rr && rr.history) histories.set(route, rr.history);
    });
    for (const r of results.values()) if (r.history) histories.set(r.route, r.history);
    let rollout = null;
    if (policy.some((p) => p.stage)) rollout = await optional(api("rollout"));
    return { report, policy, results, histories, rollout };
  }

  function renderOverview(d) {
    const admission = arr(d.report.admission);
    const rollouts = new Map(arr(rollOf(d.rollout)).map((r) => [r.route, r]));
    let attention = 0;
    let mirrored = 0;
    const rows = d.policy.map((p) => {
      const rr = d.results.get(p.route) || null;
      const ro = rollouts.get(p.route) || null;
      const adm = admissionTotals(admission, p.route);
      const why = attentionReasons(rr, ro, adm);
      if (why.length) attention++;
      if (p.shadow) mirrored++;
      return overviewRow(p, rr, ro, adm, why, d.histories.get(p.route));
    });
    const gen = d.report.generated_at;
    return {
      view: "overview",
      title: "Overview",
      nodes: [
        h("div", { class: "page-head" },
          h("h1", null, "Routes"),
          h("p", { class: "lede" },
            d.policy.length + " routes in the policy, " + mirrored + " mirrored; ",
            h("strong", { class: attention ? "attn-count" : null }, attention + (attention === 1 ? " needs" : " need") + " attention"),
            gen ? [". Report generated at ", timeEl(gen), "."] : ".")),
        d.policy.length === 0
          ? h("p", { class: "empty" }, "The policy has no routes.")
          : tableWrap(h("table", { id: "routes", class: "grid routes collapse" },
            h("thead", null, h("tr", null,
              h("th", { scope: "col" }, "Route"),
              h("th", { scope: "col" }, "Stage"),
              h("th", { scope: "col", title: "Share of the route's traffic mirrored to the shadow, and for which tenants" }, "Mirrored"),
              h("th", { scope: "col", class: "num", title: "Pairs recorded, whatever their outcome" }, "Pairs"),
              h("th", { scope: "col", class: "num", title: "match / (match + diff)" }, "Match rate"),
              h("th", { scope: "col", title: "Match rate, match ÷ (match + diff), per 10 s (wider bins past 15 min) from the oldest pairs of the last hour, at least 5 min, to now; the dashed line is 99 %" }, "Match-rate trend"),
              h("th", { scope: "col", title: "Upstream latency of each side, p50 / p99" }, "Latency p50 / p99"),
              h("th", { scope: "col", title: "Pairs whose outcome was not a match" }, "Not matched"),
              h("th", { scope: "col", title: "Admission decisions for the route, all scopes and keys" }, "Admission"))),
            h("tbody", null, rows)), "Routes"),
        legend(),
      ],
    };
  }

  function rollOf(ro) {
    return ro && Array.isArray(ro.routes) ? ro.routes : [];
  }

  function overviewRow(p, rr, ro, adm, why, history) {
    const oc = outcomesOf(rr);
    const pairs = rr ? rr.pairs || 0 : 0;
    const lat = obj(rr && rr.latency);
    const lp = obj(lat.primary);
    const ls = obj(lat.shadow);
    const slow = lp.count > 0 && ls.count > 0 && lp.p99_ms > 0 && ls.p99_ms > RULE.p99Ratio * lp.p99_ms;
    const tenants = arr(p.tenants);

    let share;
    if (p.unknown) share = h("span", { class: "muted" }, "—");
    else if (!p.shadow) share = h("span", { class: "muted" }, "not mirrored");
    else {
      share = [
        h("span", { class: "share-pct" }, fmtPercent(p.percent)),
        h("span", { class: "sub" }, tenants.length ? "tenants " + tenants.join(", ") : "all tenants"),
        p.compared === false ? h("span", { class: "sub warn-text", title: "The shadow's answers are not captured: nothing to compare" }, "not compared") : null,
      ];
    }

    let latency;
    if (lp.count > 0 || ls.count > 0) {
      latency = h("dl", { class: "lat" },
        h("div", null, h("dt", null, "primary"), h("dd", null, fmtMs(lp.p50_ms) + " / " + fmtMs(lp.p99_ms))),
        h("div", { class: slow ? "slow" : null, title: slow ? "The shadow's p99 is more than twice the primary's" : null },
          h("dt", null, "shadow"), h("dd", null, fmtMs(ls.p50_ms) + " / " + fmtMs(ls.p99_ms))));
    } else latency = h("span", { class: "muted" }, "—");

    let admCell;
    if (adm.rows > 0) {
      admCell = h("ul", { class: "inline-list", title: "Sums of the route's admission rows (computed in the page)" },
        h("li", null, h("span", { class: "n" }, num(adm.admitted)), " admitted"),
        h("li", null, h("span", { class: "n" }, num(adm.delayed)), " delayed"),
        h("li", { class: adm.rejected > 0 ? "bad-text" : null }, h("span", { class: "n" }, num(adm.rejected)), " rejected"));
    } else if (p.admission) {
      admCell = h("span", { class: "muted" }, p.admission + ", no decisions yet");
    } else admCell = h("span", { class: "muted" }, "—");

    const attrs = { key: p.route, "data-route": p.route, class: why.length ? "attention" : null };
    if (why.length) attrs["data-attention"] = why.join("; ");
    return h("tr", attrs,
      h("th", { scope: "row", class: "route-cell" },
        h("a", { href: hrefRoute(p.route), class: "route-link" }, p.route),
        !p.unknown ? h("span", { class: "sub" }, (p.primary || "?") + (p.shadow ? " → " + p.shadow : "")) : null,
        why.length ? h("div", { class: "attn" },
          badge("needs attention", "attention", why.join("; ")),
          h("ul", { class: "why" }, why.map((w) => h("li", null, w)))) : null),
      h("td", { "data-field": "stage", "data-label": "Stage" }, stageBadge(p.stage), ro && ro.verdict ? [" ", verdictBadge(ro.verdict)] : null),
      h("td", { "data-field": "share", "data-label": "Mirrored" }, share),
      h("td", { "data-field": "pairs", "data-label": "Pairs", class: "num" }, String(pairs)),
      h("td", {
        "data-field": "match-rate",
        "data-label": "Match rate",
        class: "num rate" + (rr && typeof rr.match_rate === "number" ? (rr.match_rate < RULE.matchRate ? " bad-text" : "") : " muted"),
        title: rr ? "match / (match + diff) = " + (oc.match || 0) + " / " + ((oc.match || 0) + (oc.diff || 0)) : "No results yet",
      }, fmtRate(rr ? rr.match_rate : null)),
      h("td", { class: "trend", "data-label": "Match-rate trend" }, rr ? sparkline(history) : h("span", { class: "muted" }, "—")),
      h("td", { "data-field": "latency", "data-label": "Latency p50 / p99" }, latency),
      h("td", { "data-field": "other", "data-label": "Not matched" }, rr ? notMatched(oc, pairs) : h("span", { class: "muted" }, "—")),
      h("td", { "data-field": "admission", "data-label": "Admission" }, admCell));
  }

  function legend() {
    return h("aside", { class: "legend", "aria-labelledby": "legend-h" },
      h("h2", { id: "legend-h" }, "When a route needs attention"),
      h("p", null, "A route is marked ", badge("needs attention", "attention"), " when any of these holds:"),
      h("ul", null,
        h("li", null, "its match rate (match ÷ (match + diff)) is below 99 %;"),
        h("li", null, "primary only, shadow only or skipped pairs are each more than 5 % of its pairs;"),
        h("li", null, "the shadow's p99 latency is more than twice the primary's;"),
        h("li", null, "its rollout gates fail;"),
        h("li", null, "admission rejected any of its requests.")),
      h("p", { class: "muted" }, "Shares, ratios and sums are computed in the page from the API's counts; every other number is the API's, rounded."));
  }

  // ------------------------------------------------------------ route

  async function fetchRoute(r) {
    const name = r.name;
    const [rr, pairs, rollout] = await Promise.all([
      orNotFound(api("routes/" + enc(name))),
      optional(api("pairs?route=" + enc(name) + "&limit=20")),
      optional(api("rollout")),
    ]);
    const recent = arr(pairs && pairs.pairs);
    await resolveSamples(name, rr, recent);
    return { name, rr, recent, pairsOK: pairs !== null, rollout: rollOf(rollout).find((x) => x.route === name) || null };
  }

  // resolveSamples finds the pair id of each sample's request id: from the
  // recent pairs when there, else one lookup per request id (four at a
  // time). A pair that is gone stays gone; a found one is checked again
  // after a minute, since old pairs are dropped.
  async function resolveSamples(route, rr, recent) {
    const now = Date.now();
    const ids = state.pairIds;
    if (ids.size > 5000) ids.clear();
    const key = (rid) => route + "\u0000" + rid;
    for (const p of recent) ids.set(key(p.request_id), { id: p.id, at: now });
    const need = new Set();
    for (const d of arr(rr && rr.differences)) {
      for (const sm of arr(d.samples)) {
        const c = ids.get(key(sm.request_id));
        if (!c || (c.id !== undefined && now - c.at > 60000) || (c.err && now - c.at > 10000)) need.add(sm.request_id);
      }
    }
    await pool(Array.from(need), 4, async (rid) => {
      try {
        const j = await api("pairs?route=" + enc(route) + "&request_id=" + enc(rid) + "&limit=1");
        const p = arr(j && j.pairs)[0];
        ids.set(key(rid), p && p.request_id === rid ? { id: p.id, at: now } : { gone: true, at: now });
      } catch (e) {
        if (e instanceof AuthError) throw e;
        ids.set(key(rid), { err: e.message, at: now });
      }
    });
  }

  function sampleLink(route, sm) {
    const c = state.pairIds.get(route + "\u0000" + sm.request_id);
    if (c && c.id !== undefined) {
      return h("a", { class: "sample", href: hrefPair(c.id), title: "Open the pair of request " + sm.request_id }, "pair " + c.id);
    }
    if (c && c.gone) {
      return h("span", { class: "sample gone", title: "Pair of request " + sm.request_id + " is no longer kept (only recent pairs are)" }, "no longer kept");
    }
    return h("span", { class: "sample unknown", title: "Could not look up the pair: " + ((c && c.err) || "not read yet") }, "pair unknown");
  }

  function renderRoute(d) {
    const name = d.name;
    const rr = d.rr;
    const head = [
      crumbs(h("a", { href: "#/" }, "Overview"), h("span", { "aria-current": "page" }, "Route")),
      h("div", { class: "page-head" },
        h("h1", { class: "mono-title" }, name),
        d.rollout ? h("p", { class: "lede" }, "Rollout stage ", stageBadge(d.rollout.stage), " ", verdictBadge(d.rollout.verdict)) : null),
    ];
    if (!rr) {
      return {
        view: "route",
        title: name,
        nodes: [head,
          h("p", { class: "empty" }, "No pair recorded for this route yet: it is not mirrored, not compared, not in the policy, or no request came."),
          d.rollout ? rolloutSection(d.rollout, true) : null,
          recentSection(d)],
      };
    }
    const oc = outcomesOf(rr);
    const history = obj(rr.history);
    const buckets = arr(history.buckets);
    const axis = timeAxis(history);
    const outcomes = binned(axis, buckets, { match: (b) => b.match, diff: (b) => b.diff, other: (b) => b.other });
    const per = "one bar per " + fmtBin(axis.bin) + (axis.bin > axis.step ? " (the API's " + fmtBin(axis.step) + " buckets, summed)" : "");
    return {
      view: "route",
      title: name,
      nodes: [
        head,
        h("dl", { class: "stats" },
          statLine("Pairs", num(rr.pairs), "Pairs recorded, whatever their outcome"),
          statLine("Match rate", fmtRate(rr.match_rate), "match / (match + diff) = " + (oc.match || 0) + " / " + ((oc.match || 0) + (oc.diff || 0)),
            typeof rr.match_rate === "number" && rr.match_rate < RULE.matchRate ? "bad" : ""),
          OUTCOMES.map((o) => statLine(OUTCOME_LABEL[o], num(oc[o] || 0), OUTCOME_HELP[o])),
          rr.folded_pairs > 0 ? statLine("folded", num(rr.folded_pairs), "Diff pairs counted per pattern only (too many distinct sets of differences); they stay diffs") : null),
        section("Outcomes over the " + (outcomes.size ? axisWords(axis) : "last hour"), "trend",
          outcomes.size === 0
            ? h("p", { class: "muted" }, "No pairs in the last hour.")
            : [
              h("div", { class: "chart-wide" }, barStrip(axis, outcomes, [
                { field: "match", label: "match", cls: "b-match" },
                { field: "diff", label: "diff", cls: "b-diff" },
                { field: "other", label: "other outcomes", cls: "b-other" },
              ], { w: 720, h: 64, label: "Pairs by outcome, " + per + ", over the " + axisWords(axis) + " (" + fmtClock(axis.t0) + " to " + fmtClock(axis.now) + ")" }),
              timeLabels(axis)),
              h("p", { class: "chart-legend" },
                h("span", { class: "key k-match" }, "match"), h("span", { class: "key k-diff" }, "diff"),
                h("span", { class: "key k-other" }, "other outcomes"),
                h("span", { class: "muted" }, "· " + per + "; the tallest bar is " + Math.max(...Array.from(outcomes.values()).map((c) => c.match + c.diff + c.other)) + " pairs" +
                  "; pairs from " + fmtClock(Math.min(...outcomes.keys())) + " to " + fmtClock(Math.max(...outcomes.keys()) + axis.bin))),
            ]),
        differencesSection(name, rr, buckets, axis),
        h("div", { class: "cols" }, latencySection(rr), noiseSection(rr)),
        arr(rr.tenants).length ? tenantsSection(rr, d.rollout) : null,
        d.rollout ? rolloutSection(d.rollout, arr(rr.tenants).length === 0) : null,
        reasonsSection(rr),
        recentSection(d),
      ],
    };
  }

  function differencesSection(route, rr, buckets, axis) {
    const diffs = arr(rr.differences);
    const diffPairs = outcomesOf(rr).diff || 0;
    return section("Differing paths", "differences",
      h("p", { class: "muted section-note" }, "Where the shadow answered differently, outside learned noise, by JSON path pattern. Counts are diff pairs with at least one difference there."),
      diffs.length === 0 ? h("p", { class: "empty" }, "No differences outside learned noise.") : null,
      h("ul", { id: "differences", class: "diffs" }, diffs.map((df) => {
        const perBin = binned(axis, buckets, {
          n: (b) => {
            const hit = arr(b.differences).find((x) => x.pattern === df.pattern && x.kind === df.kind);
            return hit ? hit.count : 0;
          },
        });
        return h("li", { key: df.kind + " " + df.pattern, "data-pattern": df.pattern, "data-kind": df.kind, class: "diff-item" },
          h("div", { class: "diff-head" },
            mono(df.pattern, "pattern"),
            badge(df.kind.replace("_", " "), "kind kind-" + df.kind),
            h("span", { class: "count", title: "Diff pairs with a difference here: " + df.count + " of " + diffPairs + " (" + fmtShare(df.count, diffPairs) + ", computed in the page)" },
              h("span", { "data-field": "count", class: "n" }, String(df.count)), " pairs"),
            Array.from(perBin.values()).some((c) => c.n > 0)
              ? barStrip(axis, perBin, [{ field: "n", label: "pairs with this difference", cls: "b-diff" }],
                { w: 180, h: 22, cls: "mini", label: "Pairs with this difference per " + fmtBin(axis.bin) + " over the " + axisWords(axis) + ", on the outcomes chart's axis" })
              : null),
          arr(df.samples).length ? h("ul", { class: "samples" }, arr(df.samples).map((sm) =>
            h("li", { key: sm.request_id + " " + sm.path, class: "sample-item" },
              h("div", { class: "sample-head" }, sampleLink(route, sm), " ", mono(sm.path, "path"), " ",
                h("span", { class: "muted when" }, timeEl(sm.at))),
              excerpt("primary", sm.primary), excerpt("shadow", sm.shadow)))) : null);
      })));
  }

  function excerpt(side, text) {
    return h("div", { class: "excerpt" },
      h("span", { class: "side-label" }, side),
      text ? h("pre", { class: "mono" }, text) : h("pre", { class: "mono none", title: "The " + side + " has no value here" }, "(none)"));
  }

  function noiseSection(rr) {
    const noise = arr(rr.noise);
    const marks = arr(rr.marks);
    return section("Learned noise", "noise",
      h("p", { class: "muted section-note" }, "Paths whose values the services do not reproduce from one answer to the next (timestamps, ids). A pair that differs only there counts as a match."),
      noise.length === 0 ? h("p", { class: "empty" }, "No noise learned yet.") : null,
      h("ul", { id: "noise", class: "noise-list" }, noise.map((n) =>
        h("li", { key: n.pattern, "data-pattern": n.pattern },
          mono(n.pattern, "pattern"),
          h("span", { class: "noise-stat", title: "Pairs that count as matches because their only differences lay on noise, one of them here" },
            h("span", { class: "n" }, num(n.suppressed)), " pairs explained"),
          h("span", { class: "noise-stat muted", title: "How often this path varied between two answers of the same service: " + n.varied + " of " + n.compared + " (" + fmtShare(n.varied, n.compared) + ", computed in the page)" },
            "varied " + num(n.varied) + " / " + num(n.compared) + " compared")))),
      marks.length ? [
        h("h3", null, "Echoed marks"),
        h("p", { class: "muted section-note" }, "shadowlab's own request marks that the shadow echoed back: not counted as differences."),
        h("ul", { class: "noise-list" }, marks.map((m) => h("li", { key: m.pattern }, mono(m.pattern, "pattern"), h("span", { class: "noise-stat" }, h("span", { class: "n" }, num(m.count)), " pairs")))),
      ] : null);
  }

  function latencySection(rr) {
    const lat = obj(rr.latency);
    const p = obj(lat.primary);
    const sh = obj(lat.shadow);
    const row = (label, k, fmt) => h("tr", null,
      h("th", { scope: "row" }, label),
      h("td", { class: "num" }, fmt(p[k])),
      h("td", { class: "num" }, fmt(sh[k])),
      h("td", { class: "num" + (k === "p99_ms" && p[k] > 0 && sh[k] > RULE.p99Ratio * p[k] ? " bad-text" : ""), title: "shadow ÷ primary, computed in the page" },
        k === "count" ? "" : fmtRatio(sh[k], p[k])));
    return section("Latency", "latency",
      tableWrap(h("table", { id: "latency", class: "grid compact" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, ""), h("th", { scope: "col", class: "num" }, "Primary"),
          h("th", { scope: "col", class: "num" }, "Shadow"), h("th", { scope: "col", class: "num" }, "Shadow ÷ primary"))),
        h("tbody", null,
          row("answers", "count", num),
          row("p50", "p50_ms", fmtMs), row("p90", "p90_ms", fmtMs), row("p99", "p99_ms", fmtMs), row("max", "max_ms", fmtMs))), "Latency"));
  }

  function tenantsSection(rr, rollout) {
    const verdicts = new Map(arr(rollout && rollout.tenants).map((t) => [t.tenant, t]));
    return section("Tenants", "tenants",
      h("p", { class: "muted section-note" }, "Per tenant of the route's tenant header, since serve started" + (rollout ? "; verdicts are the rollout gates' over their window." : ".")),
      tableWrap(h("table", { id: "tenants", class: "grid" },
        h("thead", null, h("tr", null,
          h("th", { scope: "col" }, "Tenant"), h("th", { scope: "col", class: "num" }, "Pairs"),
          h("th", { scope: "col", class: "num" }, "Match rate"), h("th", { scope: "col" }, "Not matched"),
          rollout ? h("th", { scope: "col" }, "Rollout verdict") : null)),
        h("tbody", null, arr(rr.tenants).map((t) => {
          const v = verdicts.get(t.tenant);
          return h("tr", { key: t.tenant, "data-tenant": t.tenant },
            h("th", { scope: "row" }, mono(t.tenant)),
            h("td", { class: "num" }, num(t.pairs)),
            h("td", { class: "num" + (typeof t.match_rate === "number" && t.match_rate < RULE.matchRate ? " bad-text" : "") }, fmtRate(t.match_rate)),
            h("td", null, notMatched(outcomesOf(t), t.pairs || 0)),
            rollout ? h("td", null, v ? [verdictBadge(v.verdict), failingGates(v.gates)] : h("span", { class: "muted" }, "—")) : null);
        }))), "Tenants"));
  }

  function failingGates(gates) {
    const bad = arr(gates).filter((g) => g.verdict !== "pass");
    if (!bad.length) return null;
    return h("span", { class: "sub" }, bad.map((g) => g.gate + (g.missing ? " (" + g.missing + ")" : "")).join(", "));
  }

  // rolloutSection shows a rolled-out route's stage, evidence and gates,
  // and its tenants' verdicts when the tenants table does not.
  function rolloutSection(ro, withTenants) {
    const ev = ro;
    const fallbacks = Object.entries(obj(ev.fallbacks)).filter(([, n]) => n > 0);
    return section("Rollout", "rollout",
      h("dl", { class: "stats" },
        statLine("Stage", stageBadge(ro.stage)),
        statLine("Verdict", verdictBadge(ro.verdict) || "—"),
        statLine("Canary", fmtPercent(ro.percent), "Share of users sent to the candidate"),
        statLine("Canary tenants", arr(ro.canary_tenants).length ? arr(ro.canary_tenants).join(", ") : "all"),
        statLine("Compared pairs", num(ev.pairs), "match + diff over the gate window"),
        statLine("Match rate", fmtRate(ev.match_rate)),
        statLine("Candidate requests", num(ev.candidate_requests)),
        statLine("Fell back or failed", num(ev.fallen_back_or_failed),
          fallbacks.length ? "Fallbacks by reason: " + fallbacks.map(([k, n]) => k + " " + n).join(", ") : null)),
      arr(ro.gates).length ? tableWrap(h("table", { class: "grid compact gates" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Gate"), h("th", { scope: "col" }, "Verdict"),
          h("th", { scope: "col", class: "num" }, "Value"), h("th", { scope: "col", class: "num" }, "Threshold"), h("th", { scope: "col" }, "Missing"))),
        h("tbody", null, arr(ro.gates).map((g) => h("tr", { key: g.gate },
          h("th", { scope: "row" }, mono(g.gate)), h("td", null, verdictBadge(g.verdict)),
          h("td", { class: "num" }, typeof g.value === "number" ? String(+g.value.toFixed(4)) : "—"),
          h("td", { class: "num" }, typeof g.threshold === "number" ? String(+g.threshold.toFixed(4)) : "—"),
          h("td", { class: "muted" }, g.missing || ""))))), "Gates") : null,
      withTenants && arr(ro.tenants).length ? [
        h("h3", null, "Tenants"),
        tableWrap(h("table", { class: "grid compact rollout-tenants" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Tenant"), h("th", { scope: "col", class: "num" }, "Compared pairs"),
            h("th", { scope: "col", class: "num" }, "Match rate"), h("th", { scope: "col" }, "Verdict"))),
          h("tbody", null, arr(ro.tenants).map((t) => h("tr", { key: t.tenant },
            h("th", { scope: "row" }, mono(t.tenant)), h("td", { class: "num" }, num(t.pairs)),
            h("td", { class: "num" }, fmtRate(t.match_rate)), h("td", null, verdictBadge(t.verdict), failingGates(t.gates)))))), "Rollout tenants"),
      ] : null);
  }

  function reasonsSection(rr) {
    const rows = [];
    for (const o of NOT_MATCHED) {
      const rs = obj(obj(rr.reasons)[o]);
      for (const [reason, n] of Object.entries(rs).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) {
        rows.push(h("tr", { key: o + " " + reason }, h("td", null, outcomeBadge(o)), h("td", null, mono(reason)), h("td", { class: "num" }, num(n))));
      }
    }
    return section("Not compared", "reasons",
      rows.length === 0
        ? h("p", { class: "empty" }, "Every pair was compared.")
        : tableWrap(h("table", { id: "reasons", class: "grid compact" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Outcome"), h("th", { scope: "col" }, "Reason"), h("th", { scope: "col", class: "num" }, "Pairs"))),
          h("tbody", null, rows)), "Reasons"));
  }

  function recentSection(d) {
    return section("Recent pairs that did not match", "recent",
      !d.pairsOK ? h("p", { class: "muted" }, "The recent pairs could not be read.")
        : d.recent.length === 0 ? h("p", { class: "empty" }, "None kept.")
          : tableWrap(h("table", { id: "recent", class: "grid compact" },
            h("thead", null, h("tr", null,
              h("th", { scope: "col" }, "Pair"), h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Request"),
              h("th", { scope: "col" }, "Outcome"), h("th", { scope: "col", class: "num" }, "Status P / S"),
              h("th", { scope: "col", class: "num" }, "Latency P / S"), h("th", { scope: "col", class: "num" }, "Differences"))),
            h("tbody", null, d.recent.map((p) => h("tr", { key: String(p.id) },
              h("td", null, h("a", { href: hrefPair(p.id), class: "pair-link" }, "pair " + p.id)),
              h("td", null, timeEl(p.at)),
              h("td", { class: "req" }, mono((p.method || "") + " " + (p.path || ""))),
              h("td", null, outcomeBadge(p.outcome), p.reason ? h("span", { class: "sub" }, p.reason) : null),
              h("td", { class: "num" + (p.primary_status !== p.shadow_status ? " bad-text" : "") }, statusText(p.primary_status) + " / " + statusText(p.shadow_status)),
              h("td", { class: "num" }, fmtMs(p.primary_latency_ms) + " / " + fmtMs(p.shadow_latency_ms)),
              h("td", { class: "num" }, num(p.difference_count)))))), "Recent pairs"));
  }

  const statusText = (n) => (n ? String(n) : "—");

  // ------------------------------------------------------------ pair

  async function fetchPair(r) {
    const pair = await orNotFound(api("pairs/" + enc(r.id)));
    return { id: r.id, pair };
  }

  // covering returns a test for "path equals one of paths or lies under
  // it": under is the path followed by "." or "[", and "$" covers every
  // JSON path.
  function covering(paths) {
    const set = new Set(paths);
    return (p) => {
      if (typeof p !== "string") return false;
      if (set.has(p)) return true;
      if (set.has("$") && p.startsWith("$")) return true;
      for (let i = 1; i < p.length; i++) {
        const c = p[i];
        if ((c === "." || c === "[") && set.has(p.slice(0, i))) return true;
      }
      return false;
    };
  }

  // jumpTarget is the index of the line a difference at path shows on: the
  // first line with that path, else the first line under it; -1 if none.
  function jumpTarget(paths, path) {
    const i = paths.indexOf(path);
    if (i >= 0) return i;
    const under = covering([path]);
    return paths.findIndex((p) => under(p));
  }

  // jumpTo marks the line of a difference in both bodies and scrolls each
  // body to it. The mark is kept in state so that a refresh redraws it.
  function jumpTo(path) {
    state.jump = { gen: state.gen, path };
    for (const id of ["pair-primary", "pair-shadow"]) {
      const pre = document.querySelector("#" + id + " pre.body");
      if (!pre) continue;
      const lines = Array.from(pre.querySelectorAll("span.line"));
      const i = jumpTarget(lines.map((l) => l.getAttribute("data-path")), path);
      for (const l of pre.querySelectorAll("span.line.current")) l.classList.remove("current");
      if (i < 0) continue;
      const target = lines[i];
      target.classList.add("current");
      pre.scrollTop = Math.max(0, target.offsetTop - pre.clientHeight / 3);
    }
    const sides = document.querySelector(".sides");
    if (sides) {
      const r = sides.getBoundingClientRect();
      if (r.top < 0 || r.top > window.innerHeight * 0.6) sides.scrollIntoView({ block: "start", behavior: "smooth" });
    }
  }

  function renderPair(d) {
    const p = d.pair;
    if (!p) {
      return {
        view: "pair",
        title: "Pair " + d.id,
        nodes: [
          crumbs(h("a", { href: "#/" }, "Overview"), h("span", { "aria-current": "page" }, "Pair")),
          h("div", { class: "page-head" }, h("h1", null, "Pair " + d.id)),
          h("p", { class: "empty gone" }, "This pair is no longer kept: shadowlab keeps only recent pairs. The route's report still counts it."),
        ],
      };
    }
    const diffs = arr(p.differences);
    const real = diffs.filter((x) => !x.noise).map((x) => x.path);
    const noisy = diffs.filter((x) => x.noise).map((x) => x.path);
    const isDiff = covering(real);
    const isNoise = covering(noisy);
    const headerDiff = new Set(real.filter((x) => x.startsWith("header:")).map((x) => x.slice(7).toLowerCase()));
    const headerNoise = new Set(noisy.filter((x) => x.startsWith("header:")).map((x) => x.slice(7).toLowerCase()));
    const statusDiff = real.includes("status") || real.includes("grpc-status");
    const shown = diffs.length;
    const total = typeof p.difference_count === "number" ? p.difference_count : shown;
    const missingEvidence = !p.primary || !p.shadow || p.evidence === false;

    return {
      view: "pair",
      title: "Pair " + p.id,
      nodes: [
        crumbs(h("a", { href: "#/" }, "Overview"), h("a", { href: hrefRoute(p.route) }, p.route), h("span", { "aria-current": "page" }, "Pair " + p.id)),
        h("div", { class: "page-head" },
          h("h1", null, "Pair " + p.id),
          h("p", { class: "lede request" }, mono((p.method || "") + " " + (p.path || ""), "req-line"))),
        h("dl", { class: "stats meta" },
          statLine("Route", h("a", { href: hrefRoute(p.route) }, p.route)),
          statLine("Request id", mono(p.request_id)),
          statLine("Outcome", outcomeBadge(p.outcome)),
          p.reason ? statLine("Reason", mono(p.reason)) : null,
          statLine("At", timeEl(p.at)),
          statLine("Status", statusText(p.primary_status) + " → " + statusText(p.shadow_status), "primary → shadow", p.primary_status !== p.shadow_status ? "bad" : ""),
          statLine("Latency", fmtMs(p.primary_latency_ms) + " → " + fmtMs(p.shadow_latency_ms), "primary → shadow upstream latency"),
          statLine("Differences", String(total), shown < total ? "The first " + shown + " are listed" : null)),
        missingEvidence && p.evidence_note ? h("p", { class: "note" }, p.evidence_note) : null,
        missingEvidence && !p.evidence_note ? h("p", { class: "note" }, "The responses of this pair were not kept.") : null,
        section("Differences", "pair-diffs",
          diffs.length === 0 ? h("p", { class: "empty" }, "No differences.") : null,
          shown < total ? h("p", { class: "muted section-note" }, "Showing the first " + shown + " of " + total + ".") : null,
          h("ul", { id: "pair-differences", class: "pair-diffs" }, diffs.map((x, i) =>
            h("li", { key: i + " " + x.path, "data-path": x.path, "data-kind": x.kind, class: x.noise ? "noise" : "diff" },
              h("button", { type: "button", class: "jump", title: "Show " + x.path + " in both responses", on: { click: () => jumpTo(x.path) } },
                h("span", { class: "jump-head" },
                  mono(x.path, "path"), " ", badge(String(x.kind || "").replace("_", " "), "kind kind-" + x.kind),
                  x.noise ? [" ", badge("noise", "noise-badge", "A learned noise pattern: not counted as a difference")] : null),
                h("span", { class: "excerpt" }, h("span", { class: "side-label" }, "primary"), h("code", { class: "mono" + (x.primary ? "" : " none") }, x.primary || "(none)")),
                h("span", { class: "excerpt" }, h("span", { class: "side-label" }, "shadow"), h("code", { class: "mono" + (x.shadow ? "" : " none") }, x.shadow || "(none)"))))))),
        h("div", { class: "sides" },
          exhibit("pair-primary", "Primary", p.primary, p.primary_status, { isDiff, isNoise, headerDiff, headerNoise, statusDiff }),
          exhibit("pair-shadow", "Shadow", p.shadow, p.shadow_status, { isDiff, isNoise, headerDiff, headerNoise, statusDiff })),
      ],
    };
  }

  function exhibit(id, title, ex, status, m) {
    if (!ex) {
      return h("section", { id, class: "side card", "aria-labelledby": id + "-h" },
        h("h2", { id: id + "-h" }, title),
        h("p", { class: "status" + (m.statusDiff ? " diff" : "") }, status ? "HTTP " + status : "no response"),
        h("p", { class: "muted" }, "Not kept."),
        h("table", { class: "headers grid compact" }, h("tbody", null)),
        h("pre", { class: "body empty-body" }));
    }
    const lines = arr(ex.lines);
    const headers = arr(ex.headers);
    const jump = state.jump && state.jump.gen === state.gen ? jumpTarget(lines.map((l) => l.path), state.jump.path) : -1;
    return h("section", { id, class: "side card", "aria-labelledby": id + "-h" },
      h("h2", { id: id + "-h" }, title),
      h("p", { class: "status" + (m.statusDiff ? " diff" : ""), title: m.statusDiff ? "The statuses differ" : null }, "HTTP " + (ex.status || status || "—")),
      h("p", { class: "body-meta muted" }, (ex.body_kind || "?") + " body, " + fmtBytes(ex.body_bytes) + (ex.truncated ? ", truncated" : "")),
      h("h3", null, "Headers"),
      h("div", { class: "table-wrap" }, h("table", { class: "headers grid compact" },
        h("tbody", null, headers.length === 0 ? h("tr", null, h("td", { class: "muted", colspan: "2" }, "none compared")) : headers.map((hd, i) => {
          const n = String(hd.name || "").toLowerCase();
          const cls = m.headerDiff.has(n) ? "diff" : m.headerNoise.has(n) ? "noise" : null;
          return h("tr", { key: i + " " + n, class: cls },
            h("th", { scope: "row" }, mono(hd.name)),
            h("td", { class: hd.value === "[redacted]" ? "redacted" : null }, mono(hd.value)));
        })))),
      h("h3", null, "Body"),
      h("pre", { class: "body", tabindex: "0", "aria-label": title + " body" }, lines.length === 0 ? h("span", { class: "muted" }, ex.body_kind === "binary" ? "(binary body)" : "(empty body)") : lines.map((l, i) => {
        const cls = ["line"];
        if (i === jump) cls.push("current");
        if (m.isDiff(l.path)) cls.push("diff");
        else if (m.isNoise(l.path)) cls.push("noise");
        if (l.redacted) cls.push("redacted");
        return h("span", {
          class: cls.join(" "), "data-path": l.path, style: { "--depth": Math.min(l.depth || 0, 40) },
          title: l.redacted ? "Value redacted" : null,
        }, l.text, "\n");
      })),
      ex.truncated ? h("p", { class: "note truncated" }, "Truncated: the body is longer than what shadowlab keeps; only its start is shown.") : null);
  }

  // ------------------------------------------------------------ admission

  async function fetchAdmission() {
    const [rows, report] = await Promise.all([
      api("admission"),
      state.bounds ? null : optional(api("report")),
    ]);
    if (report && Array.isArray(report.delay_bucket_bounds_ms)) state.bounds = report.delay_bucket_bounds_ms;
    return { rows: arr(rows) };
  }

  function renderAdmission(d) {
    const rows = d.rows;
    // One time axis for every row's arrivals, so bursts line up: from the
    // earliest second any row saw to the latest, at least 30 s.
    const ats = rows.flatMap((a) => arr(a.arrivals).map((x) => x.at)).filter((t) => typeof t === "number");
    const axis = ats.length ? { t0: Math.min(...ats), t1: Math.max(...ats) } : null;
    if (axis && axis.t1 - axis.t0 < 29) axis.t0 = axis.t1 - 29;
    return {
      view: "admission",
      title: "Admission",
      nodes: [
        h("div", { class: "page-head" },
          h("h1", null, "Admission"),
          h("p", { class: "lede" }, "What jittered admission did with scheduled bursts, per scope (local: each Envoy's plugin; global: shared by many Envoys), route and key. Delayed requests were held and released with jitter; waits are theirs.")),
        rows.length === 0 ? h("p", { class: "empty" }, "No admission decisions reported yet.") : null,
        tableWrap(h("table", { id: "admission", class: "grid admission collapse" },
          h("thead", null, h("tr", null,
            h("th", { scope: "col" }, "Scope"), h("th", { scope: "col" }, "Route"), h("th", { scope: "col" }, "Key"),
            h("th", { scope: "col", class: "num" }, "Admitted"), h("th", { scope: "col", class: "num" }, "Delayed"),
            h("th", { scope: "col", class: "num" }, "Rejected"), h("th", { scope: "col" }, "Other"),
            h("th", { scope: "col", title: "Waits of the released requests, by delay bucket" }, "Waits"),
            h("th", { scope: "col", title: "Requests decided and held requests released per second, over the last 5 minutes that had any" }, "Decided and released per second"))),
          h("tbody", null, rows.map((a) => admissionRow(a, axis)))), "Admission"),
        rows.some((a) => a.scope === "local")
          ? h("p", { class: "muted section-note arr-note" }, "Per second, as reported: a local scope's counts arrive with each Envoy plugin's report, about once a second, so each second shows what the reports received in it carried.")
          : null,
      ],
    };
  }

  function admissionRow(a, axis) {
    const other = [
      ["observed_delay", "observed delay", "would have been delayed (observe mode)"],
      ["observed_reject", "observed reject", "would have been rejected (observe mode)"],
      ["abandoned", "abandoned", "the client went away while held"],
      ["fail_open", "fail open", "admitted because admission could not decide"],
    ].filter(([k]) => (a[k] || 0) > 0);
    return h("tr", {
      key: a.scope + "\u0000" + a.route + "\u0000" + a.key + "\u0000" + (a.replica || ""),
      "data-scope": a.scope, "data-route": a.route, "data-key": a.key,
    },
    h("td", { "data-label": "Scope" }, badge(a.scope || "?", "scope")),
    h("td", { "data-label": "Route" }, h("a", { href: hrefRoute(a.route) }, a.route), a.replica ? h("span", { class: "sub" }, "replica " + a.replica) : null),
    h("td", { "data-label": "Key" }, a.key ? mono(a.key) : h("span", { class: "muted", title: "A route-wide budget" }, "(route)")),
    h("td", { "data-field": "admitted", "data-label": "Admitted", class: "num" }, num(a.admitted)),
    h("td", { "data-field": "delayed", "data-label": "Delayed", class: "num" }, num(a.delayed)),
    h("td", { "data-field": "rejected", "data-label": "Rejected", class: "num" + (a.rejected > 0 ? " bad-text" : "") }, num(a.rejected)),
    h("td", { "data-label": "Other" }, other.length ? h("ul", { class: "inline-list" }, other.map(([k, label, help]) => h("li", { title: help }, h("span", { class: "n" }, num(a[k])), " " + label)))
      : h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Waits", class: "wide" }, waits(a)),
    h("td", { "data-label": "Decided and released per second", class: "wide" }, arrivals(a, axis)));
  }

  function waits(a) {
    const b = arr(a.delay_buckets);
    const bounds = arr(state.bounds);
    let lo = b.findIndex((n) => n > 0);
    let hi = b.length - 1 - [...b].reverse().findIndex((n) => n > 0);
    if (lo < 0) return h("div", { class: "waits none" }, h("span", { class: "muted" }, "no waits"));
    hi = Math.max(hi, Math.min(b.length - 1, lo + 7));
    lo = Math.max(0, Math.min(lo, hi - 7));
    const label = (i) => (i < bounds.length ? "≤ " + fmtBound(bounds[i]) : bounds.length ? "> " + fmtBound(bounds[bounds.length - 1]) : "bucket " + i);
    const shown = b.slice(lo, hi + 1);
    const max = Math.max(1, ...shown);
    const bw = 8;
    const w = shown.length * bw;
    const hgt = 32;
    return h("div", { class: "waits" },
      s("svg", { class: "hist", width: 160, height: hgt, viewBox: "0 0 " + w + " " + hgt, preserveAspectRatio: "none", role: "img", focusable: "false",
        "aria-label": "Waits of released requests from " + label(lo) + " to " + label(hi) + ", one bar per delay bucket" },
      s("line", { class: "axis", x1: 0, x2: w, y1: hgt - 0.5, y2: hgt - 0.5 }),
      shown.map((n, i) => {
        const bh = n > 0 ? Math.max(1.5, (n / max) * (hgt - 2)) : 0;
        return s("rect", { class: "bar", x: i * bw + 1, y: (hgt - bh).toFixed(2), width: bw - 2, height: bh.toFixed(2), "data-bucket": lo + i, "data-n": n },
          s("title", null, label(lo + i) + ": " + n));
      })),
      h("div", { class: "axis-labels" }, h("span", null, label(lo)), h("span", null, label(hi))),
      h("div", { class: "wait-stats", title: "Estimated from the delay histogram by the API; max is the upper bound of the highest bucket" },
        h("span", null, "p50 " + fmtMs(a.delay_p50_ms)), " · ", h("span", null, "p99 " + fmtMs(a.delay_p99_ms)), " · ",
        h("span", null, "max " + (a.delay_max_ms < 0 ? "> 1 h" : "≤ " + fmtMs(a.delay_max_ms)))));
  }

  // arrivals draws, per second of the shared axis, the requests decided
  // (bars, rect[data-n]) and the held requests released (lighter bars,
  // rect[data-released]) on one scale: a burst shows as one tall decided
  // bar followed by a low, wide band of releases. Where both fall in one
  // second the shorter bar is drawn in front.
  function arrivals(a, axis) {
    const pts = arr(a.arrivals).filter((x) => typeof x.at === "number").slice().sort((x, y) => x.at - y.at);
    if (pts.length === 0 || !axis) {
      return h("div", { class: "arrivals-wrap" }, s("svg", { class: "arrivals", width: 0, height: 0, "aria-hidden": "true" }),
        h("span", { class: "muted" }, "none in the last 5 min"));
    }
    const t0 = axis.t0;
    const t1 = axis.t1;
    const span = t1 - t0 + 1;
    const nOf = (x) => x.n || 0;
    const relOf = (x) => x.released || 0;
    const max = Math.max(1, ...pts.map((x) => Math.max(nOf(x), relOf(x))));
    const hgt = 56;
    const gap = 280 / span >= 5 ? 0.12 : 0; // a hairline between seconds when they are wide enough
    const peak = (f) => pts.reduce((m, x) => (f(x) > f(m) ? x : m), pts[0]);
    const peakN = peak(nOf);
    const peakR = peak(relOf);
    const local = a.scope === "local";
    const asReported = local ? ", as reported" : "";
    const bars = [];
    for (const x of pts) {
      const n = nOf(x);
      const r = relOf(x);
      const hn = n > 0 ? Math.max(1, (n / max) * (hgt - 2)) : 0;
      const hr = r > 0 ? Math.max(1, (r / max) * (hgt - 2)) : 0;
      const tip = fmtClock(x.at) + ": " + n + " decided, " + r + " released" + (local ? " (as reported by the plugins in that second)" : "");
      const dec = s("rect", {
        key: "n" + x.at, class: "bar", x: (x.at - t0 + gap / 2).toFixed(2), y: (hgt - hn).toFixed(2), width: 1 - gap, height: hn.toFixed(2),
        "data-at": x.at, "data-n": n,
      }, s("title", null, tip));
      const rel = r > 0 ? s("rect", {
        key: "r" + x.at, class: "rel", x: (x.at - t0 + gap / 2).toFixed(2), y: (hgt - hr).toFixed(2), width: 1 - gap, height: hr.toFixed(2),
        "data-at": x.at, "data-released": r,
      }, s("title", null, tip)) : null;
      if (hr > hn) bars.push(rel, dec);
      else bars.push(dec, rel);
    }
    const label = "Per second from " + fmtClock(t0) + " to " + fmtClock(t1) + asReported + ": requests decided, peak " + nOf(peakN) + " at " + fmtClock(peakN.at) +
      (relOf(peakR) > 0 ? "; held requests released, peak " + relOf(peakR) + " at " + fmtClock(peakR.at) : "; none released");
    return h("div", { class: "arrivals-wrap" },
      s("svg", { class: "arrivals", width: 280, height: hgt, viewBox: "0 0 " + span + " " + hgt, preserveAspectRatio: "none", role: "img", focusable: "false", "aria-label": label },
        s("line", { class: "axis", x1: 0, x2: span, y1: hgt - 0.5, y2: hgt - 0.5 }),
        bars),
      h("div", { class: "axis-labels" }, h("span", null, fmtClock(t0)), h("span", { class: "axis-span" }, span + " s" + asReported), h("span", null, fmtClock(t1))),
      h("ul", { class: "arr-legend" },
        h("li", { class: "key k-decided", title: "Requests admission decided in that second: admitted, delayed, rejected or passed failing open" },
          "decided per second", h("span", { class: "peak" }, "peak " + nOf(peakN) + "/s at " + fmtClock(peakN.at))),
        h("li", { class: "key k-released", title: "Held requests let through in that second" },
          "released per second", h("span", { class: "peak" }, relOf(peakR) > 0 ? "peak " + relOf(peakR) + "/s at " + fmtClock(peakR.at) : "none"))));
  }

  // ------------------------------------------------------------ unknown

  const VIEWS = {
    overview: { fetch: fetchOverview, render: renderOverview },
    route: { fetch: fetchRoute, render: renderRoute },
    pair: { fetch: fetchPair, render: renderPair },
    admission: { fetch: fetchAdmission, render: renderAdmission },
    unknown: {
      fetch: async () => null,
      render: () => ({
        view: "unknown",
        title: "Not found",
        nodes: [h("div", { class: "page-head" }, h("h1", null, "No such view")),
          h("p", null, "The page has an overview, a page per route and per pair, and admission. ", h("a", { href: "#/" }, "Go to the overview"), ".")],
      }),
    },
  };

  // ------------------------------------------------------------ start

  function start() {
    els.view = $("view");
    els.updated = $("updated");
    els.error = $("error");
    els.tokenForm = $("token-form");
    els.token = $("token");
    els.tokenError = $("token-error");
    els.signOut = $("sign-out");

    els.tokenForm.addEventListener("submit", signIn);
    els.signOut.addEventListener("click", signOut);
    els.signOut.hidden = getToken() === "";
    $("skip").addEventListener("click", (ev) => {
      ev.preventDefault();
      const target = state.authWait ? els.token : els.view;
      target.focus();
      target.scrollIntoView({ block: "start" });
    });
    window.addEventListener("hashchange", () => {
      state.focusNext = true;
      window.scrollTo(0, 0);
      if (!state.authWait) navigate();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") load();
      else clearTimeout(state.timer);
    });
    navigate();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
