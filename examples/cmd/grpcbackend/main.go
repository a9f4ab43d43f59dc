// Command grpcbackend runs one version of the example gRPC Orders service
// (see package github.com/shadowlab/shadowlab/examples/grpcbackend) until
// SIGINT or SIGTERM.
//
//	grpcbackend --version legacy|candidate [--listen 127.0.0.1:9090]
//	            [--tls-cert FILE --tls-key FILE] [--unavailable] [--hang] [--pad N]
//	grpcbackend --version legacy|candidate --descriptor-set-out FILE
//
// Once it is serving it prints exactly one line, "grpcbackend <version>
// listening on <host:port>", to stdout; nothing else is written there.
// With --descriptor-set-out it writes the version's FileDescriptorSet
// (binary, imports included, as protoc --include_imports writes it) to FILE
// and exits without serving. Errors go to stderr. Exit codes: 0 after a clean
// shutdown (or -h, or a written descriptor set), 1 when the server fails, 2
// for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/shadowlab/shadowlab/examples/grpcbackend"
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
	fs := flag.NewFlagSet("grpcbackend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "the version to serve: legacy, or candidate with its seeded differences (required)")
	listen := fs.String("listen", "127.0.0.1:9090", "listen address; port 0 picks a free port")
	certFile := fs.String("tls-cert", "", "PEM certificate file: serve TLS (with --tls-key); default plaintext h2c")
	keyFile := fs.String("tls-key", "", "PEM private key file of --tls-cert")
	unavailable := fs.Bool("unavailable", false, "answer every call UNAVAILABLE")
	hang := fs.Bool("hang", false, "answer no call until its client gives up")
	pad := fs.Int("pad", 0, "add a tags entry of `N` bytes to every Order answered")
	setOut := fs.String("descriptor-set-out", "", "write the version's FileDescriptorSet (binary) to `FILE` and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: grpcbackend --version legacy|candidate [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE] [--unavailable] [--hang] [--pad N]")
		fmt.Fprintln(fs.Output(), "       grpcbackend --version legacy|candidate --descriptor-set-out FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package already reported the problem
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "grpcbackend: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return exitUsage
	}
	switch *version {
	case grpcbackend.VersionLegacy, grpcbackend.VersionCandidate:
	case "":
		fmt.Fprintln(stderr, "grpcbackend: --version is required")
		fs.Usage()
		return exitUsage
	default:
		fmt.Fprintf(stderr, "grpcbackend: --version must be legacy or candidate (got %q)\n", *version)
		return exitUsage
	}
	if *pad < 0 {
		fmt.Fprintf(stderr, "grpcbackend: --pad must not be negative (got %d)\n", *pad)
		return exitUsage
	}
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(stderr, "grpcbackend: set both --tls-cert and --tls-key, or neither")
		return exitUsage
	}

	if *setOut != "" {
		if err := writeDescriptorSet(*version, *setOut); err != nil {
			fmt.Fprintf(stderr, "grpcbackend: %v\n", err)
			return exitFailure
		}
		return exitOK
	}

	s, err := grpcbackend.Start(grpcbackend.Config{
		Version:     *version,
		Addr:        *listen,
		TLSCertFile: *certFile,
		TLSKeyFile:  *keyFile,
		Fault:       grpcbackend.Fault{Unavailable: *unavailable, Hang: *hang, Pad: *pad},
	})
	if err != nil {
		fmt.Fprintf(stderr, "grpcbackend: %v\n", err)
		return exitFailure
	}
	if _, err := fmt.Fprintf(stdout, "grpcbackend %s listening on %s\n", *version, s.Addr()); err != nil {
		fmt.Fprintf(stderr, "grpcbackend: announce address: %v\n", err)
		_ = s.Close()
		return exitFailure
	}

	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "grpcbackend: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// writeDescriptorSet writes version's FileDescriptorSet to path.
func writeDescriptorSet(version, path string) error {
	set, err := grpcbackend.DescriptorSet(version)
	if err != nil {
		return err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return fmt.Errorf("encode descriptor set: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write descriptor set: %w", err)
	}
	return nil
}
