package ports

import (
	"context"
	"crypto"
	"crypto/x509"
	"net"
	"time"
)

// This file holds the ports of the CA hierarchy's administration: the driving port PKI that
// `samplero pki` (and the CA rollout workflow) call, and the driven ports behind it: the offline
// root's vault, bundle archives, the server's PKI directory and the key store of intermediate keys.
// Paths and locations are opaque to the core: it hands them to the adapters and prints what they
// return.

// PKI is the administration of the CA hierarchy. The offline steps (InitRoot, SignIntermediate,
// BuildBundle, VerifyBundle) touch only the root directory and files named in the request; the
// server steps (NewIntermediate, InstallBundle, Audit, Status, SetIntermediateState) work on one
// PKI directory. Errors are *errs.Error: errs.Invalid for bad input (a weak passphrase, a CSR the
// profile refuses, a bundle that fails verification: code BUNDLE_REJECTED), errs.Conflict for a
// step the current state forbids (code ILLEGAL_INTERMEDIATE_TRANSITION, INTERMEDIATE_INSTALLED,
// ROOT_EXISTS, …), errs.NotFound for an unknown intermediate, errs.Unauthenticated
// (ROOT_PASSPHRASE_WRONG) for a passphrase that does not open the root key.
type PKI interface {
	// InitRoot creates the offline root: an ECDSA P-384 key kept encrypted under the passphrase and
	// a self-signed certificate (path length 1). Refuses a directory that already holds anything
	// (ROOT_EXISTS). Not idempotent: a second root would be a second trust anchor.
	InitRoot(ctx context.Context, req InitRootRequest) (RootInfo, error)
	// SignIntermediate signs an intermediate's CSR with the offline root: path length 0, key usage
	// certSign and CRLSign, extended key usage clientAuth and serverAuth. Only the CSR's public key
	// and subject are used. Name constraints are refused (see NameConstraints).
	SignIntermediate(ctx context.Context, req SignIntermediateRequest) (SignedIntermediate, error)
	// BuildBundle writes a bundle (the intermediate certificate, the chain, the root and a manifest of
	// SHA-256 sums) after checking that the intermediate chains to the root. Refuses an existing
	// output.
	BuildBundle(ctx context.Context, req BuildBundleRequest) (BundleInfo, error)
	// VerifyBundle checks a bundle without installing it; see BundleArchive.Read for what the
	// archive itself may not hold. The returned sums are the rollout's evidence.
	VerifyBundle(ctx context.Context, req VerifyBundleRequest) (BundleInfo, error)
	// NewIntermediate creates a new intermediate key in the KeyStore and its CSR in the PKI
	// directory. Each call makes a new key.
	NewIntermediate(ctx context.Context, req NewIntermediateRequest) (PendingIntermediate, error)
	// InstallBundle verifies a bundle and installs its intermediate as staged. Its key must already be
	// in the KeyStore (NewIntermediate on this server). Installing the same certificate again is a
	// no-op; a different certificate for an installed intermediate needs Force. The files it replaces
	// are kept in a backup first.
	InstallBundle(ctx context.Context, req InstallBundleRequest) (InstalledIntermediate, error)
	// Audit runs the custody checks on the PKI directory. Findings are not an error: the report
	// lists them; the error is for an audit that could not run.
	Audit(ctx context.Context) (AuditReport, error)
	// Status lists the hierarchy: the root, every intermediate with its state and share, and the
	// keys still waiting for a certificate.
	Status(ctx context.Context) (PKIStatus, error)
	// SetIntermediateState moves an intermediate to another state, validated by the hierarchy's
	// rules (core/pki/authority). Promoting to active demotes the active intermediate to retiring;
	// rolling back an active intermediate restores the one it replaced. Idempotent: asking for the
	// state (and share) it already has changes nothing. Every change is one atomic write.
	SetIntermediateState(ctx context.Context, req SetIntermediateStateRequest) (StateChangeResult, error)
}

// InitRootRequest asks for a new offline root.
type InitRootRequest struct {
	Dir          string
	Passphrase   []byte
	CommonName   string
	Organization string
	Validity     time.Duration // 0: 20 years
}

// RootInfo describes an offline root.
type RootInfo struct {
	CertLocation string
	KeyLocation  string
	Subject      string
	NotBefore    time.Time
	NotAfter     time.Time
	// FingerprintSHA256 is SHA-256 over the certificate's DER, upper-case hex pairs joined by ':'
	// (as `openssl x509 -fingerprint -sha256` prints it).
	FingerprintSHA256 string
}

// NameConstraints restrict the names an intermediate may certify. SignIntermediate refuses them
// today (NAME_CONSTRAINTS_UNSUPPORTED): Go's verifier rejects a device certificate's URN below any
// name-constrained CA, so they would break every device of the intermediate.
type NameConstraints struct {
	PermittedDNS []string
	ExcludedDNS  []string
	PermittedIPs []*net.IPNet
	ExcludedIPs  []*net.IPNet
}

