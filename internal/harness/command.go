package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Main is the main of a benchmark command: parse reads the flags (-h
// exits 0, a bad flag 2), then run runs with a console logger on stderr
// named name until SIGINT or SIGTERM; an error is printed and exits 1.
func Main(name string, parse func(args []string, stderr io.Writer) error, run func(ctx context.Context, log *zap.Logger) error) {
	err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.DisableStacktrace, zc.DisableCaller = true, true
	zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	log, err := zc.Build()
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = run(ctx, log.Named(name))
		stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Checks collects the problems of a command line, to report them all at
// once.
type Checks []error

// Check adds a problem when ok is false.
func (c *Checks) Check(ok bool, format string, a ...any) {
	if !ok {
		*c = append(*c, fmt.Errorf(format, a...))
	}
}

// Err is every problem, or nil.
func (c Checks) Err() error { return errors.Join(c...) }
