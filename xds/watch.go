package xds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/policy"
)

// debounce lets an editor finish writing (truncate, write, rename) before
// the file is read.
const debounce = 50 * time.Millisecond

// Publisher takes a new policy live, or hears why a change was refused.
// *Server is the one in use.
type Publisher interface {
	Publish(ctx context.Context, p *policy.Policy) (string, error)
	Refuse(err error)
}

// WatchPolicy loads the policy at path, publishes it, then follows the file
// with filesystem notifications (no polling) until ctx is done. A change that
// does not load or does not publish is logged with every problem and
// otherwise ignored: the last good policy keeps serving. Only the first load
// is fatal, so `serve` never starts on a broken file.
//
// path may be a symbolic link (or a chain of them) to a file in another
// directory: the directory of every link and of the file it ends at are
// watched, and again after every change, so an edit of the file in place,
// its replacement by rename and a retargeted link are all followed. A path
// that is, or becomes, a directory, a FIFO or a device is refused without
// being opened for reading (policy.ReadFile), so neither the watch nor the
// shutdown ever waits on it.
func WatchPolicy(ctx context.Context, path string, pub Publisher, log *zap.Logger) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", path, err)
	}
	defer w.Close()
	// Directories, not files: editors and Kubernetes replace files by
	// rename, which ends a watch on the file itself.
	home, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return fmt.Errorf("watching %s: %w", filepath.Dir(abs), err)
	}
	if err := w.Add(home); err != nil {
		return fmt.Errorf("watching %s: %w", home, err)
	}
	watched := map[string]bool{} // besides home
	follow := func() {
		want := linkDirs(abs)
		for d := range want {
			if d == home || watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				log.Warn("policy watch: cannot watch a linked directory", zap.String("path", abs), zap.String("dir", d), zap.Error(err))
				continue
			}
			watched[d] = true
		}
		for d := range watched {
			if !want[d] {
				_ = w.Remove(d) // gone already if the directory was removed
				delete(watched, d)
			}
		}
	}

	var last []byte
	reload := func(first bool) error {
		follow()
		data, err := policy.ReadFile(abs)
		if err != nil {
			log.Error("policy unreadable; keeping the last good one", zap.String("path", abs), zap.Error(err))
			pub.Refuse(err)
			return err
		}
		if !first && bytes.Equal(data, last) {
			return nil
		}
		last = data
		start := time.Now()
		p, err := policy.Parse(data, path)
		if err != nil {
			logProblems(log, abs, err)
			pub.Refuse(err)
			return err
		}
		version, err := pub.Publish(ctx, p)
		if err != nil {
			log.Error("policy refused; Envoy keeps the last good config", zap.String("path", abs), zap.Error(err))
			pub.Refuse(err)
			return err
		}
		log.Info("policy published", zap.String("path", abs), zap.String(logVersion, version),
			zap.Int("routes", len(p.Routes)), zap.Duration(logTook, time.Since(start)))
		return nil
	}
	if err := reload(true); err != nil {
		return err
	}

	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("policy watch closed")
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			timer = time.After(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("policy watch closed")
			}
			log.Warn("policy watch error", zap.Error(err))
		case <-timer:
			timer = nil
			_ = reload(false) // logged inside; the last good policy stays
		}
	}
}

// maxLinks bounds a chain of symbolic links, as the kernel does (ELOOP).
const maxLinks = 40

// linkDirs are the directories to watch besides path's own: the directory of
// every symbolic link path goes through and of the file it ends at, each
// with its own links resolved (a watch follows them; the resolved name tells
// a retargeted directory link apart). Empty when path is not a link.
func linkDirs(path string) map[string]bool {
	dirs := map[string]bool{}
	for range maxLinks {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(path)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
		if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
			dirs[dir] = true
		}
	}
	return dirs
}

// logProblems logs a refused policy with every problem it has.
func logProblems(log *zap.Logger, path string, err error) {
	var perr *policy.Error
	if errors.As(err, &perr) {
		lines := strings.Split(strings.TrimSpace(perr.Error()), "\n")
		log.Error("policy invalid; Envoy keeps the last good config",
			zap.String("path", path), zap.Int("problems", len(lines)), zap.Strings("errors", lines))
		return
	}
	log.Error("policy invalid; Envoy keeps the last good config", zap.String("path", path), zap.Error(err))
}
