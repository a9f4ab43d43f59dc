// Package budget keeps global admission budgets in Redis, so that several
// `shadowlab serve` replicas admit against one budget per route and key
// instead of one each.
//
// The algorithm is admission's, unchanged: a key's admission.State (173
// bytes) is a Redis string, and each decision or release is a
// compare-and-swap on it. The replica reads the State it last saw (from a
// small local cache, else it assumes the key is new), runs
// admission.Decide or admission.Release in Go, and sends the old and the
// new State to a Lua script that writes the new one only if Redis still
// holds the old one; otherwise the script answers with the State Redis
// holds and the replica decides again from it. An uncontended decision is
// one round trip; a replica that lost the race pays one more per loss.
// Running the one algorithm on a State the server swaps atomically keeps
// every property admission proves (at most Limit per Window at release,
// nothing lost) without a second implementation in Lua, whose numbers are
// doubles and could not hold nanosecond times.
//
// Keys: Prefix + route + "/" + a hash of the admission.Config + "/" + a
// hash of the budget key's value (a header value from a client: it is never
// stored as is). A change of limit, window, delay, mode or slack starts the
// route's keys afresh, as admission requires. Each key expires
// Config.IdleAfter after its last write, when its State is idle anyway.
//
// Replicas use their own clocks: they must agree within a small part of a
// slot (NTP does this well for budgets of up to thousands per second).
//
// Redis down, slow or refusing: Decide and Release return ErrUnavailable
// within Config.Timeout, and the caller lets the request through (fail
// open). After failuresToPause (3) failures in a row the Store takes Redis
// as down: decisions stop asking it, so no request waits for the timeout,
// and a background probe PINGs it every retryEvery (200 ms) — never a
// user's request — until it answers. One slow answer alone (a loaded
// machine at the start of a burst) fails only its own request open. When
// Redis answers again the budget resumes
// from what Redis holds (if it restarted empty, from fresh keys): requests
// passed during the outage were never counted, and nothing held is
// released at once.
package budget

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/admission"
)

// Defaults of Config.
const (
	DefaultTimeout = 250 * time.Millisecond
	DefaultPrefix  = "shadowlab:admission:"
	// maxAttempts bounds the compare-and-swaps of one decision (Timeout
	// bounds their time): each lost one means another replica decided
	// meanwhile. Losses are not independent: a replica starved of CPU
	// keeps arriving second while the others, whose cached value is fresh,
	// decide back to back — with 64, three replicas deciding 1 000 requests
	// at once on a busy machine lost a decision in about one run in three.
	// One attempt is a loopback round trip (~0.1 ms), so 1 024 still ends
	// well within Timeout on a healthy Redis; such a decision fails open.
	maxAttempts = 1024
	// maxCached bounds the States a Budget remembers per route: only a
	// guess at Redis's value, so the cache is simply emptied when full.
	maxCached = 10_000
	// stripes serialise one replica's decisions on one key (so they do
	// not race each other through Redis) without serialising all keys.
	stripes = 64

	// retryEvery spaces the background probes while Redis is taken as
	// down (after failuresToPause failures in a row).
	retryEvery      = 200 * time.Millisecond
	failuresToPause = 3
	warnEvery       = 10 * time.Second
)

// ErrUnavailable is returned (wrapped) when Redis could not be asked or
// did not answer in time: the caller fails open.
var ErrUnavailable = errors.New("shared admission budget unavailable")

// Config says where the shared budgets live.
type Config struct {
	// URL is the Redis server: redis://[user@]host:port[/db], or rediss://
	// for TLS. A password in the URL is refused (it would show in process
	// listings): use PasswordFile.
	URL string
	// PasswordFile holds the password (trailing newline ignored); "" for
	// none.
	PasswordFile string
	// Timeout bounds each decision's time in Redis (dial, write, read,
	// every attempt together). Default DefaultTimeout.
	Timeout time.Duration
	// Prefix starts every key. Default DefaultPrefix.
	Prefix string
}

// Store is the connection to Redis shared by every route's Budget.
type Store struct {
	client  *redis.Client
	timeout time.Duration
	prefix  string
	log     *zap.Logger
	addr    string // host:port, for logs (never the password)

	// While Redis is taken as down no decision asks it; the probe
	// goroutine clears down when it answers.
	down      atomic.Bool
	downSince atomic.Int64 // ns since the epoch; 0 while Redis answers
	closed    chan struct{}
	closeOnce sync.Once
	failures  atomic.Int64 // in a row

	stats struct {
		decisions, roundTrips, conflicts, failures, skipped atomic.Uint64
	}
}

