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

// deviceTLSConfig is the device listener's TLS configuration: client certificates verified when
// given, against the pool of cas as it is at each handshake (GetConfigForClient), so that a
// rollout step reaches new connections without a restart.
func deviceTLSConfig(cert tls.Certificate, cas *clientCAs) (*tls.Config, error) {
	pool, err := cas.get()
	if err != nil {
		return nil, fmt.Errorf("client CA pool: %w", err)
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		p, err := cas.get()
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = p
		return c, nil
	}
	return base, nil
}

// Listen opens the HTTP listener and the TLS device listener:
// tls.Config{ClientAuth: VerifyClientCertIfGiven, ClientCAs: the PKI's pool, MinVersion: TLS 1.2}.
func (s *Server) Listen(ctx context.Context) (*Listeners, error) {
	cert, err := s.CA.ServerTLSCertificate(serverHosts(s.Cfg.DeviceAddr, s.Cfg.PublicURL))
	if err != nil {
		return nil, fmt.Errorf("device listener certificate: %w", err)
	}
	// A second, like the CA's own look at its state file: a rollout step (a staged intermediate
	// trusted, a retired one dropped) reaches the handshake within two seconds, and building the
	// pool of a few intermediates once a second costs nothing.
	base, err := deviceTLSConfig(cert, &clientCAs{load: s.PKI.ClientCAPool, refresh: time.Second})
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
