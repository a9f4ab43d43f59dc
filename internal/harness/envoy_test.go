package harness

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEnvoyStaticPinned starts the real Envoy on a static bootstrap, pinned
// to CPU 0: every thread of it may run there only, and it routes.
func TestEnvoyStaticPinned(t *testing.T) {
	lab := Test(t)
	up, err := lab.Backend("up")
	require.NoError(t, err)
	addr, err := FreeAddr()
	require.NoError(t, err)
	boot, err := StaticBootstrap(StaticConfig{
		Listeners: []Listener{{Name: "in", Address: addr, Routes: []Route{{Name: "all", Prefix: "/", Cluster: "up"}}}},
		Clusters:  []Cluster{{Name: "up", Address: up.Addr()}},
	})
	require.NoError(t, err)
	e, err := lab.Envoy(context.Background(), EnvoyConfig{Bootstrap: boot, Concurrency: 1, CPUs: "0"})
	require.NoError(t, err)

	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(e.Pid()), "task", "*", "status"))
	require.NoError(t, err)
	require.NotEmpty(t, tasks)
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		require.NoError(t, err)
		assert.Contains(t, string(b), "Cpus_allowed_list:\t0\n", task)
	}
	require.NoError(t, WaitHTTP(context.Background(), "http://"+addr+"/x", func(r *http.Response) bool { return r.StatusCode == http.StatusOK }))
	st, err := e.Stats(context.Background(), "^http.in.downstream_rq_2xx$")
	require.NoError(t, err)
	assert.Equal(t, int64(1), st["http.in.downstream_rq_2xx"])
}

func TestCPUSet(t *testing.T) {
	tests := map[string]struct {
		list string
		want []int // nil: refused
	}{
		"one":          {list: "1", want: []int{1}},
		"list":         {list: "0,2", want: []int{0, 2}},
		"range":        {list: "1-3, 5", want: []int{1, 2, 3, 5}},
		"empty part":   {list: "1,"},
		"not a number": {list: "x"},
		"backwards":    {list: "3-1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set, err := cpuSet(tc.list)
			if assert.Equal(t, tc.want == nil, err != nil, "error: %v", err); err != nil {
				return
			}
			var got []int
			for c := range 8 {
				if set.IsSet(c) {
					got = append(got, c)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestPinProcess pins this test binary to the CPUs it may use already
// (so that nothing else changes) and reads the list back.
func TestPinProcess(t *testing.T) {
	was, err := AllowedCPUs(os.Getpid())
	require.NoError(t, err)
	require.NoError(t, PinProcess(was))
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	require.NoError(t, err)
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // the thread ended
		}
		assert.Contains(t, string(b), "Cpus_allowed_list:\t"+was+"\n", task)
	}
	assert.Error(t, PinProcess("x"))
}
