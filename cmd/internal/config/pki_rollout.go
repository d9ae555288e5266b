package config

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

// PKIRollout holds the flags of `samplero pki rollout start|status|approve|abort`: the CA rollout
// workflow (workflows/carollout), started, watched and signalled through Temporal.
type PKIRollout struct {
	// Sub is start, status, approve or abort.
	Sub string
	// ID is the intermediate being rolled out (the workflow is carollout/<ID>).
	ID string
	// Previous is the active intermediate it replaces; "" reads it from the PKI directory.
	Previous string
	Share    int
	Soak     time.Duration
	// CheckEvery is the interval of the health checks during the soak.
	CheckEvery time.Duration
	// The thresholds of the health checks.
	MaxIssuanceErrors     int
	MaxValidationFailures int
	MaxChainFailures      int
	AutoPromote           bool
	// By (approve) and Reason (abort) are shown in the workflow's state and history.
	By     string
	Reason string
	// Wait, for start, waits until the self-test has run and prints its outcome.
	Wait bool
}

// Defaults of `pki rollout start`.
const (
	DefaultRolloutShare      = 5
	DefaultRolloutSoak       = 24 * time.Hour
	DefaultRolloutCheckEvery = time.Minute
)

const pkiRolloutUsage = `Usage: samplero pki rollout <start|status|approve|abort> --id I [flags]

  start    --id I [--share 5] [--soak 24h] [--check-every 1m] [--auto-promote] [thresholds]
           start the canary rollout of staged intermediate I (workflow carollout/I)
  status   --id I        phase, share, self-test, health figures, outcome
  approve  --id I        promote the canary now (the old intermediate retires after its last certificate)
  abort    --id I        roll the new intermediate back (its devices are told to renew)

  dev-sign-intermediate --data DIR --csr F --out C
           DEV ONLY: sign a CSR with samplero dev's local root key (production: sign-intermediate)

Temporal is reached through SAMPLERO_TEMPORAL_ADDRESS (or --temporal); a worker must be running
(samplero worker, or samplero dev). docs/pki-runbook.md walks through a rollout.
`

