package casigner

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/pki/authority"
)

// ServerTLSCertificate returns the device listener's TLS certificate: ECDSA P-256, extended key
// usage serverAuth, SANs localhost, 127.0.0.1 and ::1 plus hosts (IP addresses or DNS names),
// signed by the active intermediate so that it chains to ca-chain.pem. It is kept in server.pem
// (leaf, then the intermediate) and server-key.pem, and reused while it still chains to a trusted
// intermediate, has more than 30 days left and names exactly these hosts; otherwise it is replaced.
func (ca *LocalCA) ServerTLSCertificate(hosts []string) (tls.Certificate, error) {
	ca.srvMu.Lock()
	defer ca.srvMu.Unlock()

	dns, ips, err := serverNames(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := ca.clock.Now()
	h := ca.current()
	if c, ok := ca.reusableServerCert(h, dns, ips, now); ok {
		return c, nil
	}
	return ca.issueServerCert(h, dns, ips, now)
}

// serverNames splits hosts into sorted, de-duplicated DNS names and IP addresses, the loopback
// names always included.
func serverNames(hosts []string) ([]string, []net.IP, error) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			ips = append(ips, ip)
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("casigner: %q is neither a host name nor an IP address", h)
		}
		dns = append(dns, h)
	}
	slices.Sort(dns)
	dns = slices.Compact(dns)
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(string(a), string(b)) })
	ips = slices.CompactFunc(ips, func(a, b net.IP) bool { return a.Equal(b) })
	return dns, ips, nil
}

func sameNames(cert *x509.Certificate, dns []string, ips []net.IP) bool {
	got := slices.Clone(cert.DNSNames)
	slices.Sort(got)
	if !slices.Equal(got, dns) || len(cert.IPAddresses) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// reusableServerCert loads server.pem and server-key.pem when they are still good for dns and ips.
func (ca *LocalCA) reusableServerCert(h *hierarchy, dns []string, ips []net.IP, now time.Time) (tls.Certificate, bool) {
	certs, err := readCerts(filepath.Join(ca.dir, serverCertFile))
	if err != nil {
		return tls.Certificate{}, false
	}
	key, err := readKey(filepath.Join(ca.dir, serverKeyFile))
	if err != nil {
		return tls.Certificate{}, false
	}
	leaf := certs[0]
	if !keyMatches(key, leaf.PublicKey) || leaf.NotAfter.Sub(now) <= serverRenewBefore || !sameNames(leaf, dns, ips) {
		return tls.Certificate{}, false
	}
	roots := x509.NewCertPool()
	roots.AddCert(h.root)
	inters := x509.NewCertPool()
	for _, c := range h.trustedCerts() {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return tls.Certificate{}, false
	}
	out := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, true
}

func (ca *LocalCA) issueServerCert(h *hierarchy, dns []string, ips []net.IP, now time.Time) (tls.Certificate, error) {
	var issuer *localIntermediate
	for i := range h.ints {
		if h.ints[i].state == authority.StateActive && h.ints[i].key != nil {
			issuer = &h.ints[i]
			break
		}
	}
	if issuer == nil {
		return tls.Certificate{}, fmt.Errorf("casigner: no active intermediate to sign the server certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), ca.rand)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	serial, err := authority.NewSerial(ca.rand)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	notAfter := now.Add(serverValidity)
	if notAfter.After(issuer.cert.NotAfter) {
		notAfter = issuer.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "samplero-server"},
		NotBefore:    now.Add(-authority.Backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, issuer.cert, key.Public(), issuer.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: sign server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	// Key first: a crash between the two writes leaves a pair that does not match, which the next
	// start detects and replaces.
	if err := writeFileAtomic(filepath.Join(ca.dir, serverKeyFile), keyPEM, keyMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(ca.dir, serverCertFile), encodeCerts(leaf, issuer.cert), certMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("casigner: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, issuer.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
