package xds

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shadowlab/shadowlab/policy"
)

// hang bounds how long a test waits for something that must happen; it
// only turns a hang into a failure, it is not a speed assertion.
const hang = 10 * time.Second

// watching runs WatchPolicy on path until the test ends.
type watching struct {
	t      *testing.T
	rec    *recorder
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

func watch(t *testing.T, path string) *watching {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	w := &watching{t: t, rec: &recorder{}, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- WatchPolicy(ctx, path, w.rec, zap.New(core)) }()
	t.Cleanup(func() { w.stop() })
	return w
}

// wait waits until published and refused policies are counted.
func (w *watching) wait(published, refused int) {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		p, r := w.rec.counts()
		return p == published && r == refused
	}, hang, 5*time.Millisecond)
}

// percent is the mirror percent of the last published policy.
func (w *watching) percent() float64 {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.rec.published[len(w.rec.published)-1].Routes[0].Shadow.Percent
}

// stop ends the watch and checks that it returns, and without error.
func (w *watching) stop() {
	w.t.Helper()
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok {
			assert.NoError(w.t, err)
			close(w.done)
		}
	case <-time.After(hang):
		w.t.Fatal("WatchPolicy did not return after its context ended")
	}
}

func policyText(t *testing.T, percent int) []byte {
	t.Helper()
	good, err := os.ReadFile("testdata/basic.policy.yaml")
	require.NoError(t, err)
	text := strings.Replace(string(good), "percent: 10", fmt.Sprintf("percent: %d", percent), 1)
	require.Contains(t, text, fmt.Sprintf("percent: %d", percent))
	return []byte(text)
}

// replace writes data to path by rename, as editors and ConfigMaps do.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", data, 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
}

// relink points the symbolic link at path to target, atomically.
func relink(t *testing.T, path, target string) {
	t.Helper()
	require.NoError(t, os.Symlink(target, path+".tmp"))
	require.NoError(t, os.Rename(path+".tmp", path))
}

// TestWatchPolicySymlink: a policy path that is a symbolic link to a file in
// another directory follows that file, edited in place or replaced by
// rename, and a retargeted link, then the new target's edits.
func TestWatchPolicySymlink(t *testing.T) {
	linkDir, dirA, dirB := t.TempDir(), t.TempDir(), t.TempDir()
	path := filepath.Join(linkDir, "policy.yaml")
	a, b := filepath.Join(dirA, "policy.yaml"), filepath.Join(dirB, "other.yaml")
	require.NoError(t, os.WriteFile(a, policyText(t, 10), 0o600))
	require.NoError(t, os.Symlink(a, path))

	w := watch(t, path)
	w.wait(1, 0)

	require.NoError(t, os.WriteFile(a, policyText(t, 20), 0o600)) // in place: truncate and write
	w.wait(2, 0)
	assert.InDelta(t, 20, w.percent(), 0)

	replace(t, a, policyText(t, 30))
	w.wait(3, 0)
	assert.InDelta(t, 30, w.percent(), 0)

	require.NoError(t, os.WriteFile(b, policyText(t, 40), 0o600))
	relink(t, path, b)
	w.wait(4, 0)
	assert.InDelta(t, 40, w.percent(), 0)

	require.NoError(t, os.WriteFile(b, policyText(t, 50), 0o600))
	w.wait(5, 0)
	assert.InDelta(t, 50, w.percent(), 0)

	// A relative link through a second link in a third directory.
	dirC := t.TempDir()
	c := filepath.Join(dirC, "c.yaml")
	require.NoError(t, os.WriteFile(c, policyText(t, 60), 0o600))
	hop := filepath.Join(dirA, "hop.yaml")
	rel, err := filepath.Rel(dirA, c)
	require.NoError(t, err)
	require.NoError(t, os.Symlink(rel, hop))
	relink(t, path, hop)
	w.wait(6, 0)
	assert.InDelta(t, 60, w.percent(), 0)
	require.NoError(t, os.WriteFile(c, policyText(t, 70), 0o600))
	w.wait(7, 0)
	assert.InDelta(t, 70, w.percent(), 0)
}

// notRegular are the ways a policy path can stop being a regular file: each
// makes path one, given a scratch directory.
var notRegular = map[string]func(t *testing.T, path, scratch string){
	"fifo": func(t *testing.T, path, scratch string) {
		fifo := filepath.Join(scratch, "fifo")
		require.NoError(t, syscall.Mkfifo(fifo, 0o600))
		require.NoError(t, os.Rename(fifo, path))
	},
	"symlink to a fifo": func(t *testing.T, path, scratch string) {
		fifo := filepath.Join(scratch, "fifo")
		require.NoError(t, syscall.Mkfifo(fifo, 0o600))
		relinkOrLink(t, path, fifo)
	},
	"directory": func(t *testing.T, path, _ string) {
		require.NoError(t, os.RemoveAll(path))
		require.NoError(t, os.Mkdir(path, 0o700))
	},
	"device": func(t *testing.T, path, _ string) {
		relinkOrLink(t, path, os.DevNull)
	},
}

func relinkOrLink(t *testing.T, path, target string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		relink(t, path, target)
		return
	}
	require.NoError(t, os.Symlink(target, path))
}

// TestWatchPolicyNotRegularAtStart: a path that is not a regular file is
// refused at once (a FIFO is never opened for reading, which would wait for
// a writer).
func TestWatchPolicyNotRegularAtStart(t *testing.T) {
	for name, makeIt := range notRegular {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.yaml")
			makeIt(t, path, t.TempDir())
			done := make(chan error, 1)
			go func() { done <- WatchPolicy(context.Background(), path, &recorder{}, zap.NewNop()) }()
			select {
			case err := <-done:
				require.ErrorIs(t, err, policy.ErrNotRegular)
				assert.Contains(t, err.Error(), "not a regular file")
			case <-time.After(hang):
				t.Fatal("WatchPolicy blocked on a path that is not a regular file")
			}
		})
	}
}

// TestWatchPolicyBecomesNotRegular: a path that turns into something other
// than a regular file is refused and logged, the last good policy stays,
// shutdown is not held up, and a regular file there again is followed.
func TestWatchPolicyBecomesNotRegular(t *testing.T) {
	for name, makeIt := range notRegular {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "policy.yaml")
			require.NoError(t, os.WriteFile(path, policyText(t, 10), 0o600))
			w := watch(t, path)
			w.wait(1, 0)

			makeIt(t, path, t.TempDir())
			w.wait(1, 1)
			assert.ErrorIs(t, w.rec.refused[0], policy.ErrNotRegular)
			entries := w.logs.FilterMessageSnippet("policy unreadable").All()
			require.Len(t, entries, 1)
			assert.Contains(t, fmt.Sprint(entries[0].ContextMap()["error"]), "not a regular file")

			require.NoError(t, os.RemoveAll(path))
			replace(t, path, policyText(t, 20))
			w.wait(2, 1)
			assert.InDelta(t, 20, w.percent(), 0)

			makeIt(t, path, t.TempDir())
			w.wait(2, 2)
			w.stop() // while the path is not a regular file
		})
	}
}

// TestWatchPolicyTooLarge: a policy grown over policy.MaxFileBytes is
// refused without being read; the last good one stays.
func TestWatchPolicyTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, policyText(t, 10), 0o600))
	w := watch(t, path)
	w.wait(1, 0)
	require.NoError(t, os.Truncate(path, 50<<30)) // sparse
	w.wait(1, 1)
	assert.ErrorIs(t, w.rec.refused[0], policy.ErrTooLarge)
}
