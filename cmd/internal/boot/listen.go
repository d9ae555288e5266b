package boot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/samplero/samplero/ports"
)

// Listeners are the two sockets of a serving process, opened before "ready" is announced so that a
// port in use fails the start instead of the first request.
type Listeners struct {
	HTTP   net.Listener
	Device net.Listener // TLS, client certificates verified when given
}

// Close closes both (Serve closes them itself through the app's shutdown).
func (l *Listeners) Close() {
	if l.HTTP != nil {
		l.HTTP.Close()
	}
	if l.Device != nil {
		l.Device.Close()
	}
}

// serverHosts are the names the device listener's certificate carries (PROTOCOL.md section 9:
// localhost, 127.0.0.1 and ::1), plus the listener's and the public URL's host.
func serverHosts(deviceAddr, publicURL string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	add := func(h string) {
		if h != "" && !seen[h] {
			if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
				return
			}
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	if h, _, err := net.SplitHostPort(deviceAddr); err == nil {
		add(h)
	}
	if u, err := url.Parse(publicURL); err == nil {
		add(u.Hostname())
	}
	return hosts
}

// clientCAs caches the PKI's pool of trusted intermediates for the TLS handshake, refreshing it
// at most every refresh, so that an intermediate staged by a rollout is trusted without a restart.
type clientCAs struct {
	load    func(context.Context) (*x509.CertPool, error)
	refresh time.Duration
	// now is the clock of the cache (nil: the wall clock); tests move it instead of sleeping.
	now func() time.Time

	mu      sync.Mutex
	pool    *x509.CertPool
	fetched time.Time
}

func (c *clientCAs) get() (*x509.CertPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if c.pool != nil && now().Sub(c.fetched) < c.refresh {
		return c.pool, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := c.load(ctx)
	if err != nil {
		if c.pool != nil {
			return c.pool, nil // keep serving with the last good pool
		}
		return nil, err
	}
	c.pool, c.fetched = pool, now()
	return pool, nil
}

// clock is the cache's clock, which the handshake's verification uses too.
func (c *clientCAs) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// refusedFunc is told of every client certificate the device listener refuses in the handshake,
// with the reason.
type refusedFunc func(leaf *x509.Certificate, err error)

// deviceTLSConfig is the device listener's TLS configuration: client certificates verified when
// given, against the pool of cas as it is at each handshake (GetConfigForClient), so that a
// rollout step reaches new connections without a restart.
func deviceTLSConfig(cert tls.Certificate, cas *clientCAs) (*tls.Config, error) {
	return deviceTLSConfigRecording(cert, cas, nil)
}

// deviceTLSConfigRecording is deviceTLSConfig that also tells refused (when not nil) of each
// client certificate it refuses.
//
// Go's own verification (ClientAuth VerifyClientCertIfGiven) fails the handshake without giving
// the server's code the certificate or the reason, so the rollout's health figures could not count
// such failures. The listener therefore asks for a certificate with RequestClientCert and verifies
// it itself in VerifyConnection exactly as Go would: against the pool of trusted intermediates as
// roots, the other presented certificates as intermediates, clientAuth, at the current time. A
// connection without a certificate is still accepted (the device API then answers 401 where one is
// required). VerifyConnection also runs on resumed sessions, so a resumed connection is checked
// against the current pool too.
func deviceTLSConfigRecording(cert tls.Certificate, cas *clientCAs, refused refusedFunc) (*tls.Config, error) {
	pool, err := cas.get()
	if err != nil {
		return nil, fmt.Errorf("client CA pool: %w", err)
	}
	verifying := func(c *tls.Config) *tls.Config {
		roots := c.ClientCAs
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			err := verifyDeviceChain(roots, cs.PeerCertificates, cas.clock())
			if err != nil && refused != nil {
				refused(cs.PeerCertificates[0], err)
			}
			return err
		}
		return c
	}
	base := verifying(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		// Still listed in the CertificateRequest as the acceptable CAs, which is how clients pick
		// the certificate to send.
		ClientCAs: pool,
	})
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		p, err := cas.get()
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = p
		return verifying(c), nil
	}
	return base, nil
}

