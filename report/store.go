package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
	_ "modernc.org/sqlite" // registers driver "sqlite" (pure Go)
)

// The store is one SQLite file in WAL mode. It holds only aggregates, each
// bounded by a Config cap, plus the most recent non-match pairs:
//
//	routes     (route) → folded_pairs
//	outcomes   (route, outcome, reason) → count        non-compared pairs
//	signatures (route, signature) → count              compared pairs by set of differing patterns
//	folded     (route, pattern, kind) → count          pairs past MaxSignatures
//	samples    (route, pattern, kind, seq) → request id, path, excerpts, at
//	latency    (route, side) → count, max_ns, buckets  sparse log-linear histogram
//	noise      (route, pattern) → varied, compared
//	pairs      (id) → one recent non-match pair; oldest deleted past MaxRecentPairs
//	admission  (scope, route, key) → counts, layout   wire.Counts as JSON (version 2); layout
//	                                                   of its delay buckets (version 4): 1 the
//	                                                   coarse 17, 2 the fine wire.DelayBucketsMs
//	marks      (route, pattern) → count                echoed marks (version 3)
//	exhibits   (pair_id) → route, pinned, body         a recent pair's responses, redacted
//	                                                   (exhibitDoc as JSON; version 5)
//
// Aggregate rows hold absolute values, written with upserts, so a flush is
// idempotent. PRAGMA application_id marks the file as shadowlab's and PRAGMA
// user_version is the schema version.

// ErrStore is wrapped by every error New returns about the store file:
// unreadable, corrupt, not shadowlab's, or of a newer schema.
var ErrStore = errors.New("report store")

const (
	storeApplicationID = 0x53484c42 // "SHLB"
	storeVersion       = 5
)

// migrations[i] brings a store from user_version i to i+1.
var migrations = []string{
	`CREATE TABLE routes (
		route        TEXT PRIMARY KEY,
		folded_pairs INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	CREATE TABLE outcomes (
		route   TEXT NOT NULL,
		outcome TEXT NOT NULL,
		reason  TEXT NOT NULL,
		count   INTEGER NOT NULL,
		PRIMARY KEY (route, outcome, reason)
	) WITHOUT ROWID;
	CREATE TABLE signatures (
		route     TEXT NOT NULL,
		signature TEXT NOT NULL,
		count     INTEGER NOT NULL,
		PRIMARY KEY (route, signature)
	) WITHOUT ROWID;
	CREATE TABLE folded (
		route   TEXT NOT NULL,
		pattern TEXT NOT NULL,
		kind    TEXT NOT NULL,
		count   INTEGER NOT NULL,
		PRIMARY KEY (route, pattern, kind)
	) WITHOUT ROWID;
	CREATE TABLE samples (
		route          TEXT NOT NULL,
		pattern        TEXT NOT NULL,
		kind           TEXT NOT NULL,
		seq            INTEGER NOT NULL,
		request_id     TEXT NOT NULL,
		path           TEXT NOT NULL,
		primary_value  TEXT NOT NULL,
		shadow_value   TEXT NOT NULL,
		at_ns          INTEGER NOT NULL,
		PRIMARY KEY (route, pattern, kind, seq)
	) WITHOUT ROWID;
	CREATE TABLE latency (
		route   TEXT NOT NULL,
		side    TEXT NOT NULL,
		count   INTEGER NOT NULL,
		max_ns  INTEGER NOT NULL,
		buckets BLOB NOT NULL,
		PRIMARY KEY (route, side)
	) WITHOUT ROWID;
	CREATE TABLE noise (
		route    TEXT NOT NULL,
		pattern  TEXT NOT NULL,
		varied   INTEGER NOT NULL,
		compared INTEGER NOT NULL,
		kinds    TEXT NOT NULL, -- comma-separated compare.Kind values
		PRIMARY KEY (route, pattern)
	) WITHOUT ROWID;
	CREATE TABLE pairs (
		id                 INTEGER PRIMARY KEY,
		route              TEXT NOT NULL,
		request_id         TEXT NOT NULL,
		method             TEXT NOT NULL,
		path               TEXT NOT NULL,
		outcome            TEXT NOT NULL,
		reason             TEXT NOT NULL,
		primary_status     INTEGER NOT NULL,
		shadow_status      INTEGER NOT NULL,
		primary_latency_ns INTEGER NOT NULL,
		shadow_latency_ns  INTEGER NOT NULL,
		at_ns              INTEGER NOT NULL,
		signature          TEXT NOT NULL,
		signature_complete INTEGER NOT NULL,
		differences        TEXT NOT NULL,
		difference_count   INTEGER NOT NULL
	);
	CREATE INDEX pairs_by_route ON pairs (route, id);`,
	`CREATE TABLE admission (
		scope  TEXT NOT NULL,
		route  TEXT NOT NULL,
		key    TEXT NOT NULL,
		counts TEXT NOT NULL,
		PRIMARY KEY (scope, route, key)
	);`,
	`CREATE TABLE marks (
		route   TEXT NOT NULL,
		pattern TEXT NOT NULL,
		count   INTEGER NOT NULL,
		PRIMARY KEY (route, pattern)
	) WITHOUT ROWID;`,
	// Rows written before hold the coarse layout; loadAdmission converts.
	`ALTER TABLE admission ADD COLUMN layout INTEGER NOT NULL DEFAULT 1;`,
	`CREATE TABLE exhibits (
		pair_id INTEGER PRIMARY KEY,
		route   TEXT NOT NULL,
		pinned  INTEGER NOT NULL,
		body    TEXT NOT NULL
	);
	CREATE INDEX exhibits_pinned ON exhibits (pinned, pair_id);
	CREATE INDEX pairs_by_request ON pairs (route, request_id);`,
}