// SignIntermediateRequest asks the offline root to sign an intermediate.
type SignIntermediateRequest struct {
	RootDir     string
	Passphrase  []byte
	CSRPEM      []byte
	Validity    time.Duration // 0: 5 years
	Constraints NameConstraints
}

// SignedIntermediate is an intermediate certificate just signed.
type SignedIntermediate struct {
	ID                string
	CertPEM           []byte
	Subject           string
	NotBefore         time.Time
	NotAfter          time.Time
	FingerprintSHA256 string
}

// BuildBundleRequest names the certificates of a bundle and where to write it.
type BuildBundleRequest struct {
	IntermediatePEM []byte
	RootPEM         []byte
	Out             string
}

// VerifyBundleRequest names a bundle and, optionally, the root it must carry.
type VerifyBundleRequest struct {
	Path string
	// RootFingerprint, when set, must equal the bundle root's FingerprintSHA256 (case and ':'
	// separators are ignored).
	RootFingerprint string
}

// BundleInfo describes a verified (or just built) bundle.
type BundleInfo struct {
	Location                string
	IntermediateID          string
	IntermediateSubject     string
	NotBefore               time.Time
	NotAfter                time.Time
	RootFingerprint         string
	IntermediateFingerprint string
	Files                   []BundleFileSum
}

// BundleFileSum is one manifest entry.
type BundleFileSum struct {
	Name   string
	SHA256 string // lower-case hex, as sha256sum prints it
}

// NewIntermediateRequest names the subject of a new intermediate.
type NewIntermediateRequest struct {
	CommonName   string // "": "Samplero Intermediate CA <date>"
	Organization string
}

// PendingIntermediate is a key waiting for its certificate.
type PendingIntermediate struct {
	ID          string
	CSRLocation string
	CSRPEM      []byte
	CreatedAt   time.Time
}

// InstallBundleRequest installs a bundle into the PKI directory.
type InstallBundleRequest struct {
	Path            string
	Force           bool
	RootFingerprint string
}

// InstalledIntermediate is what InstallBundle did.
type InstalledIntermediate struct {
	ID               string
	State            string
	CertLocation     string
	BackupLocation   string // "" when nothing was replaced
	RootInstalled    bool   // the root certificate was installed with it (first bundle)
	AlreadyInstalled bool   // the same certificate was installed before: nothing changed
	Bundle           BundleInfo
}

// AuditFinding is one custody problem. Code is stable (ROOT_KEY_PRESENT, DIR_MODE, KEY_MODE, …).
type AuditFinding struct {
	Code     string
	Location string
	Message  string
}

// AuditReport is the result of an audit: no findings means the directory passed.
type AuditReport struct {
	Findings []AuditFinding
	// Checked counts what was looked at, for the operator's confidence ("12 files, 3 intermediates").
	Files         int
	Intermediates int
}

// PKIStatus is the hierarchy as Status shows it.
type PKIStatus struct {
	Root          *RootInfo // nil when no root certificate is installed yet
	Intermediates []IntermediateStatus
	Pending       []PendingIntermediate
	// CountsAvailable says whether IssuedValid was counted (a database was given).
	CountsAvailable bool
	// CountsError says why counts are missing when a database was given but could not be read.
	CountsError string
}

// IntermediateStatus is one intermediate in Status.
type IntermediateStatus struct {
	ID                string
	State             string
	Share             int // percent of new device certificates, canary only
	Since             time.Time
	Replaces          string
	Subject           string
	NotBefore         time.Time
	NotAfter          time.Time
	FingerprintSHA256 string
	// IssuedValid counts device certificates from this intermediate that are still valid (when
	// PKIStatus.CountsAvailable).
	IssuedValid int
	// Problem says why the intermediate could not be read, if it could not.
	Problem string
}

// SetIntermediateStateRequest asks for a state change.
type SetIntermediateStateRequest struct {
	ID    string
	State string
	Share int // percent, 1..100, for canary only
}

// StateChangeResult lists what changed (the intermediate asked for, and any other one the rules
// moved with it). Empty when nothing had to change.
type StateChangeResult struct {
	Changes []StateChange
}

// --- driven ports ---

// KeyStore keeps the intermediates' private keys: files today, a PKCS#11 token or a KMS later.
// Keys never leave it except as a crypto.Signer whose Sign may call into the backend.
type KeyStore interface {
	// NewKey creates a new ECDSA P-256 key and returns its reference and a signer. The reference
	// is the intermediate id derived from the public key (authority.KeyID), whatever the backend,
	// so that the PKI directory, the state file and the certificates all name the key alike.
	NewKey(ctx context.Context) (ref string, signer crypto.Signer, err error)
	// Key opens the key ref; errs.NotFound when the store has none.
	Key(ctx context.Context, ref string) (crypto.Signer, error)
}