// Stats are a Store's counters since it opened.
type Stats struct {
	Decisions  uint64 // decisions and releases asked of Redis
	RoundTrips uint64 // compare-and-swaps sent
	Conflicts  uint64 // of those, lost to another replica (or stale cache)
	Failures   uint64 // decisions that failed (Redis down, slow, refusing)
	Skipped    uint64 // decisions not asked while Redis was known down
}

// Open connects lazily to cfg.URL: Redis need not be up yet (decisions
// fail open until it is). It checks the URL and reads the password file.
func Open(cfg Config, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opt, err := options(cfg)
	if err != nil {
		return nil, fmt.Errorf("admission redis: %w", err)
	}
	timeout := cmp.Or(cfg.Timeout, DefaultTimeout)
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	opt.ContextTimeoutEnabled = true
	// One retry, at once, for a pooled connection that died (Redis
	// restarted); anything slower fails open within the timeout.
	opt.MaxRetries, opt.MinRetryBackoff = 1, -1
	opt.DialerRetries = 1 // a refused dial fails at once (the default retries 5 times, 100 ms apart)
	opt.MinIdleConns = 4  // dialled ahead: a burst's first decisions do not each dial
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	opt.DisableIdentity = true // no CLIENT SETINFO: one round trip less per connection
	s := &Store{client: redis.NewClient(opt), timeout: timeout, prefix: cmp.Or(cfg.Prefix, DefaultPrefix), log: log, addr: opt.Addr,
		closed: make(chan struct{})}
	return s, nil
}

func options(cfg Config) (*redis.Options, error) {
	if cfg.URL == "" {
		return nil, errors.New("url: required (redis://host:port/db)")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout: must be 0 (default %s) or more (got %s)", DefaultTimeout, cfg.Timeout)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url's message quotes the URL: it may hold a password.
		return nil, errors.New("url: not a URL (want redis://host:port/db)")
	}
	if _, has := u.User.Password(); has {
		return nil, errors.New("url: holds a password; put it in a file and pass that file instead")
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		opt.Password = strings.TrimRight(string(b), "\r\n")
		if opt.Password == "" {
			return nil, fmt.Errorf("password file %s: empty", cfg.PasswordFile)
		}
	}
	return opt, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.client.Close()
}

// Warm checks that Redis answers and loads the script, so the first
// decisions spend one round trip each rather than a dial, a NOSCRIPT and
// an EVAL within their timeout. It waits at most a second.
func (s *Store) Warm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return casScript.Load(ctx, s.client).Err()
}

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Decisions: s.stats.decisions.Load(), RoundTrips: s.stats.roundTrips.Load(), Conflicts: s.stats.conflicts.Load(),
		Failures: s.stats.failures.Load(), Skipped: s.stats.skipped.Load(),
	}
}

// Budget is one route's shared budget under one admission.Config.
type Budget struct {
	s      *Store
	cfg    admission.Config
	prefix string // Store prefix + route + "/" + config hash + "/"
	ttl    time.Duration

	locks [stripes]sync.Mutex
	seed  maphash.Seed

	mu    sync.Mutex
	cache map[string]string // budget key → the State last seen in Redis
}

// Budget returns the budget of route under cfg (validated: see
// admission.Config.Validate). Budgets of the same route and Config share
// their Redis keys, in this replica and in every other.
func (s *Store) Budget(route string, cfg admission.Config) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("route %s: %w", route, err)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d/%d/%d", cfg.Limit, cfg.Window, cfg.MaxDelay, cfg.Mode, cfg.Slack))
	return &Budget{
		s: s, cfg: cfg, ttl: cfg.IdleAfter(), seed: maphash.MakeSeed(),
		prefix: s.prefix + route + "/" + hex.EncodeToString(h[:6]) + "/",
		cache:  map[string]string{},
	}, nil
}

// Key is the Redis key holding the State of budget key k.
func (b *Budget) Key(k string) string {
	h := sha256.Sum256([]byte(k))
	return b.prefix + base64.RawURLEncoding.EncodeToString(h[:16])
}

// Decide decides on one request of budget key k at now (see
// admission.Decide). On error (wrapping ErrUnavailable) nothing was
// decided: the caller lets the request through.
func (b *Budget) Decide(ctx context.Context, k string, now time.Time) (admission.Decision, error) {
	var d admission.Decision
	err := b.swap(ctx, k, now, func(s admission.State) admission.State {
		s, d = admission.Decide(s, now, rnd{}, b.cfg)
		return s
	})
	return d, err
}

// Release counts the release of a held request of k at now (see
// admission.Release): 0 if it may go now, else how long to wait before
// asking again. On error the caller lets it go.
func (b *Budget) Release(ctx context.Context, k string, now time.Time) (time.Duration, error) {
	var wait time.Duration
	err := b.swap(ctx, k, now, func(s admission.State) admission.State {
		s, wait = admission.Release(s, now, b.cfg)
		return s
	})
	return wait, err
}

