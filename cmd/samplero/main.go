// Command samplero is the Samplero license server and its tools: dev, serve, worker, migrate,
// admin, the reference device client and a load generator. Run "samplero --help".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/samplero/samplero/cmd/internal/boot"
	"github.com/samplero/samplero/cmd/internal/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, for tests: 0 success, 1 failure, 2 usage.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := config.Parse(args, os.Getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	var ue *config.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "samplero:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "samplero:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := boot.NewLogger(stderr)
	switch cfg.Command {
	case "dev":
		err = boot.Dev(ctx, cfg, log, stdout, stderr)
	case "serve":
		err = boot.Serve(ctx, cfg, log)
	case "worker":
		err = boot.Worker(ctx, cfg, log)
	case "migrate":
		err = boot.Migrate(ctx, cfg, stdout)
	case "admin":
		err = boot.AdminTokenCreate(ctx, cfg, stdout)
	case "device":
		err = runDevice(ctx, cfg.Device, stdout)
	case "loadtest":
		err = runLoadtest(ctx, cfg.Loadtest, stdout)
	case "signer":
		err = boot.Signer(ctx, cfg, log)
	case "pki":
		err = boot.PKI(ctx, cfg, os.Stdin, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "samplero:", err)
		return 1
	}
	return 0
}