// RootVault keeps the offline root: its certificate and its key encrypted under a passphrase.
type RootVault interface {
	// Create makes a new ECDSA P-384 key in dir, which must be missing or empty (errs.Conflict
	// ROOT_EXISTS otherwise), calls build with it for the self-signed certificate, and writes the
	// key (encrypted under passphrase) and the certificate. Nothing is left behind when build fails.
	Create(ctx context.Context, dir string, passphrase []byte, build func(crypto.Signer) (*x509.Certificate, error)) (RootLocations, error)
	// Open decrypts the root key of dir: errs.Unauthenticated ROOT_PASSPHRASE_WRONG for a wrong
	// passphrase, errs.NotFound when dir holds no root.
	Open(ctx context.Context, dir string, passphrase []byte) (*x509.Certificate, crypto.Signer, error)
	// RecordIssued appends a signed intermediate to the root's log of issued certificates.
	RecordIssued(ctx context.Context, dir string, cert *x509.Certificate) error
}

// RootLocations are where a root was written.
type RootLocations struct {
	Cert string
	Key  string
}

// BundleFile is one file of a bundle.
type BundleFile struct {
	Name string
	Data []byte
}

// BundleArchive reads and writes bundle files.
type BundleArchive interface {
	// Write writes files to path; errs.Conflict when path exists.
	Write(ctx context.Context, path string, files []BundleFile) error
	// Read returns the regular files of the bundle at path. It refuses (errs.Invalid
	// BUNDLE_REJECTED) an archive with a symlink, a hard link, a device or a directory entry, a name
	// that is absolute or climbs out with "..", a duplicate name, or a file too large for a bundle.
	Read(ctx context.Context, path string) ([]BundleFile, error)
}

// IntermediateRecord is one intermediate's entry in the PKI directory's state file.
type IntermediateRecord struct {
	ID       string
	State    string
	Share    int
	Since    time.Time
	Replaces string // the intermediate it demoted when it became active: the rollback target
}

// StateChange is one entry of the state file's history.
type StateChange struct {
	At    time.Time
	ID    string
	From  string // "" when installed
	To    string
	Share int
	Note  string
}

// HierarchyStates is the state file: every intermediate's state and share, and the history.
type HierarchyStates struct {
	Intermediates []IntermediateRecord
	History       []StateChange
}

// InstalledCert is an installed intermediate certificate and its record.
type InstalledCert struct {
	ID     string
	Cert   *x509.Certificate // nil when Problem is set
	Record IntermediateRecord
	// Problem says why the certificate could not be read.
	Problem string
}

// PKISnapshot is the PKI directory as read at one moment.
type PKISnapshot struct {
	Root          *x509.Certificate // nil when none installed yet
	Intermediates []InstalledCert   // ordered by id
	Pending       []PendingIntermediate
	// ChainPEM is the published ca-chain file; nil when absent.
	ChainPEM []byte
}

// InstallRequest asks the PKI directory to install an intermediate certificate.
type InstallRequest struct {
	ID           string
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	Force        bool
	Note         string
}

// InstallResult is where an install put things.
type InstallResult struct {
	CertLocation     string
	BackupLocation   string
	RootInstalled    bool
	AlreadyInstalled bool
	State            string
}

// PKIDirectory is the server's PKI directory: the root certificate, the intermediates'
// certificates and CSRs, the state file and the published chain.
type PKIDirectory interface {
	// Snapshot reads the directory. An unreadable certificate is reported in its entry's Problem,
	// not as an error, so that status and audit can show it.
	Snapshot(ctx context.Context) (PKISnapshot, error)
	// UpdateStates changes the state file under an exclusive lock: it reads the file, calls fn,
	// and when fn succeeds writes the result atomically and republishes the chain. fn sees every
	// installed intermediate, with a staged record for one the file does not mention yet.
	UpdateStates(ctx context.Context, fn func(*HierarchyStates) error) error
	// SaveCSR stores the CSR of a new key and returns its location.
	SaveCSR(ctx context.Context, id string, csrPEM []byte) (string, error)
	// Install installs the certificate (and the root when none is installed), staged unless the
	// intermediate already has a state, after backing up the files it replaces. It refuses another
	// root (errs.Conflict ROOT_MISMATCH) and a different certificate for an installed intermediate
	// without Force (errs.Conflict INTERMEDIATE_INSTALLED); the same certificate is a no-op.
	Install(ctx context.Context, req InstallRequest) (InstallResult, error)
	// AuditFiles checks custody on the files: no root key anywhere, no symlinks, directory and
	// file modes, private keys readable by their owner only and owned by the directory's owner.
	AuditFiles(ctx context.Context) ([]AuditFinding, int, error)
}

// IssuedCertificateCounter counts device certificates per issuing intermediate.
type IssuedCertificateCounter interface {
	// CountValidByIssuer counts, by IssuerID, the device certificates not revoked whose notAfter is
	// after now (replaced ones only while their overlap lasts).
	CountValidByIssuer(ctx context.Context, now time.Time) (map[string]int, error)
}

// CAShares is implemented by a CAKeyStore that knows the rollout's canary shares. The PKI service
// uses it, when present, to send that share of new device certificates to canary intermediates.
// (ports.CAIntermediate has no share field; this keeps the CAKeyStore port unchanged.)
type CAShares interface {
	// Shares returns the canary share (percent) by intermediate id; absent means 0.
	Shares(ctx context.Context) (map[string]int, error)
}