// Layouts of the admission counts' delay buckets (column layout).
const (
	layoutCoarse = 1 // wire.CoarseDelayBucketsMs and an overflow: 17 buckets
	layoutFine   = 2 // wire.DelayBucketsMs and an overflow
)

// store is the SQLite edge. Only the writer goroutine writes (flush, reset);
// HTTP handlers read pairs concurrently.
type store struct {
	db   *sql.DB
	name string // file name for errors, or ":memory:"
}

func storeErr(name string, err error) error {
	return fmt.Errorf("%w %s: %w", ErrStore, name, err)
}

// openStore opens or creates the store; path "" keeps it in memory.
func openStore(ctx context.Context, path string) (*store, error) {
	pragmas := url.Values{"_pragma": {"busy_timeout(5000)", "synchronous(NORMAL)"}}
	var dsn, name string
	if path == "" {
		name = ":memory:"
		dsn = "file::memory:?" + pragmas.Encode()
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, storeErr(path, err)
		}
		name = abs
		if err := privateStoreFile(abs); err != nil {
			return nil, storeErr(name, err)
		}
		pragmas["_pragma"] = append(pragmas["_pragma"], "journal_mode(WAL)")
		dsn = (&url.URL{Scheme: "file", Path: abs, RawQuery: pragmas.Encode()}).String()
	}
	return openDSN(ctx, dsn, name, path != "")
}

// openDSN opens the store at dsn (named name in errors); file: a file in
// WAL mode, else one in-memory connection or a read-only file.
func openDSN(ctx context.Context, dsn, name string, file bool) (*store, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, storeErr(name, err)
	}
	if !file {
		// Every connection to :memory: is a database of its own: keep one.
		db.SetMaxOpenConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		db.SetMaxOpenConns(4)
	}
	s := &store{db: db, name: name}
	if err := s.init(ctx, file); err != nil {
		_ = db.Close()
		return nil, storeErr(name, err)
	}
	return s, nil
}

func (s *store) init(ctx context.Context, file bool) error {
	var check string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil {
		return fmt.Errorf("not a readable SQLite database: %w", err)
	}
	if check != "ok" {
		return fmt.Errorf("database is corrupt: %s", check)
	}
	if file {
		var mode string
		if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("cannot use WAL journal mode (got %q)", mode)
		}
	}
	var appID, version, tables int
	if err := s.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return err
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return err
	}
	switch {
	case appID == 0 && version == 0 && tables == 0: // new
	case appID != storeApplicationID:
		return fmt.Errorf("not a shadowlab report store (application_id %#x)", appID)
	case version > storeVersion:
		return fmt.Errorf("schema version %d is newer than this shadowlab supports (%d): upgrade shadowlab or use another file", version, storeVersion)
	}
	for v := version; v < storeVersion; v++ {
		if err := s.migrate(ctx, v); err != nil {
			return fmt.Errorf("migrating schema from version %d: %w", v, err)
		}
	}
	return nil
}

