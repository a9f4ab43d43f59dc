// Command backend runs one example backend (see package
// github.com/shadowlab/shadowlab/examples/backend) until SIGINT or SIGTERM.
//
//	backend -name legacy [-addr 127.0.0.1:0]
//
// Once it is serving it prints exactly one line, "listening <host:port>", to
// stdout; nothing else is written there. Errors go to stderr. Exit codes: 0
// after a clean shutdown (or -h), 1 when the server fails, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shadowlab/shadowlab/examples/backend"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx is done and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "backend name, e.g. legacy or candidate (required)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	api := fs.String("api", "", "answer as the example billing API: legacy, or candidate (with its seeded differences); default: echo requests")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: backend -name NAME [-addr HOST:PORT] [-api legacy|candidate]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package already reported the problem
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backend: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return exitUsage
	}
	if strings.TrimSpace(*name) == "" {
		fmt.Fprintln(stderr, "backend: -name is required")
		fs.Usage()
		return exitUsage
	}

	var opts []backend.Option
	switch *api {
	case "":
	case "legacy", "candidate":
		opts = append(opts, backend.WithAPI(backend.API{Candidate: *api == "candidate"}))
	default:
		fmt.Fprintf(stderr, "backend: -api must be legacy or candidate (got %q)\n", *api)
		return exitUsage
	}
	s := backend.New(*name, opts...)
	if err := s.Start(*addr); err != nil {
		fmt.Fprintf(stderr, "backend: %v\n", err)
		return exitFailure
	}
	if _, err := fmt.Fprintf(stdout, "listening %s\n", s.Addr()); err != nil {
		fmt.Fprintf(stderr, "backend: announce address: %v\n", err)
		_ = s.Close()
		return exitFailure
	}

	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "backend: %v\n", err)
		return exitFailure
	}
	return exitOK
}
