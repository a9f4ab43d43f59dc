package report

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// tmpfs mounts a filesystem of size bytes on a new directory, unmounted at
// cleanup. It needs root (a real full disk, not a fake).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small tmpfs to fill a disk for real: run it as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the filesystem of dir is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

// TestFullDiskDegradesToMemory: with the disk full, writes fail, /healthz
// says why, the gauge is set and results are still counted in memory; a
// restart on the full disk reads the store and starts degraded; the files
// are 0600.
func TestFullDiskDegradesToMemory(t *testing.T) {
	dir := tmpfs(t, "2m")
	path := filepath.Join(dir, "report.db")
	r := newTestReporter(t, Config{DBPath: path})
	r.Record(comparedPair("a", 1))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	fill(t, dir)
	for i := range 200 { // more than the WAL's slack
		r.Record(comparedPair("a", 2+i, changed("$.x", strings.Repeat("p", 500), strings.Repeat("s", 500))))
	}
	if err := r.Flush(); err == nil {
		t.Fatal("a flush on a full disk succeeded")
	}
	err := r.Healthy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "memory only") {
		t.Fatalf("Healthy = %v, want the reason", err)
	}
	if testutil.ToFloat64(r.metrics.flushErrors) < 1 {
		t.Error("failed writes not counted")
	}
	if got := gauge(t, r, "shadowlab_report_store_degraded"); got != 1 {
		t.Errorf("degraded gauge %v", got)
	}
	if rr, _ := r.RouteReport("a"); rr.Pairs != 201 {
		t.Errorf("%d pairs counted in memory, want 201", rr.Pairs)
	}
	// Space again: the next write succeeds and ends memory-only mode.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatalf("flush after space came back: %v", err)
	}
	if err := r.Healthy(context.Background()); err != nil {
		t.Errorf("still unhealthy after a good write: %v", err)
	}
	if err := r.Close(); err != nil { // a clean close: no -wal, no -shm left
		t.Fatal(err)
	}

	// A restart on the full disk starts, reads the store, and is degraded.
	fill(t, dir)
	r2 := newTestReporter(t, Config{DBPath: path})
	if rr, _ := r2.RouteReport("a"); rr.Pairs != 201 {
		t.Errorf("%d pairs read on restart, want 201", rr.Pairs)
	}
	if r2.health.pinned == nil { // SQLite cannot create the -shm: the open itself fails
		t.Error("the store opened for writing on a full disk")
	}
	r2.Record(comparedPair("a", 1000))
	_ = r2.Flush()
	if err := r2.Healthy(context.Background()); err == nil {
		t.Error("a restart on a full disk is healthy")
	}
	if err := r2.Ready(context.Background()); err != nil {
		t.Errorf("a degraded store is not ready: %v", err)
	}
	if rr, _ := r2.RouteReport("a"); rr.Pairs != 202 {
		t.Errorf("%d pairs after restart, want 202 (counted in memory)", rr.Pairs)
	}
}

func gauge(t *testing.T, r *Reporter, name string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