func (s *store) migrate(ctx context.Context, from int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, migrations[from]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", storeApplicationID, from+1)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *store) close() error { return s.db.Close() }

// load reads every route's aggregates.
func (s *store) load(ctx context.Context, lim limits) (map[string]*routeState, error) {
	routes := map[string]*routeState{}
	get := func(name string) *routeState {
		rs := routes[name]
		if rs == nil {
			rs = newRouteState(name)
			routes[name] = rs
		}
		return rs
	}
	type scanner func(rows *sql.Rows) error
	query := func(q string, scan scanner) error {
		rows, err := s.db.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	var route string
	err := errors.Join(
		query("SELECT route, folded_pairs FROM routes", func(rows *sql.Rows) error {
			var n int
			if err := rows.Scan(&route, &n); err != nil {
				return err
			}
			get(route).foldedPairs = n
			return nil
		}),
		query("SELECT route, outcome, reason, count FROM outcomes", func(rows *sql.Rows) error {
			var k outcomeKey
			var n int
			if err := rows.Scan(&route, &k.outcome, &k.reason, &n); err != nil {
				return err
			}
			if !knownOutcome(k.outcome) || compared(k.outcome) {
				return fmt.Errorf("outcomes: route %q: unexpected outcome %q", route, k.outcome)
			}
			get(route).outcomes[k] = n
			return nil
		}),
		query("SELECT route, signature, count FROM signatures", func(rows *sql.Rows) error {
			var sig string
			var n int
			if err := rows.Scan(&route, &sig, &n); err != nil {
				return err
			}
			keys, err := decodeSignature(sig)
			if err != nil {
				return fmt.Errorf("signatures: route %q: %w %q", route, err, sig)
			}
			rs := get(route)
			rs.sigs[sig] = &signature{keys: keys, count: n}
			for _, k := range keys {
				if _, ok := rs.patterns[k]; !ok {
					rs.patterns[k] = nil
				}
			}
			return nil
		}),
		query("SELECT route, pattern, kind, count FROM folded", func(rows *sql.Rows) error {
			var k patKey
			var n int
			if err := rows.Scan(&route, &k.pattern, &k.kind, &n); err != nil {
				return err
			}
			rs := get(route)
			rs.folded[k] = n
			if _, ok := rs.patterns[k]; !ok {
				rs.patterns[k] = nil
			}
			return nil
		}),
		query("SELECT route, pattern, kind, request_id, path, primary_value, shadow_value, at_ns FROM samples ORDER BY route, pattern, kind, seq", func(rows *sql.Rows) error {
			var k patKey
			var smp Sample
			var at int64
			if err := rows.Scan(&route, &k.pattern, &k.kind, &smp.RequestID, &smp.Path, &smp.Primary, &smp.Shadow, &at); err != nil {
				return err
			}
			smp.At = time.Unix(0, at).UTC()
			rs := get(route)
			if len(rs.patterns[k]) < lim.samples {
				rs.patterns[k] = append(rs.patterns[k], smp)
			}
			return nil
		}),
		query("SELECT route, side, count, max_ns, buckets FROM latency", func(rows *sql.Rows) error {
			var side string
			var count, maxNS int64
			var buckets []byte
			if err := rows.Scan(&route, &side, &count, &maxNS, &buckets); err != nil {
				return err
			}
			sd, ok := wire.ParseSide(side)
			if !ok || count < 0 {
				return fmt.Errorf("latency: route %q: bad side %q or count %d", route, side, count)
			}
			i := sd.Index()
			h, err := decodeHistogram(uint64(count), maxNS, buckets)
			if err != nil {
				return fmt.Errorf("latency: route %q side %s: %w", route, side, err)
			}
			get(route).latency[i] = h
			return nil
		}),
		query("SELECT route, pattern, count FROM marks", func(rows *sql.Rows) error {
			var pattern string
			var n int
			if err := rows.Scan(&route, &pattern, &n); err != nil {
				return err
			}
			get(route).marks[pattern] = n
			return nil
		}),
		query("SELECT route, pattern, varied, compared, kinds FROM noise", func(rows *sql.Rows) error {
			var n compare.NoisePath
			var kinds string
			if err := rows.Scan(&route, &n.Pattern, &n.Varied, &n.Compared, &kinds); err != nil {
				return err
			}
			for k := range strings.SplitSeq(kinds, ",") {
				if k != "" {
					n.Kinds = append(n.Kinds, compare.Kind(k))
				}
			}
			get(route).noise[n.Pattern] = n
			return nil
		}),
	)
	if err != nil {
		return nil, storeErr(s.name, fmt.Errorf("loading: %w", err))
	}
	return routes, nil
}

// pairRow is one recent non-match pair waiting for the store.
type pairRow struct {
	rs        *routeState
	pair      Pair // Differences cleared: see diffs
	at        time.Time
	signature string
	complete  bool // signature has every pattern of the pair
	diffs     []storedDifference
	diffCount int
	exhibit   *exhibitRow // nil: responses not kept
}

// keep bounds what the store keeps: recent pairs, the responses of the
// most recent of them, and the responses of samples beyond those.
type keep struct{ pairs, exhibits, pinned int }

type storedDifference struct {
	Path    string       `json:"path"`
	Pattern string       `json:"pattern"`
	Kind    compare.Kind `json:"kind"`
}

// write persists one flush in one transaction and trims the recent pairs.
func (s *store) write(ctx context.Context, deltas []*routeDelta, pairs []pairRow, adm []admissionRow, lim keep) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmts := map[string]*sql.Stmt{}
	result := func(q string, args ...any) (sql.Result, error) {
		st := stmts[q]
		if st == nil {
			if st, err = tx.PrepareContext(ctx, q); err != nil {
				return nil, err
			}
			stmts[q] = st
		}
		return st.ExecContext(ctx, args...)
	}
	exec := func(q string, args ...any) error {
		_, err := result(q, args...)
		return err
	}
	for _, d := range deltas {
		if d.rs.dead.Load() {
			continue
		}
		route := d.rs.name
		if err := exec(`INSERT INTO routes (route, folded_pairs) VALUES (?, ?)
			ON CONFLICT (route) DO UPDATE SET folded_pairs = excluded.folded_pairs`, route, d.foldedPairs); err != nil {
			return err
		}
		for sig, n := range d.sigs {
			if err := exec(`INSERT INTO signatures (route, signature, count) VALUES (?, ?, ?)
				ON CONFLICT (route, signature) DO UPDATE SET count = excluded.count`, route, sig, n); err != nil {
				return err
			}
		}
		for k, n := range d.outcomes {
			if err := exec(`INSERT INTO outcomes (route, outcome, reason, count) VALUES (?, ?, ?, ?)
				ON CONFLICT (route, outcome, reason) DO UPDATE SET count = excluded.count`, route, string(k.outcome), k.reason, n); err != nil {
				return err
			}
		}
		if d.folded != nil {
			if err := exec(`DELETE FROM folded WHERE route = ?`, route); err != nil {
				return err
			}
			for k, n := range d.folded {
				if err := exec(`INSERT INTO folded (route, pattern, kind, count) VALUES (?, ?, ?, ?)`, route, k.pattern, string(k.kind), n); err != nil {
					return err
				}
			}
		}
		for i, h := range d.latency {
			if h == nil {
				continue
			}
			sides := [...]wire.Side{wire.SidePrimary, wire.SideShadow}
			if err := exec(`INSERT OR REPLACE INTO latency (route, side, count, max_ns, buckets) VALUES (?, ?, ?, ?, ?)`,
				route, sides[i].String(), int64(h.count), int64(h.max), h.encodeBuckets()); err != nil {
				return err
			}
		}
		for _, sr := range d.samples {
			if err := exec(`INSERT OR IGNORE INTO samples (route, pattern, kind, seq, request_id, path, primary_value, shadow_value, at_ns)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, route, sr.key.pattern, string(sr.key.kind), sr.seq,
				sr.sample.RequestID, sr.sample.Path, sr.sample.Primary, sr.sample.Shadow, sr.sample.At.UnixNano()); err != nil {
				return err
			}
		}
		if d.marks != nil {
			if err := exec(`DELETE FROM marks WHERE route = ?`, route); err != nil {
				return err
			}
			for p, n := range d.marks {
				if err := exec(`INSERT INTO marks (route, pattern, count) VALUES (?, ?, ?)`, route, p, n); err != nil {
					return err
				}
			}
		}
		if d.noiseDirty {
			if err := exec(`DELETE FROM noise WHERE route = ?`, route); err != nil {
				return err
			}
			for _, n := range d.noise {
				kinds := make([]string, len(n.Kinds))
				for i, k := range n.Kinds {
					kinds[i] = string(k)
				}
				if err := exec(`INSERT INTO noise (route, pattern, varied, compared, kinds) VALUES (?, ?, ?, ?, ?)`,
					route, n.Pattern, n.Varied, n.Compared, strings.Join(kinds, ",")); err != nil {
					return err
				}
			}
		}
	}
	inserted, pinned := false, -1
	for _, pr := range pairs {
		if pr.rs.dead.Load() {
			continue
		}
		diffs, err := json.Marshal(pr.diffs)
		if err != nil {
			return err
		}
		p := pr.pair
		res, err := result(`INSERT INTO pairs (route, request_id, method, path, outcome, reason, primary_status, shadow_status,
			primary_latency_ns, shadow_latency_ns, at_ns, signature, signature_complete, differences, difference_count)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			pr.rs.name, p.RequestID, p.Method, p.Path, string(p.Outcome), p.Reason, p.PrimaryStatus, p.ShadowStatus,
			int64(p.PrimaryLatency), int64(p.ShadowLatency), pr.at.UnixNano(), pr.signature, pr.complete, string(diffs), pr.diffCount)
		if err != nil {
			return err
		}
		inserted = true
		if pr.exhibit == nil {
			continue
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		body, err := json.Marshal(pr.exhibit.doc)
		if err != nil {
			return err
		}
		pin := pr.exhibit.pinned
		if pin && pinned < 0 {
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM exhibits WHERE pinned = 1`).Scan(&pinned); err != nil {
				return err
			}
		}
		if pin = pin && pinned < lim.pinned; pin {
			pinned++
		}
		if err := exec(`INSERT INTO exhibits (pair_id, route, pinned, body) VALUES (?, ?, ?, ?)`, id, pr.rs.name, pin, string(body)); err != nil {
			return err
		}
	}
	if inserted {
		if err := exec(`DELETE FROM pairs WHERE id <= (SELECT max(id) FROM pairs) - ?`, lim.pairs); err != nil {
			return err
		}
		if err := exec(`DELETE FROM exhibits WHERE pair_id < (SELECT min(id) FROM pairs)
			OR (pinned = 0 AND pair_id < (SELECT min(pair_id) FROM (SELECT pair_id FROM exhibits WHERE pinned = 0 ORDER BY pair_id DESC LIMIT ?)))`, lim.exhibits); err != nil {
			return err
		}
	}
	for _, a := range adm {
		b, err := json.Marshal(a.c)
		if err != nil {
			return err
		}
		if err := exec(`INSERT INTO admission (scope, route, key, counts, layout) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (scope, route, key) DO UPDATE SET counts = excluded.counts, layout = excluded.layout`,
			a.k.scope, a.k.route, a.k.key, string(b), layoutFine); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// loadAdmission reads the admission counts.
func (s *store) loadAdmission(ctx context.Context) (map[admissionKey]wire.Counts, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT scope, route, key, counts, layout FROM admission")
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[admissionKey]wire.Counts{}
	for rows.Next() {
		var k admissionKey
		var counts string
		var layout int
		if err := rows.Scan(&k.scope, &k.route, &k.key, &counts, &layout); err != nil {
			return nil, err
		}
		c, err := decodeCounts(counts, layout)
		if err != nil {
			return nil, fmt.Errorf("admission counts of %s/%s/%q: %w", k.scope, k.route, k.key, err)
		}
		out[k] = c
	}
	return out, rows.Err()
}

// decodeCounts reads a row's counts in its layout, the coarse one moved
// into the fine buckets with the same bounds.
func decodeCounts(text string, layout int) (wire.Counts, error) {
	var c wire.Counts
	var row struct {
		wire.Counts
		Buckets []uint64 `json:"delay_buckets"`
	}
	if err := json.Unmarshal([]byte(text), &row); err != nil {
		return c, err
	}
	c = row.Counts
	c.DelayBuckets = [len(c.DelayBuckets)]uint64{}
	want := len(c.DelayBuckets)
	if layout == layoutCoarse {
		want = len(wire.CoarseDelayBucketsMs) + 1
	}
	switch {
	case layout != layoutCoarse && layout != layoutFine:
		return c, fmt.Errorf("unknown delay bucket layout %d (this shadowlab knows %d and %d)", layout, layoutCoarse, layoutFine)
	case len(row.Buckets) != want:
		return c, fmt.Errorf("%d delay buckets, want %d for layout %d", len(row.Buckets), want, layout)
	}
	for i, n := range row.Buckets {
		if layout == layoutCoarse {
			i = wire.FromCoarse(i)
		}
		c.DelayBuckets[i] = wire.SatAdd(c.DelayBuckets[i], n)
	}
	return c, nil
}

// reset deletes one route ("" = all) from every table.
func (s *store) reset(ctx context.Context, route string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, table := range []string{"routes", "outcomes", "signatures", "folded", "samples", "latency", "noise", "marks", "pairs", "exhibits"} {
		q, args := "DELETE FROM "+table, []any{}
		if route != "" {
			q, args = q+" WHERE route = ?", []any{route}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// storedPair is a pairs row before re-classification.
type storedPair struct {
	rec      PairRecord
	keys     []patKey
	complete bool
}

// pairFilter selects recent pairs; zero fields select everything.
type pairFilter struct {
	route, requestID string
	outcome          Outcome
	id               int64
}

// pairs reads recent pairs newest first, calling keep for each until it
// returns false.
func (s *store) pairs(ctx context.Context, f pairFilter, keep func(storedPair) bool) error {
	q := `SELECT id, route, request_id, method, path, outcome, reason, primary_status, shadow_status,
		primary_latency_ns, shadow_latency_ns, at_ns, signature, signature_complete, differences, difference_count,
		EXISTS (SELECT 1 FROM exhibits WHERE pair_id = id) FROM pairs`
	var where []string
	var args []any
	if f.route != "" {
		where, args = append(where, "route = ?"), append(args, f.route)
	}
	if f.requestID != "" {
		where, args = append(where, "request_id = ?"), append(args, f.requestID)
	}
	if f.id != 0 {
		where, args = append(where, "id = ?"), append(args, f.id)
	}
	if outcome := f.outcome; outcome != "" {
		if compared(outcome) { // re-classified after reading
			outcome = Diff
		}
		where, args = append(where, "outcome = ?"), append(args, string(outcome))
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var sp storedPair
		r := &sp.rec
		var pl, sl, at int64
		var sig, diffs string
		if err := rows.Scan(&r.ID, &r.Route, &r.RequestID, &r.Method, &r.Path, &r.Outcome, &r.Reason, &r.PrimaryStatus, &r.ShadowStatus,
			&pl, &sl, &at, &sig, &sp.complete, &diffs, &r.DifferenceCount, &r.Evidence); err != nil {
			return err
		}
		r.PrimaryLatencyMS, r.ShadowLatencyMS = durationMS(time.Duration(pl)), durationMS(time.Duration(sl))
		r.At = time.Unix(0, at).UTC()
		if sp.keys, err = decodeSignature(sig); err != nil {
			return fmt.Errorf("pair %d: %w", r.ID, err)
		}
		var sd []storedDifference
		if err := json.Unmarshal([]byte(diffs), &sd); err != nil {
			return fmt.Errorf("pair %d: %w", r.ID, err)
		}
		r.Differences = make([]PairDifference, len(sd))
		for i, d := range sd {
			r.Differences[i] = PairDifference{Path: d.Path, Pattern: d.Pattern, Kind: d.Kind}
		}
		if !keep(sp) {
			break
		}
	}
	return rows.Err()
}

func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func (s *store) ping(ctx context.Context) error { return s.db.PingContext(ctx) }