// verifyDeviceChain is the check crypto/tls makes of a client certificate with
// VerifyClientCertIfGiven (see deviceTLSConfigRecording).
func verifyDeviceChain(roots *x509.CertPool, certs []*x509.Certificate, now time.Time) error {
	opts := x509.VerifyOptions{
		Roots:         roots,
		CurrentTime:   now,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return nil
}

// handshakeRefusals records the client certificates the device listener refuses as validation
// failures of the intermediate that issued them (the rollout's health figures). Only a
// certificate whose signature verifies with one of the hierarchy's intermediates is recorded:
// garbage, or a certificate that merely names an intermediate as its issuer, is not attributed to
// it. A certificate is recorded at most once per window, so that a device retrying with an expired
// certificate, or a client replaying a stolen one, cannot turn handshakes into a flood of writes.
type handshakeRefusals struct {
	intermediates func(context.Context) ([]ports.CAIntermediate, error)
	record        func(ctx context.Context, cert *x509.Certificate, detail string)
	now           func() time.Time
	window        time.Duration

	mu   sync.Mutex
	seen map[string]time.Time // serial → last recorded
}

// maxRefusalsSeen bounds the memory of recent refusals; past it the memory starts afresh (at
// worst a certificate is recorded twice in a window).
const maxRefusalsSeen = 10000

func (h *handshakeRefusals) refused(leaf *x509.Certificate, verr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ints, err := h.intermediates(ctx)
	if err != nil {
		return
	}
	issued := false
	for _, in := range ints {
		if in.Cert != nil && leaf.CheckSignatureFrom(in.Cert) == nil {
			issued = true
			break
		}
	}
	if !issued {
		return
	}
	serial := leaf.SerialNumber.Text(16)
	now := h.now()
	h.mu.Lock()
	if last, ok := h.seen[serial]; ok && now.Sub(last) < h.window {
		h.mu.Unlock()
		return
	}
	if h.seen == nil || len(h.seen) >= maxRefusalsSeen {
		h.seen = map[string]time.Time{}
	}
	h.seen[serial] = now
	h.mu.Unlock()
	h.record(ctx, leaf, "TLS handshake refused certificate "+serial+": "+refusalReason(verr))
}

// refusalReason is a short, stable reason for the figures (the x509 error text is long and may
// change between Go versions).
func refusalReason(err error) string {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "expired or not yet valid"
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return "not for client authentication"
	case errors.As(err, &inv):
		return "invalid"
	case errors.As(err, &unk):
		return "issuer not trusted"
	default:
		return "not verified"
	}
}

// deviceCertificate is the device listener's own certificate: from SAMPLERO_DEVICE_TLS_CERT/_KEY
// when set (always so with a remote signer), else issued by the local CA for serverHosts.
func (s *Server) deviceCertificate() (tls.Certificate, error) {
	b := s.Cfg.CABackend
	if b.DeviceTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(b.DeviceTLSCert, b.DeviceTLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("SAMPLERO_DEVICE_TLS_CERT/_KEY: %w", err)
		}
		return cert, nil
	}
	if s.CA == nil {
		return tls.Certificate{}, fmt.Errorf("SAMPLERO_CA_BACKEND=%s needs SAMPLERO_DEVICE_TLS_CERT and SAMPLERO_DEVICE_TLS_KEY", s.Cfg.CABackend.Kind)
	}
	return s.CA.ServerTLSCertificate(serverHosts(s.Cfg.DeviceAddr, s.Cfg.PublicURL))
}

// Listen opens the HTTP listener and the TLS device listener (deviceTLSConfigRecording: client
// certificates verified when given against the PKI's pool, MinVersion TLS 1.2), whose refused
// certificates count in the rollout's health figures.
func (s *Server) Listen(ctx context.Context) (*Listeners, error) {
	cert, err := s.deviceCertificate()
	if err != nil {
		return nil, fmt.Errorf("device listener certificate: %w", err)
	}
	// A second, like the CA's own look at its state file: a rollout step (a staged intermediate
	// trusted, a retired one dropped) reaches the handshake within two seconds, and building the
	// pool of a few intermediates once a second costs nothing.
	cas := &clientCAs{load: s.Issuer.ClientCAPool, refresh: time.Second}
	var refused refusedFunc
	if s.Health != nil {
		refusals := &handshakeRefusals{intermediates: s.CAStore.Intermediates, record: s.Health.RecordValidationFailure,
			now: time.Now, window: time.Minute}
		refused = refusals.refused
	}
	// With step-ca (no Health) refusals are not recorded: the figures are the rollouts', which do
	// not exist there. Its ClientCAPool caches step-ca's intermediates for a minute, so asking
	// every second does not reach step-ca.
	base, err := deviceTLSConfigRecording(cert, cas, refused)
	if err != nil {
		return nil, err
	}
	l := &Listeners{}
	var lc net.ListenConfig
	if l.HTTP, err = lc.Listen(ctx, "tcp", s.Cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP listener: %w", err)
	}
	dev, err := lc.Listen(ctx, "tcp", s.Cfg.DeviceAddr)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("device listener: %w", err)
	}
	l.Device = tls.NewListener(dev, base)
	return l, nil
}

// Serve runs the app on both listeners until ctx ends, then shuts down gracefully: no new
// connections, in-flight requests finish (up to 15 s).
func (s *Server) Serve(ctx context.Context, l *Listeners) error {
	errc := make(chan error, 2)
	for _, ln := range []net.Listener{l.HTTP, l.Device} {
		go func() { errc <- s.App.Listener(ln) }()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		first = fmt.Errorf("listener stopped: %w", first)
	}
	if err := s.App.ShutdownWithTimeout(15 * time.Second); err != nil && first == nil && !errors.Is(err, context.DeadlineExceeded) {
		first = err
	}
	return first
}