// casScript sets KEYS[1] to ARGV[2] with a time to live of ARGV[3] ms if
// it holds ARGV[1] ("" for absent), and returns 1; otherwise it returns
// what KEYS[1] holds ("" for absent).
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// swap applies step to k's State in Redis, atomically: compare-and-swap,
// again from Redis's value when another replica got there first — or from
// the last State this replica saw, when that one's schedule runs further
// (admission.Later): Redis restarted empty, or lost the key, while
// requests held on that schedule are still to be released.
func (b *Budget) swap(ctx context.Context, k string, now time.Time, step func(admission.State) admission.State) error {
	s := b.s
	if !s.mayAsk() {
		s.stats.skipped.Add(1)
		return ErrUnavailable
	}
	s.stats.decisions.Add(1)
	lock := &b.locks[maphash.String(b.seed, k)%stripes]
	lock.Lock()
	defer lock.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := b.Key(k)
	old := b.cached(k) // what Redis is expected to hold
	mine := decodeState(old)
	st := mine
	ttl := max(b.ttl.Milliseconds(), 1)
	buf := make([]byte, 0, admission.StateSize)
	for range maxAttempts {
		enc, _ := step(st).AppendBinary(buf[:0])
		s.stats.roundTrips.Add(1)
		res, err := casScript.Run(ctx, s.client, []string{key}, old, enc, ttl).Result()
		if err != nil {
			s.failed(err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		switch v := res.(type) {
		case int64:
			b.remember(k, string(enc))
			s.answered()
			return nil
		case string:
			s.stats.conflicts.Add(1)
			old = v
			st = admission.Later(decodeState(v), mine, now)
		default:
			s.failed(fmt.Errorf("unexpected answer %T", res))
			return fmt.Errorf("%w: unexpected answer %T from the script", ErrUnavailable, res)
		}
	}
	b.forget(k)
	s.answered()
	return fmt.Errorf("%w: %d compare-and-swaps lost in a row", ErrUnavailable, maxAttempts)
}

// decodeState reads a stored State; "" and what is not a State (another
// version, or written by hand) are the zero State: the key starts afresh
// rather than fail every request.
func decodeState(v string) admission.State {
	var st admission.State
	if v == "" || st.UnmarshalBinary([]byte(v)) != nil {
		return admission.State{}
	}
	return st
}

func (b *Budget) cached(k string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cache[k]
}

func (b *Budget) remember(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.cache[k]; !ok && len(b.cache) >= maxCached {
		clear(b.cache)
	}
	b.cache[k] = v
}

func (b *Budget) forget(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.cache, k)
}

// mayAsk says whether a decision may ask Redis now: unless it is taken as
// down.
func (s *Store) mayAsk() bool { return !s.down.Load() }

// failed records a failed decision; after failuresToPause in a row Redis
// is taken as down and probed in the background.
func (s *Store) failed(err error) {
	s.stats.failures.Add(1)
	if s.failures.Add(1) < failuresToPause || !s.down.CompareAndSwap(false, true) {
		return
	}
	s.downSince.Store(time.Now().UnixNano())
	s.log.Warn("shared admission budget unreachable: global admission passes requests unchecked until it answers",
		zap.String("redis", s.addr), zap.Duration("probe_every", retryEvery), zap.Error(err))
	go s.probe()
}

// probe PINGs Redis every retryEvery until it answers (or the Store
// closes), then lets decisions ask it again. It logs at most every
// warnEvery while Redis stays down.
func (s *Store) probe() {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	lastWarn := time.Now()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := casScript.Load(ctx, s.client).Err() // a PING that also reloads the script into a restarted Redis
		cancel()
		if err == nil {
			s.failures.Store(0)
			s.down.Store(false)
			s.log.Info("shared admission budget reachable again", zap.String("redis", s.addr),
				zap.Duration("down_for", time.Since(time.Unix(0, s.downSince.Swap(0))).Round(time.Millisecond)))
			return
		}
		if time.Since(lastWarn) >= warnEvery {
			lastWarn = time.Now()
			s.log.Warn("shared admission budget still unreachable", zap.String("redis", s.addr), zap.Error(err))
		}
	}
}

// answered records an answer from Redis.
func (s *Store) answered() {
	if s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

// quiet drops go-redis's own log lines (dial failures, printed on stderr
// for every attempt): the Store logs Redis's failures itself, at a bounded
// rate, and counts them.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// rnd is math/rand/v2's global source: safe for concurrent use.
type rnd struct{}

func (rnd) Uint64() uint64 { return rand.Uint64() }
