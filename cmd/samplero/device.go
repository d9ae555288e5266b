package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// keyTypes maps the --key-type flag to the SDK's key types.
var keyTypes = map[string]samplero.KeyType{
	"p256":    samplero.KeyP256,
	"ed25519": samplero.KeyEd25519,
	"rsa":     samplero.KeyRSA2048,
}

// defaultFingerprint derives a stable fingerprint from the host name, so that repeated runs on
// one machine are one device.
func defaultFingerprint() string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte("samplero-device:" + host))
	return "host-" + hex.EncodeToString(sum[:12])
}

// deviceClient builds the SDK client the reference CLI uses: the server pinned to the CA chain
// file, the device state in a directory.
func deviceClient(d config.Device) (*samplero.Client, error) {
	pem, err := os.ReadFile(d.CAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s holds no PEM certificate", d.CAFile)
	}
	fp := d.Fingerprint
	if fp == "" {
		fp = defaultFingerprint()
	}
	return samplero.New(samplero.Config{
		BaseURL:        d.Server,
		RootCAs:        pool,
		Storage:        samplero.FileStorage(d.StateDir),
		Fingerprint:    fp,
		Platform:       d.Platform,
		PluginVersion:  d.PluginVersion,
		Product:        d.Product,
		DeviceName:     d.DeviceName,
		KeyType:        keyTypes[d.KeyType],
		AllowPlainHTTP: strings.HasPrefix(d.Server, "http://"),
	})
}

// runDevice is `samplero device <action>`: one call of the protocol, its verified answer printed
// as JSON.
func runDevice(ctx context.Context, d config.Device, out io.Writer) error {
	c, err := deviceClient(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	var res any
	switch d.Action {
	case "activate":
		r, e := c.Activate(ctx, d.LicenseKey.Reveal())
		if e == nil && r.Pending != nil {
			res, err = r.Pending, nil
			break
		}
		res, err = r, e
	case "validate":
		res, err = c.Validate(ctx)
	case "heartbeat":
		res, err = c.Heartbeat(ctx)
	case "deactivate":
		res, err = c.Deactivate(ctx)
	case "renew":
		res, err = c.Renew(ctx, false)
	case "status":
		res, err = c.Status(ctx, d.LicenseKey.Reveal())
	}
	var problem *samplero.ProblemError
	if errors.As(err, &problem) {
		printJSON(out, map[string]any{"error": map[string]any{"status": problem.Status, "code": problem.Code, "title": problem.Title, "detail": problem.Detail}})
		return fmt.Errorf("%s answered %d %s", d.Action, problem.Status, problem.Code)
	}
	if err != nil {
		return err
	}
	printJSON(out, res)
	return nil
}

func printJSON(out io.Writer, v any) {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
