package harness

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProc(t *testing.T) {
	lab := New(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	p, err := lab.Start("talker", "/bin/sh", "-c", "echo to-stderr >&2; echo listening 127.0.0.1:1; exec sleep 60")
	require.NoError(t, err)
	line, err := p.FirstLine(ctx)
	require.NoError(t, err)
	assert.Equal(t, "listening 127.0.0.1:1", line)

	silent, err := lab.Start("silent", "/bin/sh", "-c", "echo oops >&2; exit 3")
	require.NoError(t, err)
	_, err = silent.FirstLine(ctx)
	assert.ErrorContains(t, err, "oops", "the error shows the log")

	lab.Stop()
	<-p.Exited()
	assert.Contains(t, lab.tails(10), "to-stderr")
	assert.Contains(t, lab.tails(10), "----- silent log -----")

	err = lab.finish(assert.AnError, false)
	assert.ErrorIs(t, err, assert.AnError)
	assert.ErrorContains(t, err, "to-stderr")
	assert.DirExists(t, lab.Dir, "kept after a failure")
	require.NoError(t, lab.finish(nil, false))
	_, err = os.Stat(lab.Dir)
	assert.True(t, os.IsNotExist(err), "removed after success")
}