// pkiRollout parses `samplero pki rollout …`.
func (p *parser) pkiRollout(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(p.out, pkiRolloutUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return ErrHelp
		}
		return usagef("samplero pki rollout needs start, status, approve or abort")
	}
	c := &p.cfg.PKI
	r := &c.Rollout
	r.Sub, args = args[0], args[1:]
	c.Action = "rollout " + r.Sub
	var fs *flag.FlagSet
	var data *string
	switch r.Sub {
	case "start":
		fs = p.flags("pki rollout start", "--id I [--previous P] [--share N] [--soak D] [--check-every D] [--auto-promote]\n\n"+
			"Starts the rollout workflow of the staged intermediate I: canary at --share percent of new\n"+
			"device certificates, a self-test over mutual TLS, health checks every --check-every during\n"+
			"--soak, then promotion on `pki rollout approve` (or, with --auto-promote, at the end of a\n"+
			"healthy soak). A check above a threshold or `pki rollout abort` rolls it back.")
		data = p.pkiDirFlags(fs)
		fs.StringVar(&r.Previous, "previous", "", "the active intermediate it replaces (default: the active one in the PKI directory)")
		fs.IntVar(&r.Share, "share", DefaultRolloutShare, "canary share in percent, 1 to 100")
		fs.DurationVar(&r.Soak, "soak", DefaultRolloutSoak, "how long the canary runs before it may be promoted automatically")
		fs.DurationVar(&r.CheckEvery, "check-every", DefaultRolloutCheckEvery, "interval of the health checks")
		fs.IntVar(&r.MaxIssuanceErrors, "max-issuance-errors", 0, "issuance errors tolerated before a rollback")
		fs.IntVar(&r.MaxValidationFailures, "max-validation-failures", 0, "validation failures of its certificates tolerated before a rollback")
		fs.IntVar(&r.MaxChainFailures, "max-chain-failures", 0, "failed chain checks tolerated before a rollback")
		fs.BoolVar(&r.AutoPromote, "auto-promote", false, "promote at the end of a healthy soak without waiting for approve")
		fs.BoolVar(&r.Wait, "wait", false, "wait for the self-test and print its outcome")
	case "status":
		fs = p.flags("pki rollout status", "--id I\n\nShows the rollout of intermediate I: phase, share, self-test, health figures and outcome.")
	case "approve":
		fs = p.flags("pki rollout approve", "--id I [--by NAME]\n\nPromotes the canary of intermediate I now.")
		fs.StringVar(&r.By, "by", p.env("USER", ""), "who approves (shown in the workflow)")
	case "dev-sign-intermediate":
		fs = p.flags("pki rollout dev-sign-intermediate", "--data DIR --csr F --out C\n\n"+
			"DEV ONLY. Signs an intermediate's CSR with the root key that `samplero dev` keeps in\n"+
			"DIR/pki/root/root-key.pem (unencrypted, on purpose), so that a rollout can be tried on dev\n"+
			"with the real steps. In production the root is offline: use sign-intermediate there.")
		data = p.pkiDirFlags(fs)
		fs.StringVar(&c.CSR, "csr", "", "the intermediate's CSR (new-intermediate wrote it)")
		fs.StringVar(&c.Out, "out", "", "the certificate file to write")
		if err := p.parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs, c.Action); err != nil {
			return err
		}
		if err := required(c.Action, "--csr", c.CSR, "--out", c.Out); err != nil {
			return err
		}
		return p.resolvePKIDir(fs, *data)
	case "abort":
		fs = p.flags("pki rollout abort", "--id I [--reason TEXT]\n\nRolls intermediate I back: issuance returns to the previous intermediate, its\ncertificates stay trusted and their devices are told to renew.")
		fs.StringVar(&r.Reason, "reason", "", "why (shown in the workflow)")
	default:
		fmt.Fprint(p.out, pkiRolloutUsage)
		return usagef("samplero pki rollout has no action %q", r.Sub)
	}
	fs.StringVar(&r.ID, "id", "", "the intermediate's id (int_…, as `pki status` lists it)")
	temporal := fs.String("temporal", p.env("SAMPLERO_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (SAMPLERO_TEMPORAL_ADDRESS)")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, c.Action); err != nil {
		return err
	}
	if err := required(c.Action, "--id", r.ID); err != nil {
		return err
	}
	p.cfg.Temporal = Temporal{
		Address:   *temporal,
		Namespace: p.env("SAMPLERO_TEMPORAL_NAMESPACE", "default"),
		TLSCert:   p.env("SAMPLERO_TEMPORAL_TLS_CERT", ""),
		TLSKey:    p.env("SAMPLERO_TEMPORAL_TLS_KEY", ""),
		TLSCA:     p.env("SAMPLERO_TEMPORAL_TLS_CA", ""),
	}
	if (p.cfg.Temporal.TLSCert == "") != (p.cfg.Temporal.TLSKey == "") {
		return usagef("SAMPLERO_TEMPORAL_TLS_CERT and SAMPLERO_TEMPORAL_TLS_KEY go together")
	}
	if r.Sub != "start" {
		return nil
	}
	if r.Share < 1 || r.Share > 100 {
		return usagef("--share must be 1 to 100")
	}
	if r.Soak < 0 || r.CheckEvery <= 0 {
		return usagef("--soak cannot be negative and --check-every must be positive")
	}
	if r.MaxIssuanceErrors < 0 || r.MaxValidationFailures < 0 || r.MaxChainFailures < 0 {
		return usagef("thresholds cannot be negative")
	}
	if r.Previous == r.ID {
		return usagef("--previous is the intermediate being rolled out")
	}
	if r.Previous != "" && *data == "" && c.PKIDir == "" {
		return nil
	}
	return p.resolvePKIDir(fs, *data)
}
