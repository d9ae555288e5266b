package boot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/cmd/internal/devserver"
)

// devMemoryLimit is dev's soft limit on the Go heap (see Dev).
const devMemoryLimit = 64 << 20

// ReadyLine is the first line dev prints once every listener accepts requests.
const ReadyLine = "samplero dev is ready"

// Dev is `samplero dev`: everything on one machine under cfg.DataDir. It returns when ctx ends
// (SIGINT/SIGTERM), after a graceful shutdown: listeners drain, the worker stops, the Temporal
// dev server's process group is terminated.
func Dev(ctx context.Context, cfg config.Config, log *slog.Logger, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	// dev keeps its replay store in memory (a million live nonces are tens of MB): a soft limit
	// makes the collector work harder near it instead of letting garbage grow to twice the live
	// heap. GOMEMLIMIT, when set, wins.
	if debug.SetMemoryLimit(-1) == math.MaxInt64 {
		debug.SetMemoryLimit(devMemoryLimit)
	}
	bin, err := devserver.FindOrInstall(ctx, stderr)
	if err != nil {
		return err
	}
	tlog, err := os.OpenFile(filepath.Join(cfg.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer tlog.Close()
	temporal, err := devserver.Start(devserver.Options{
		Binary: bin,
		Port:   cfg.Temporal.Port,
		UIPort: cfg.Temporal.UIPort,
		DBFile: filepath.Join(cfg.DataDir, "temporal.db"),
		Output: tlog,
		Logger: log.With("component", "temporal-dev"),
	})
	if err != nil {
		return err
	}
	defer temporal.Stop(10 * time.Second)

	// The database migrates while Temporal starts.
	store, err := OpenStore(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer store.Close()
	readyCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err = temporal.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return err
	}
	tc, err := DialTemporal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	mailer, err := Mailer(cfg)
	if err != nil {
		return err
	}
	srv, err := Build(ctx, cfg, log, store, tc)
	if err != nil {
		return err
	}
	defer srv.Close()
	stopWorker, err := StartWorker(tc, mailer, srv.Commerce, srv.Licenses, RolloutActivities(cfg, srv.Health, store), log)
	if err != nil {
		return err
	}
	defer stopWorker()

	token, err := CreateAdminToken(ctx, store.AdminTokens(), "dev-"+time.Now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(cfg.DataDir, "admin-token")
	if err := writeSecretFile(tokenFile, []byte(token+"\n")); err != nil {
		return err
	}
	l, err := srv.Listen(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n"+
		"  HTTP         http://%s\n"+
		"  device API   https://%s  (CA chain %s)\n"+
		"  Temporal UI  %s\n"+
		"  data dir     %s\n"+
		"  admin token  %s\n",
		ReadyLine, cfg.HTTPAddr, cfg.DeviceAddr, srv.CA.ChainPath(), temporal.UIURL(), cfg.DataDir, tokenFile)
	log.Info("ready", "config", cfg.String(), "temporal_pid", temporal.Pid())
	go resumeFulfilment(ctx, srv.Commerce, log.With("component", "commerce"))
	ensureSchedules(ctx, tc, log)
	err = srv.Serve(ctx, l)
	log.Info("shutting down")
	return ignoreCanceled(err)
}
