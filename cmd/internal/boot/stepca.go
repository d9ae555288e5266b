package boot

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/adapters/stepca"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// CodeNotWithStepCA is the code of what needs the server's own PKI (core/pki) and so does not
// exist with SAMPLERO_CA_BACKEND=stepca: revocation lists and canary rollouts.
const CodeNotWithStepCA = "NOT_AVAILABLE_WITH_STEPCA"

// stepCAIssuer is the step-ca adapter as the server's certificate issuer. It also answers the
// revocation-list route (ports.CRLPublisher): step-ca's certificates name no CRL of this server,
// so GET /v1/pki/crl/… says why there is none instead of a generic "not configured".
type stepCAIssuer struct {
	*stepca.Issuer
}

var (
	_ ports.CertificateIssuer = stepCAIssuer{}
	_ ports.CRLPublisher      = stepCAIssuer{}
)

func (stepCAIssuer) CRL(context.Context, string) (ports.CRL, error) {
	return ports.CRL{}, errs.E(errs.Unavailable, ports.CodeCRLNotConfigured,
		"certificate revocation lists are not available with the step-ca backend: use step-ca's own CRL")
}

// openStepCA builds the step-ca issuer of cfg.CABackend.StepCA and the server signing keys,
// checked against step-ca's root. No local CA is opened or created: the intermediate key is
// step-ca's, the device listener's certificate comes from SAMPLERO_DEVICE_TLS_CERT, and s.PKI and
// s.Health stay nil (what needs them, the rollouts and their figures, is not available).
func (s *Server) openStepCA(ctx context.Context, cfg config.Config, store *pgstore.Store, log *slog.Logger) error {
	if cfg.Command == "dev" {
		// dev makes and endorses with its own local hierarchy, and prints its chain's path.
		return errors.New("samplero dev keeps its own local CA: SAMPLERO_CA_BACKEND=stepca is for serve and worker")
	}
	sc := cfg.CABackend.StepCA
	rootPEM, err := os.ReadFile(sc.RootFile)
	if err != nil {
		return fmt.Errorf("SAMPLERO_STEPCA_ROOT: %w", err)
	}
	root, err := firstCertificate(rootPEM)
	if err != nil {
		return fmt.Errorf("SAMPLERO_STEPCA_ROOT %s: %w", sc.RootFile, err)
	}
	key := []byte(sc.ProvisionerKey.Reveal())
	if !sc.ProvisionerKeyInline() {
		// A path: the error names the file, never its contents.
		if key, err = os.ReadFile(strings.TrimSpace(sc.ProvisionerKey.Reveal())); err != nil {
			return fmt.Errorf("SAMPLERO_STEPCA_PROVISIONER_KEY: %w", err)
		}
	}
	is, err := stepca.New(stepca.Options{URL: sc.URL, RootCAs: rootPEM, ProvisionerName: sc.Provisioner, ProvisionerKey: key, Clock: systemClock{}})
	if err != nil {
		return fmt.Errorf("step-ca backend: %w", err)
	}
	// Fail the start, not the first activation, when step-ca is unreachable or its chain does not
	// lead to the configured root.
	if _, err := is.CAChainPEM(ctx); err != nil {
		return fmt.Errorf("step-ca at %s: %w", sc.URL, err)
	}
	s.StepCA = is
	s.Issuer = stepCAIssuer{is}
	// As with a remote signer: no dev endorsement; endorsements are checked against step-ca's root
	// (the offline root when step-ca's intermediate was signed by it, docs/stepca.md).
	if s.Keys, err = serverkeys.Open(cfg.SigningKeysDir, issuerName, systemClock{}, serverkeys.WithRoot(root),
		serverkeys.WithLogger(log.With("component", "serverkeys")), serverkeys.WithLeaseHorizon(leaseHorizon(store.Products()))); err != nil {
		return fmt.Errorf("server keys in %s: %w", cfg.SigningKeysDir, err)
	}
	return nil
}

// firstCertificate is the first certificate of a PEM file.
func firstCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// notWithStepCA stands in for the rollout's probe issuer and mutual-TLS probe when the issuer is
// step-ca: a rollout started anyway fails its self-test with a clear reason instead of crashing
// the worker on a missing PKI service.
type notWithStepCA struct{}

var (
	_ ports.ProbeCertificateIssuer = notWithStepCA{}
	_ ports.MTLSProbe              = notWithStepCA{}
)

func (notWithStepCA) err() error {
	return errs.E(errs.Unavailable, CodeNotWithStepCA,
		"canary rollouts are not available with the step-ca backend: step-ca issues from its one intermediate (docs/stepca.md)")
}

func (n notWithStepCA) IssueProbeCertificate(context.Context, string, crypto.PublicKey) (ports.IssuedCertificate, error) {
	return ports.IssuedCertificate{}, n.err()
}

func (n notWithStepCA) CheckChain(context.Context, string) error { return n.err() }

func (n notWithStepCA) Probe(context.Context, []byte, crypto.Signer) (ports.MTLSProbeResult, error) {
	return ports.MTLSProbeResult{}, n.err()
}
