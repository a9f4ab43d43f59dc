package report

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The store degrades instead of failing: when a write fails (a full disk,
// a removed directory) the reporter goes on in memory — aggregates stay
// dirty and are retried every flush, recent pairs not written are dropped
// and counted — and says so on /healthz (503 with the reason), in
// shadowlab_report_store_degraded and in one log line per
// degradedLogEvery. The first write that succeeds ends it. A file that
// opens but cannot be written at start (an intact store on a full disk) is
// read once and serve runs on a memory store, degraded until restarted.

// degradedLogEvery bounds the log lines of a failing store.
const degradedLogEvery = time.Minute

// health is the store's ability to write.
type health struct {
	mu      sync.Mutex
	err     error     // the last write's failure; nil when it succeeded
	logged  time.Time // last log line about it
	pinned  error     // set at start when the file could not be opened for writing: never cleared
	failing bool
}

// wrote records the outcome of a write at now; it returns whether a log
// line is due (the first failure, then at most one per degradedLogEvery,
// and the recovery).
func (h *health) wrote(err error, now time.Time) (logNow, recovered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
	switch {
	case err == nil && h.failing:
		h.failing = false
		return true, true
	case err == nil:
		return false, false
	case !h.failing || now.Sub(h.logged) >= degradedLogEvery:
		h.failing = true
		h.logged = now
		return true, false
	}
	return false, false
}

// problem is why the store cannot write now; nil when it can.
func (h *health) problem() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pinned != nil {
		return h.pinned
	}
	return h.err
}

// noteWrite records a flush's outcome, logs it (rate-limited) and sets
// the degraded gauge.
func (r *Reporter) noteWrite(err error) {
	logNow, recovered := r.health.wrote(err, r.now())
	switch {
	case recovered:
		r.log.Warn("report store writes again; memory-only mode ended", zap.String("path", r.store.name))
	case logNow:
		r.log.Error("report store write failed: running in memory (aggregates kept and retried, recent pairs dropped)",
			zap.String("path", r.store.name), zap.Error(err))
	}
}

// Healthy is nil when the store can be written; else why not.
func (r *Reporter) Healthy(ctx context.Context) error {
	if err := r.health.problem(); err != nil {
		return fmt.Errorf("report store %s: memory only: %w", r.cfg.DBPath, err)
	}
	if err := r.store.ping(ctx); err != nil {
		return fmt.Errorf("report store: %w", err)
	}
	return nil
}

// Ready is nil when the reporter can take results: its store answers
// (a degraded store still takes them, in memory).
func (r *Reporter) Ready(ctx context.Context) error {
	if err := r.store.ping(ctx); err != nil {
		return fmt.Errorf("report store: %w", err)
	}
	return nil
}

// Degraded reports whether results are kept in memory only.
func (r *Reporter) Degraded() bool { return r.health.problem() != nil }

// storeFileMode is the mode of the SQLite file; SQLite gives its -wal and
// -shm files the same.
const storeFileMode = 0o600

// privateStoreFile creates path with storeFileMode if it does not exist,
// and takes group and other permissions off it and its -wal and -shm if it
// does: the store holds request paths and response samples.
func privateStoreFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, storeFileMode)
	if err != nil {
		return err
	}
	_ = f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&storeFileMode); err != nil {
				return err
			}
		}
	}
	return nil
}

// openReadOnly opens an existing store file without writing anything
// (immutable: no lock, no -shm, the -wal ignored), for a start on a disk
// that cannot take writes.
func openReadOnly(ctx context.Context, path string) (*store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&immutable=1"}).String()
	s, err := openDSN(ctx, dsn, abs, false)
	if err != nil {
		return nil, err
	}
	return s, nil
}
