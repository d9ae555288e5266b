package boot

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/temporalclient"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/carollout"
)

// RolloutActivities builds what the worker needs to run the CA rollout workflow: the PKI
// administration over cfg.PKIDir (state changes), health (the probe issuer and chain checks of
// the PKI service, recording into the store), the mutual-TLS probe of the device listener at
// cfg.DeviceAddr, and the store's rollout events. health is nil with the step-ca backend: the
// self-test and probe then fail with NOT_AVAILABLE_WITH_STEPCA (a rollout has nothing to roll).
func RolloutActivities(cfg config.Config, health *pki.Health, store *pgstore.Store) *carollout.Activities {
	clock := systemClock{}
	admin := pki.NewAdmin(pki.AdminDeps{
		Dir:   casigner.NewDirectory(cfg.PKIDir, clock),
		Keys:  casigner.NewFileKeyStore(cfg.PKIDir),
		Clock: clock,
	})
	if health == nil {
		return &carollout.Activities{PKI: admin, Probe: notWithStepCA{}, MTLS: notWithStepCA{}, Events: store.RolloutEvents()}
	}
	return &carollout.Activities{PKI: admin, Probe: health, MTLS: NewMTLSProbe(cfg.DeviceAddr, health), Events: store.RolloutEvents()}
}

// mtlsProbe dials the device listener with a client certificate and asks for GET /v1/keys over
// the connection: an answer proves the server accepted the certificate's chain in the handshake
// (with TLS 1.3 a refusal only shows on the first read).
type mtlsProbe struct {
	addr   string
	issuer ports.CertificateIssuer
}

var _ ports.MTLSProbe = (*mtlsProbe)(nil)

// NewMTLSProbe returns the probe of the device listener at addr. The server's certificate is
// checked against the CA's own root and published chain (it is issued by the local CA), without a
// host name: the probe dials the address it was configured with, and it tests the server's
// acceptance of client certificates, not the server's name.
func NewMTLSProbe(addr string, issuer ports.CertificateIssuer) ports.MTLSProbe {
	return &mtlsProbe{addr: probeAddr(addr), issuer: issuer}
}

// probeAddr turns a listen address into one to dial (0.0.0.0:8443 → 127.0.0.1:8443).
func probeAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (p *mtlsProbe) Probe(ctx context.Context, leafDER []byte, key crypto.Signer) (ports.MTLSProbeResult, error) {
	chainPEM, err := p.issuer.CAChainPEM(ctx)
	if err != nil {
		return ports.MTLSProbeResult{}, err
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := []byte(chainPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return ports.MTLSProbeResult{}, errors.New("the published chain is empty")
	}
	roots.AddCert(certs[len(certs)-1])
	for _, c := range certs[:len(certs)-1] {
		inters.AddCert(c)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Always present the certificate. With Certificates, Go's client sends one only when its
		// issuer is among the server's acceptable CAs, and sends none otherwise, which a listener
		// that asks for certificates "if given" accepts: the probe would pass without testing
		// anything. A certificate presented is verified by the server, so a completed handshake
		// means the server accepted its chain.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, nil
		},
		// The server is verified below against the CA, without a host name (see NewMTLSProbe).
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the server sent no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inters.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return ports.MTLSProbeResult{}, err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return refused("handshake: " + err.Error()), nil
	}
	if _, err := io.WriteString(conn, "GET /v1/keys HTTP/1.1\r\nHost: "+p.addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return refused("request: " + err.Error()), nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return refused("answer: " + err.Error()), nil
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return refused(fmt.Sprintf("GET /v1/keys answered %d", resp.StatusCode)), nil
	}
	return ports.MTLSProbeResult{Accepted: true, Detail: fmt.Sprintf("GET /v1/keys %d over %s", resp.StatusCode, tlsVersion(conn.ConnectionState().Version))}, nil
}

func refused(detail string) ports.MTLSProbeResult { return ports.MTLSProbeResult{Detail: detail} }

func tlsVersion(v uint16) string {
	if v == tls.VersionTLS13 {
		return "TLS 1.3"
	}
	return "TLS 1.2"
}

