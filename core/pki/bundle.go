package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// CodeBundleRejected is the code of a bundle that fails verification.
const CodeBundleRejected = "BUNDLE_REJECTED"

// A bundle carries an intermediate from the offline machine to the server: four files, never a
// key. The manifest's sums let an operator (and verify) see that nothing was changed on the way.
const (
	bundleFormat       = "samplero-intermediate-bundle/1"
	bundleIntermediate = "intermediate.pem"
	bundleRoot         = "root.pem"
	bundleChain        = "ca-chain.pem"
	bundleManifest     = "MANIFEST.json"
)

type manifest struct {
	Format                  string         `json:"format"`
	IntermediateID          string         `json:"intermediate_id"`
	IntermediateFingerprint string         `json:"intermediate_fingerprint_sha256"`
	RootFingerprint         string         `json:"root_fingerprint_sha256"`
	CreatedAt               time.Time      `json:"created_at"`
	RootKeyIncluded         bool           `json:"root_key_included"`
	Files                   []manifestFile `json:"files"`
}

type manifestFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

func rejected(msg string) error {
	return errs.E(errs.Invalid, CodeBundleRejected, "bundle rejected: "+msg)
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// BuildBundle writes a bundle for an intermediate and its root (see ports.PKI).
func (a *Admin) BuildBundle(ctx context.Context, req ports.BuildBundleRequest) (ports.BundleInfo, error) {
	if a.d.Bundles == nil {
		return ports.BundleInfo{}, missing("the bundle archive")
	}
	inter, err := parseOneCert("the intermediate certificate file", req.IntermediatePEM)
	if err != nil {
		return ports.BundleInfo{}, err
	}
	root, err := parseOneCert("the root certificate file", req.RootPEM)
	if err != nil {
		return ports.BundleInfo{}, err
	}
	if err := authority.CheckIntermediate(inter, root); err != nil {
		return ports.BundleInfo{}, err
	}
	// Certificates are re-encoded from their DER: whatever text surrounded them stays behind.
	interPEM, rootPEM := certPEM(inter), certPEM(root)
	chain := append(append([]byte(nil), interPEM...), rootPEM...)
	files := []ports.BundleFile{
		{Name: bundleIntermediate, Data: interPEM},
		{Name: bundleChain, Data: chain},
		{Name: bundleRoot, Data: rootPEM},
	}
	m := manifest{
		Format:                  bundleFormat,
		IntermediateID:          authority.IntermediateID(inter),
		IntermediateFingerprint: authority.Fingerprint(inter),
		RootFingerprint:         authority.Fingerprint(root),
		CreatedAt:               a.d.Clock.Now().UTC().Truncate(time.Second),
	}
	for _, f := range files {
		m.Files = append(m.Files, manifestFile{Name: f.Name, SHA256: sum(f.Data)})
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ports.BundleInfo{}, errs.Internalf("pki: manifest: %w", err)
	}
	files = append(files, ports.BundleFile{Name: bundleManifest, Data: append(mj, '\n')})
	if err := a.d.Bundles.Write(ctx, req.Out, files); err != nil {
		return ports.BundleInfo{}, err
	}
	info := bundleInfo(inter, root, m)
	info.Location = req.Out
	return info, nil
}

func bundleInfo(inter, root *x509.Certificate, m manifest) ports.BundleInfo {
	info := ports.BundleInfo{
		IntermediateID:          authority.IntermediateID(inter),
		IntermediateSubject:     inter.Subject.String(),
		NotBefore:               inter.NotBefore.UTC(),
		NotAfter:                inter.NotAfter.UTC(),
		RootFingerprint:         authority.Fingerprint(root),
		IntermediateFingerprint: authority.Fingerprint(inter),
	}
	for _, f := range m.Files {
		info.Files = append(info.Files, ports.BundleFileSum{Name: f.Name, SHA256: f.SHA256})
	}
	return info
}

// VerifyBundle checks a bundle (see ports.PKI).
func (a *Admin) VerifyBundle(ctx context.Context, req ports.VerifyBundleRequest) (ports.BundleInfo, error) {
	b, err := a.readBundle(ctx, req.Path, req.RootFingerprint)
	if err != nil {
		return ports.BundleInfo{}, err
	}
	return b.info, nil
}

type verifiedBundle struct {
	root, inter *x509.Certificate
	info        ports.BundleInfo
}

// readBundle reads and verifies the bundle at path: no private key of any kind in any file, only
// the four known files, every sum in the manifest right, the chain the intermediate and the root
// byte for byte, the intermediate signed by the root and valid now, and the root the one pinned by
// rootFingerprint when given.
func (a *Admin) readBundle(ctx context.Context, path, rootFingerprint string) (verifiedBundle, error) {
	if a.d.Bundles == nil {
		return verifiedBundle{}, missing("the bundle archive")
	}
	files, err := a.d.Bundles.Read(ctx, path)
	if err != nil {
		return verifiedBundle{}, err
	}
	got := map[string][]byte{}
	// Keys first: a bundle carrying a key is refused as such, whatever else is wrong with it.
	for _, f := range files {
		if looksLikeKeyName(f.Name) || containsPrivateKey(f.Data) {
			return verifiedBundle{}, rejected(f.Name + " carries a private key; a bundle never does (the root key stays offline, the intermediate key on the server)")
		}
	}
	known := []string{bundleIntermediate, bundleChain, bundleRoot, bundleManifest}
	for _, f := range files {
		if !slices.Contains(known, f.Name) {
			return verifiedBundle{}, rejected("unexpected file " + f.Name)
		}
		got[f.Name] = f.Data
	}
	for _, n := range known {
		if _, ok := got[n]; !ok {
			return verifiedBundle{}, rejected("missing " + n)
		}
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(got[bundleManifest]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return verifiedBundle{}, rejected("MANIFEST.json does not parse")
	}
	if m.Format != bundleFormat {
		return verifiedBundle{}, rejected(fmt.Sprintf("unknown bundle format %q", m.Format))
	}
	if m.RootKeyIncluded {
		return verifiedBundle{}, rejected("the manifest says it includes a root key")
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		data, ok := got[f.Name]
		if !ok || f.Name == bundleManifest || listed[f.Name] {
			return verifiedBundle{}, rejected("the manifest lists " + f.Name + " wrongly")
		}
		listed[f.Name] = true
		if !strings.EqualFold(f.SHA256, sum(data)) {
			return verifiedBundle{}, rejected("the SHA-256 of " + f.Name + " does not match the manifest")
		}
	}
	for _, n := range known[:3] {
		if !listed[n] {
			return verifiedBundle{}, rejected("the manifest does not list " + n)
		}
	}
	inter, err := parseOneCert(bundleIntermediate, got[bundleIntermediate])
	if err != nil {
		return verifiedBundle{}, rejected(errMessage(err))
	}
	root, err := parseOneCert(bundleRoot, got[bundleRoot])
	if err != nil {
		return verifiedBundle{}, rejected(errMessage(err))
	}
	if !bytes.Equal(got[bundleChain], append(append([]byte(nil), got[bundleIntermediate]...), got[bundleRoot]...)) {
		return verifiedBundle{}, rejected("ca-chain.pem is not intermediate.pem followed by root.pem")
	}
	if err := authority.CheckIntermediate(inter, root); err != nil {
		return verifiedBundle{}, rejected("the chain does not verify: " + errMessage(err))
	}
	// A full path validation as a TLS client would do it, with the root as the only anchor.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	now := a.d.Clock.Now()
	if _, err := inter.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return verifiedBundle{}, errs.Wrap(errs.Invalid, CodeBundleRejected, "bundle rejected: the chain does not verify now", err)
	}
	if m.IntermediateID != authority.IntermediateID(inter) ||
		authority.NormalizeFingerprint(m.IntermediateFingerprint) != authority.NormalizeFingerprint(authority.Fingerprint(inter)) ||
		authority.NormalizeFingerprint(m.RootFingerprint) != authority.NormalizeFingerprint(authority.Fingerprint(root)) {
		return verifiedBundle{}, rejected("the manifest's id or fingerprints do not match the certificates")
	}
	if rootFingerprint != "" && authority.NormalizeFingerprint(rootFingerprint) != authority.NormalizeFingerprint(authority.Fingerprint(root)) {
		return verifiedBundle{}, rejected("the bundle's root " + authority.Fingerprint(root) + " is not the expected root " + rootFingerprint)
	}
	info := bundleInfo(inter, root, m)
	info.Location = path
	return verifiedBundle{root: root, inter: inter, info: info}, nil
}

func errMessage(err error) string {
	if e, ok := errs.As(err); ok {
		return e.Message
	}
	return "invalid"
}

// looksLikeKeyName matches the names key files go by (root-key.pem, intermediate_ca_key,
// root.jwe, server.key, …). A bundle has no business carrying any of them, whatever they hold.
func looksLikeKeyName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "key") || strings.HasSuffix(n, ".jwe") || strings.HasSuffix(n, ".p12") || strings.HasSuffix(n, ".pfx")
}

// containsPrivateKey reports whether data holds a private key in any form this project or a
// common tool writes: a PEM block of any PRIVATE KEY type (encrypted ones too), DER PKCS#8,
// SEC 1 or PKCS#1, a JWE (how init-root keeps the root key), or a JWK with a private part.
func containsPrivateKey(data []byte) bool {
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		return true
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE") || strings.Contains(b.Type, "ENCRYPTED") || derPrivateKey(b.Bytes) {
			return true
		}
	}
	if derPrivateKey(data) {
		return true
	}
	trimmed := strings.TrimSpace(string(data))
	if parts := strings.Split(trimmed, "."); len(parts) == 5 {
		if hdr, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil && bytes.Contains(hdr, []byte(`"enc"`)) {
			return true
		}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) == nil {
		_, ciphertext := obj["ciphertext"]
		_, d := obj["d"]
		_, kty := obj["kty"]
		if ciphertext || (d && kty) {
			return true
		}
		if keys, ok := obj["keys"]; ok && bytes.Contains(keys, []byte(`"d"`)) {
			return true
		}
	}
	return false
}

func derPrivateKey(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return true
	}
	return false
}