// pkiRollout runs `samplero pki rollout start|status|approve|abort`.
func pkiRollout(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	r := cfg.PKI.Rollout
	if r.Sub == "dev-sign-intermediate" {
		return pkiDevSign(ctx, cfg.PKI, stdout)
	}
	in := carollout.Input{}
	if r.Sub == "start" {
		var err error
		if in, err = rolloutInput(ctx, cfg); err != nil {
			return err
		}
	}
	tc, err := DialTemporal(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer tc.Close()
	switch r.Sub {
	case "start":
		runID, err := tc.StartRollout(ctx, in)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Started rollout %s (run %s): %s canary at %d%% of new device certificates, replacing %s.\n",
			carollout.WorkflowID(in.IntermediateID), runID, in.IntermediateID, in.SharePercent, in.PreviousID)
		promote := "then waits for `samplero pki rollout approve --id " + in.IntermediateID + "`"
		if in.AutoPromote {
			promote = "then promotes it when healthy"
		}
		fmt.Fprintf(stdout, "Soak %s with a health check every %s, %s.\n", in.Soak, in.CheckEvery, promote)
		if r.Wait {
			return waitSelfTest(ctx, tc, in.IntermediateID, stdout)
		}
		return nil
	case "status":
		st, err := tc.RolloutStatus(ctx, r.ID)
		if err != nil {
			return err
		}
		printRolloutStatus(stdout, st)
		return nil
	case "approve":
		if err := tc.ApproveRollout(ctx, r.ID, r.By); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Approved: %s will be promoted to active; the previous intermediate retires after its last certificate expires.\n", r.ID)
		return nil
	case "abort":
		if err := tc.AbortRollout(ctx, r.ID, r.Reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Aborted: %s is rolled back; issuance returns to the previous intermediate and its devices are told to renew.\n", r.ID)
		return nil
	}
	return fmt.Errorf("samplero pki rollout %s is not an action", r.Sub)
}

// rolloutInput builds the workflow's input; the previous intermediate is the active one of the
// PKI directory unless named, and the new one must be installed there (staged).
func rolloutInput(ctx context.Context, cfg config.Config) (carollout.Input, error) {
	r := cfg.PKI.Rollout
	in := carollout.Input{IntermediateID: r.ID, PreviousID: r.Previous, SharePercent: r.Share, Soak: r.Soak,
		CheckEvery: r.CheckEvery, MaxIssuanceErrors: r.MaxIssuanceErrors, MaxValidationFailures: r.MaxValidationFailures,
		MaxChainFailures: r.MaxChainFailures, AutoPromote: r.AutoPromote}
	if cfg.PKI.PKIDir == "" {
		return in, nil
	}
	snap, err := casigner.NewDirectory(cfg.PKI.PKIDir, systemClock{}).Snapshot(ctx)
	if err != nil {
		return in, err
	}
	found := false
	var actives []string
	for _, ic := range snap.Intermediates {
		if ic.ID == r.ID {
			found = true
			if ic.Record.State != "staged" {
				return in, errs.E(errs.Conflict, "ROLLOUT_NOT_STAGED", "intermediate "+r.ID+" is "+ic.Record.State+": a rollout starts from a staged intermediate")
			}
		}
		if ic.Record.State == "active" {
			actives = append(actives, ic.ID)
		}
	}
	if !found {
		return in, errs.E(errs.NotFound, "INTERMEDIATE_NOT_FOUND", "no intermediate "+r.ID+" is installed in "+cfg.PKI.PKIDir)
	}
	if in.PreviousID == "" {
		if len(actives) != 1 {
			return in, errs.Validation(fmt.Sprintf("the PKI directory has %d active intermediates: name the one being replaced with --previous", len(actives)))
		}
		in.PreviousID = actives[0]
	}
	return in, nil
}

// waitSelfTest polls the state until the self-test has an outcome (at most a minute).
func waitSelfTest(ctx context.Context, tc *temporalclient.Client, id string, stdout io.Writer) error {
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := tc.RolloutStatus(ctx, id)
		if err == nil && st.State.SelfTest != "" {
			if st.State.Outcome == carollout.OutcomeRolledBack {
				fmt.Fprintf(stdout, "Self-test FAILED, rolled back: %s\n", st.State.Reason)
				return errs.E(errs.Conflict, "ROLLOUT_SELF_TEST_FAILED", "the self-test failed: "+st.State.SelfTest)
			}
			fmt.Fprintf(stdout, "Self-test passed: %s\n", st.State.SelfTest)
			return nil
		}
		if time.Now().After(deadline) {
			return errs.E(errs.Unavailable, errs.CodeUnavailable, "the self-test has not run within a minute: is a worker running?")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func printRolloutStatus(w io.Writer, st temporalclient.RolloutStatus) {
	s := st.State
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	row("workflow", st.WorkflowID+" (run "+st.RunID+")")
	row("status", st.Status)
	row("phase", s.Phase)
	row("intermediate", s.IntermediateID)
	row("replaces", s.PreviousID)
	row("share", fmt.Sprintf("%d%%", s.Share))
	row("canary since", ts(s.CanaryStarted))
	row("soak until", ts(s.SoakUntil))
	row("self-test", s.SelfTest)
	row("checks", fmt.Sprint(s.Checks))
	f := st.Figures
	row("figures", fmt.Sprintf("issued %d, issuance errors %d, validation failures %d, chain checks %d (%d failed)",
		f.Issued, f.IssuanceErrors, f.ValidationFailures, f.ChainChecks, f.ChainFailures))
	row("outcome", strings.TrimSpace(s.Outcome+" "+parens(s.Reason)))
	row("retire at", ts(s.RetireAt))
	row("retired", s.Retired)
	row("failure", st.Failure)
	_ = tw.Flush()
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

// devRootVault opens the root that `samplero dev` keeps in its PKI directory: root.pem and the
// unencrypted root/root-key.pem (casigner's dev layout). It exists so that a rollout can be tried
// on dev with the real steps (`pki rollout dev-sign-intermediate`); production roots live in a
// passphrase vault on an offline machine (pkifiles).
type devRootVault struct{}

var _ ports.RootVault = devRootVault{}

func (devRootVault) Create(context.Context, string, []byte, func(crypto.Signer) (*x509.Certificate, error)) (ports.RootLocations, error) {
	return ports.RootLocations{}, errs.E(errs.Conflict, "DEV_ROOT", "samplero dev makes its own root")
}

func (devRootVault) Open(_ context.Context, dir string, _ []byte) (*x509.Certificate, crypto.Signer, error) {
	key, err := skReadKey(filepath.Join(dir, devRootKeyFile))
	if err != nil {
		return nil, nil, errs.Wrap(errs.NotFound, errs.CodeNotFound, dir+" holds no dev root key ("+devRootKeyFile+"): is it the PKI directory of samplero dev?", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		return nil, nil, errs.Wrap(errs.NotFound, errs.CodeNotFound, dir+" holds no root.pem", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, nil, errs.E(errs.Invalid, errs.CodeValidationFailed, dir+"/root.pem holds no certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, dir+"/root.pem does not parse", err)
	}
	return cert, key, nil
}

// RecordIssued keeps no log: dev's root is a throwaway.
func (devRootVault) RecordIssued(context.Context, string, *x509.Certificate) error { return nil }

// pkiDevSign runs `samplero pki rollout dev-sign-intermediate`.
func pkiDevSign(ctx context.Context, c config.PKI, stdout io.Writer) error {
	csr, err := os.ReadFile(c.CSR)
	if err != nil {
		return errs.Wrap(errs.Invalid, errs.CodeValidationFailed, "cannot read "+c.CSR, err)
	}
	admin := pki.NewAdmin(pki.AdminDeps{Roots: devRootVault{}, Clock: systemClock{}})
	signed, err := admin.SignIntermediate(ctx, ports.SignIntermediateRequest{RootDir: c.PKIDir, CSRPEM: csr})
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.Out, signed.CertPEM, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "DEV ONLY: signed intermediate %s with samplero dev's root in %s.\nCertificate: %s\nSubject: %s\nValid: %s to %s\nSHA-256: %s\n",
		signed.ID, c.PKIDir, c.Out, signed.Subject, signed.NotBefore.UTC().Format(time.RFC3339), signed.NotAfter.UTC().Format(time.RFC3339), signed.FingerprintSHA256)
	return nil
}
