// Package serverkeys keeps the server's Ed25519 signing keys, the ones that sign device responses
// and leases (PROTOCOL.md sections 3 and 4), in a directory of files. It implements
// ports.ServerKeys and ports.LeaseSigner.
//
// # Rotation
//
// A key's state is not stored: it follows from the files and the clock, so that every instance
// reading the same directory signs with the same key, and a switch needs no restart.
//
//   - Keys are taken in the order of their not_before. The first one whose not_before has come is
//     active; each later one whose not_before has come takes over from it, and the one it took
//     over from becomes retired. Keys whose not_before is still ahead are next.
//   - Endorsement gate: once the active key carries a valid endorsement of the offline root
//     (endorsement.go), a successor takes over only when it is endorsed too, at
//     max(not_before, the endorsement's installed_at). Until then it is published as next and the
//     active key keeps signing. A client that pins only the root can never accept an unendorsed
//     key, so switching to one would cut such clients off; a forgotten install-endorsement is
//     logged instead.
//   - A key file with "retired_at" (or, from older versions, "status": "retired") is retired by
//     the operator, whatever its dates (an emergency: a leaked key).
//   - not_after is the window the endorsement vouches for (clients that pin the root stop trusting
//     the key after it). An active key past its not_after keeps signing when no successor exists,
//     because refusing to sign would break every device; that is logged as an error, and so is an
//     active key within 30 days of its not_after with no next key.
//
// Retired keys stay published (status retired) until the last lease one of them signed can
// have expired, then drop out of Published. Rule: a lease's exp is at most its last heartbeat
// plus the policy's grace period, and that heartbeat is never later than the lease's iat, so every
// lease a retired key signed has expired by retired_at + H, where H is the longest grace period of
// any product policy (the lease horizon, Options LeaseHorizon; at least DefaultLeaseHorizon). The
// horizon is asked for only when a drop-out comes due, so a policy with a longer grace created in
// the meantime still counts; while it cannot be asked, the key stays published.
//
// # Files
//
// The directory (0700) holds, per key, <kid>.json (0600, the private key) and, once endorsed,
// <kid>.endorsement (0600; see endorsement.go). The directory is re-read when any of its files
// changes, checked at most once per second (on the injected clock); a directory that does not load
// (a half-written file, two files for one kid, no key valid now) never replaces the last good one:
// the error is logged and the old keys keep working.
package serverkeys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Key statuses (PROTOCOL.md section 3): only the active key signs; a next key is published ahead
// of its use; a retired key is never used again but stays published so that what it signed can
// still be checked.
const (
	StatusActive  = "active"
	StatusNext    = "next"
	StatusRetired = "retired"
)

// LeaseType is the typ header of a lease (PROTOCOL.md section 4).
const LeaseType = "samplero-lease+jwt"

const (
	dirMode       = 0o700
	keyMode       = 0o600
	fileSuffix    = ".json"
	endorseSuffix = ".endorsement"
	// DefaultValidity is the not_after - not_before of the first key and, by default, of a
	// rotated one.
	DefaultValidity = 2 * 365 * 24 * time.Hour
	// DefaultLeaseHorizon is the lease horizon without Options.LeaseHorizon, and its floor: the
	// default grace period of a policy (PROTOCOL.md section 5).
	DefaultLeaseHorizon = 7 * 24 * time.Hour
	// reloadEvery bounds how often the directory is checked for changes.
	reloadEvery = time.Second
	// rotateWarning: with less than this left before the active key's not_after and no next key,
	// a rotation is due, and that is logged (once per process and key).
	rotateWarning = 30 * 24 * time.Hour
	// horizonRetry is how soon a failed lease-horizon lookup is tried again.
	horizonRetry = time.Minute
)

// keyFile is one key on disk, <kid>.json, mode 0600:
//
//	{"kid": "…", "not_before": "2026-11-29T12:00:00Z", "not_after": "2028-11-29T12:00:00Z",
//	 "private_key": "-----BEGIN PRIVATE KEY-----\n…", "retired_at": "…" (optional)}
//
// private_key is the Ed25519 key as PKCS#8 PEM; the kid is checked against the key on load. Times
// are truncated to whole seconds, as GET /v1/keys and endorsements carry them. Status is read
// for files of earlier versions only: "retired" retires the key, anything else is ignored.
type keyFile struct {
	KID        string     `json:"kid"`
	Status     string     `json:"status,omitempty"`
	NotBefore  time.Time  `json:"not_before"`
	NotAfter   time.Time  `json:"not_after"`
	PrivateKey string     `json:"private_key"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
}

type key struct {
	kid       string
	priv      ed25519.PrivateKey
	notBefore time.Time
	notAfter  time.Time
	// retired by the operator; retiredAt is zero when the file does not say when (older files).
	retired   bool
	retiredAt time.Time
	// endorsement is set only when it verified (against Options root, or structurally without one).
	endorsement string
	endorsedAt  time.Time
}

func (k *key) public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// snapshot is the directory as last loaded.
type snapshot struct {
	keys []*key
	sig  string // what the directory looked like (names, sizes, times), to notice changes
	// warnings: endorsements left out because they do not verify.
	warnings []string
}

// published is one key in a view.
type published struct {
	k         *key
	status    string
	retiredAt time.Time // retired keys: since when (zero: unknown, counts from not_after)
}

// view is the state of a snapshot at an instant; it holds until the next transition.
type view struct {
	snap   *snapshot
	from   time.Time
	until  time.Time // the next instant at which a state changes (zero: none known)
	active *key
	list   []published // active, next (by not_before), retired (newest first)
}

func (v *view) holds(snap *snapshot, now time.Time) bool {
	return v.snap == snap && !now.Before(v.from) && (v.until.IsZero() || now.Before(v.until))
}

// Option configures Keys.
type Option func(*Keys)

// WithRoot makes endorsements verify against this root certificate (the offline root): one that
// does not verify is not published and does not count for the endorsement gate. Without it,
// endorsements are checked for form only (their payload must match the key).
func WithRoot(root *x509.Certificate) Option { return func(k *Keys) { k.root = root } }

// WithLogger sets where reload errors and rotation warnings go (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(k *Keys) { k.log = l } }

// WithLeaseHorizon sets how the longest lease lifetime is found (see the package doc). It is
// called only when a retired key's drop-out comes due; an error keeps the key published and is
// retried a minute later. The result is raised to DefaultLeaseHorizon at least.
func WithLeaseHorizon(f func(ctx context.Context) (time.Duration, error)) Option {
	return func(k *Keys) { k.horizonFn = f }
}

// Keys is the set of server keys in a directory, followed as it changes and as time passes.
// Safe for concurrent use; Active, Published and SignLease take no lock while nothing changes.
type Keys struct {
	issuer    string
	dir       string
	clock     ports.Clock
	root      *x509.Certificate
	log       *slog.Logger
	horizonFn func(ctx context.Context) (time.Duration, error)

	mu        sync.Mutex // serialises reloads and view computations
	snap      atomic.Pointer[snapshot]
	view      atomic.Pointer[view]
	checkedAt atomic.Int64 // unix nanoseconds of the last directory check (clock time)
	badSig    string       // guarded by mu: a directory state that failed to load (not logged twice)
	horizon   time.Duration
	horizonOK bool      // guarded by mu: horizon was obtained
	horizonAt time.Time // guarded by mu: when it was last asked for
	warned    map[string]bool
}

var (
	_ ports.ServerKeys  = (*Keys)(nil)
	_ ports.LeaseSigner = (*Keys)(nil)
)

// KeyID is the kid of an Ed25519 public key: base64url without padding of the first 16 bytes of
// SHA-256 over the raw 32-byte key. It depends on the key alone, so a client can recompute it from
// public_key in GET /v1/keys.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Open reads the keys in dir. On first start (dir missing or empty) it makes dir (0700) with one
// key valid for DefaultValidity from now. It fails unless some key is active now.
func Open(dir, issuer string, clock ports.Clock, opts ...Option) (*Keys, error) {
	if strings.TrimSpace(issuer) == "" {
		return nil, errors.New("serverkeys: issuer is empty")
	}
	k := &Keys{issuer: issuer, dir: dir, clock: clock, warned: map[string]bool{}}
	for _, o := range opts {
		o(k)
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0:
		if err := createFirst(dir, clock.Now()); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	now := clock.Now()
	snap, err := loadDir(dir, k.root)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.compute(snap, now)
	if v.active == nil {
		return nil, fmt.Errorf("serverkeys: %s has no key valid now (every not_before is ahead, or every key is retired)", dir)
	}
	k.snap.Store(snap)
	k.view.Store(v)
	k.checkedAt.Store(now.UnixNano())
	k.logWarnings(snap)
	return k, nil
}

// createFirst writes the first key into a temporary sibling directory and renames it to dir, so
// that two processes starting at once do not both make a key: the second rename fails and that
// process reads the first one's key.
func createFirst(dir string, now time.Time) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-*")
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, dirMode); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	if _, err := writeNewKey(tmp, now, now.Add(DefaultValidity)); err != nil {
		return err
	}
	// os.Rename refuses to replace a directory: remove an empty one first (never a full one).
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
			return nil // another process created the keys meanwhile
		}
		return fmt.Errorf("serverkeys: %w", err)
	}
	return nil
}

// writeNewKey generates a key and writes <kid>.json into dir (atomically, 0600).
func writeNewKey(dir string, notBefore, notAfter time.Time) (*key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	kf := keyFile{
		KID:        KeyID(pub),
		NotBefore:  notBefore.UTC(),
		NotAfter:   notAfter.UTC(),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, kf.KID+fileSuffix), append(data, '\n'), keyMode); err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	return &key{kid: kf.KID, priv: priv, notBefore: kf.NotBefore, notAfter: kf.NotAfter}, nil
}

// writeFileAtomic replaces path with data: a reader (another instance reloading) sees the old
// file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// dirSignature describes the files that matter in dir: a change to any of them (or one more or
// one less) changes the signature.
func dirSignature(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, fileSuffix) || strings.HasSuffix(name, endorseSuffix)) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed while listing: the next check sees the new state
			}
			return "", err
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", name, info.Size(), info.ModTime().UnixNano())
	}
	return b.String(), nil
}

// loadDir reads every key and endorsement in dir.
func loadDir(dir string, root *x509.Certificate) (*snapshot, error) {
	sig, err := dirSignature(dir)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	snap := &snapshot{sig: sig}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		k, err := loadKey(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("serverkeys: %s: %w", name, err)
		}
		if name != k.kid+fileSuffix {
			return nil, fmt.Errorf("serverkeys: %s holds key %s", name, k.kid)
		}
		warning, err := loadEndorsement(dir, k, root)
		if err != nil {
			return nil, fmt.Errorf("serverkeys: %s%s: %w", k.kid, endorseSuffix, err)
		}
		if warning != "" {
			snap.warnings = append(snap.warnings, warning)
		}
		snap.keys = append(snap.keys, k)
	}
	if len(snap.keys) == 0 {
		return nil, fmt.Errorf("serverkeys: %s holds no key", dir)
	}
	slices.SortFunc(snap.keys, func(a, b *key) int {
		if c := a.notBefore.Compare(b.notBefore); c != 0 {
			return c
		}
		return strings.Compare(a.kid, b.kid)
	})
	return snap, nil
}

func loadKey(path string) (*key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kf keyFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, err
	}
	switch kf.Status {
	case "", StatusActive, StatusNext, StatusRetired:
	default:
		return nil, fmt.Errorf("unknown status %q", kf.Status)
	}
	nb, na := kf.NotBefore.UTC().Truncate(time.Second), kf.NotAfter.UTC().Truncate(time.Second)
	if kf.NotBefore.IsZero() || !na.After(nb) {
		return nil, errors.New("not_after must be after not_before")
	}
	b, _ := pem.Decode([]byte(kf.PrivateKey))
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("private_key is not a PKCS#8 PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private_key is %T, want Ed25519", parsed)
	}
	if kid := KeyID(priv.Public().(ed25519.PublicKey)); kid != kf.KID {
		return nil, fmt.Errorf("kid %q does not match the key (%s)", kf.KID, kid)
	}
	k := &key{kid: kf.KID, priv: priv, notBefore: nb, notAfter: na}
	if kf.RetiredAt != nil {
		k.retired, k.retiredAt = true, kf.RetiredAt.UTC().Truncate(time.Second)
	} else if kf.Status == StatusRetired {
		k.retired = true
	}
	return k, nil
}

// current returns the view for now, reloading the directory when it is due and recomputing the
// state when a transition has come.
func (k *Keys) current() *view {
	now := k.clock.Now()
	last := k.checkedAt.Load()
	due := now.UnixNano()-last >= int64(reloadEvery) && k.checkedAt.CompareAndSwap(last, now.UnixNano())
	if v := k.view.Load(); !due && v.holds(k.snap.Load(), now) {
		return v
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if due {
		k.reloadLocked(now)
	}
	snap := k.snap.Load()
	if v := k.view.Load(); v.holds(snap, now) {
		return v
	}
	v := k.compute(snap, now)
	if v.active == nil {
		// Only a clock set back before every key could do this: keep the last state.
		return k.view.Load()
	}
	k.view.Store(v)
	return v
}

// reloadLocked re-reads the directory if it changed. A directory that does not load, or leaves no
// key active now, is logged (once per state) and ignored.
func (k *Keys) reloadLocked(now time.Time) {
	sig, err := dirSignature(k.dir)
	if err != nil {
		k.log.Error("server keys: cannot read the key directory", "dir", k.dir, "err", err)
		return
	}
	if sig == k.snap.Load().sig || sig == k.badSig {
		return
	}
	snap, err := loadDir(k.dir, k.root)
	if err == nil {
		if v := k.compute(snap, now); v.active == nil {
			err = errors.New("no key would be active now")
		} else {
			k.badSig = ""
			k.snap.Store(snap)
			k.view.Store(v)
			k.logWarnings(snap)
			k.log.Info("server keys reloaded", "dir", k.dir, "active", v.active.kid, "keys", len(snap.keys))
			return
		}
	}
	k.badSig = sig
	k.log.Error("server keys: the key directory changed but does not load; the previous keys stay in use", "dir", k.dir, "err", err)
}

// Reload re-reads the directory now, whatever the time since the last check. It reports an error
// when the directory does not load; the previous keys then stay in use.
func (k *Keys) Reload() error {
	now := k.clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checkedAt.Store(now.UnixNano())
	snap, err := loadDir(k.dir, k.root)
	if err != nil {
		return err
	}
	v := k.compute(snap, now)
	if v.active == nil {
		return errors.New("serverkeys: no key would be active now")
	}
	k.badSig = ""
	k.snap.Store(snap)
	k.view.Store(v)
	k.logWarnings(snap)
	return nil
}

func (k *Keys) logWarnings(snap *snapshot) {
	for _, w := range snap.warnings {
		k.log.Error("server keys: an endorsement does not verify and is not published", "dir", k.dir, "err", w)
	}
}

// compute derives every key's state at now (see the package doc). Called with mu held.
func (k *Keys) compute(snap *snapshot, now time.Time) *view {
	v := &view{snap: snap, from: now}
	soon := func(t time.Time) {
		if t.After(now) && (v.until.IsZero() || t.Before(v.until)) {
			v.until = t
		}
	}
	var retired, next []published
	var held []*key
	for _, key := range snap.keys {
		if key.retired {
			retired = append(retired, published{k: key, status: StatusRetired, retiredAt: key.retiredAt})
			continue
		}
		if key.notBefore.After(now) {
			next = append(next, published{k: key, status: StatusNext})
			soon(key.notBefore)
			continue
		}
		if v.active == nil {
			v.active = key
			continue
		}
		takeover := key.notBefore
		if v.active.endorsement != "" {
			if key.endorsement == "" {
				held = append(held, key)
				k.warnOnce("unendorsed:"+key.kid, "server keys: a successor key is due but has no endorsement while the active key has one; the active key keeps signing until it is installed (samplero pki install-endorsement)",
					"next", key.kid, "not_before", key.notBefore, "active", v.active.kid)
				continue
			}
			if key.endorsedAt.After(takeover) {
				takeover = key.endorsedAt
			}
		}
		if takeover.After(now) {
			held = append(held, key)
			soon(takeover)
			continue
		}
		// key takes over: the active one and every key held before it retire at takeover.
		retired = append(retired, published{k: v.active, status: StatusRetired, retiredAt: takeover})
		for _, h := range held {
			retired = append(retired, published{k: h, status: StatusRetired, retiredAt: takeover})
		}
		held = held[:0]
		v.active = key
	}
	if v.active == nil {
		return v
	}
	switch left := v.active.notAfter.Sub(now); {
	case left <= 0:
		k.warnOnce("expired:"+v.active.kid, "server keys: the active key is past its not_after and still signs because no successor is due; rotate now (samplero pki rotate-signing-key)",
			"active", v.active.kid, "not_after", v.active.notAfter)
	case left <= rotateWarning && len(next) == 0 && len(held) == 0:
		k.warnOnce("expiring:"+v.active.kid, "server keys: the active key's not_after is near and no next key exists; rotate (samplero pki rotate-signing-key)",
			"active", v.active.kid, "not_after", v.active.notAfter)
		soon(v.active.notAfter)
	default:
		// Look again when the warnings above come due.
		soon(v.active.notAfter.Add(-rotateWarning))
		soon(v.active.notAfter)
	}
	for _, h := range held {
		next = append(next, published{k: h, status: StatusNext})
	}
	slices.SortStableFunc(next, func(a, b published) int { return a.k.notBefore.Compare(b.k.notBefore) })
	v.list = append(v.list, published{k: v.active, status: StatusActive})
	v.list = append(v.list, next...)
	var kept []published
	for _, r := range retired {
		drop, at := k.dropLocked(r, now)
		if !drop {
			kept = append(kept, r)
			soon(at)
		}
	}
	slices.SortStableFunc(kept, func(a, b published) int { return b.k.notBefore.Compare(a.k.notBefore) })
	v.list = append(v.list, kept...)
	return v
}

// dropLocked says whether a retired key has left the published list at now; when it has not,
// at is when to look again.
func (k *Keys) dropLocked(r published, now time.Time) (drop bool, at time.Time) {
	base := r.retiredAt
	if base.IsZero() {
		// Retired by an older file that does not say when: it may have signed until not_after.
		base = r.k.notAfter
	}
	if floor := base.Add(DefaultLeaseHorizon); now.Before(floor) {
		return false, floor // not due under any horizon: no need to ask
	}
	if k.horizonOK && now.Before(base.Add(k.horizon)) {
		return false, base.Add(k.horizon)
	}
	// Due under what is known: ask again (a policy may have a longer grace by now), at most once
	// per horizonRetry.
	if k.horizonFn == nil {
		k.horizon, k.horizonOK = DefaultLeaseHorizon, true
	} else if k.horizonAt.IsZero() || now.Sub(k.horizonAt) >= horizonRetry {
		k.horizonAt = now
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := k.horizonFn(ctx)
		cancel()
		if err != nil {
			k.log.Error("server keys: cannot find the lease horizon; retired keys stay published", "err", err)
			k.horizonOK = false
		} else {
			k.horizon, k.horizonOK = max(got, DefaultLeaseHorizon), true
		}
	}
	if !k.horizonOK {
		return false, k.horizonAt.Add(horizonRetry)
	}
	if now.Before(base.Add(k.horizon)) {
		return false, base.Add(k.horizon)
	}
	return true, time.Time{}
}

func (k *Keys) warnOnce(id, msg string, args ...any) {
	if k.warned[id] {
		return
	}
	k.warned[id] = true
	k.log.Error(msg, args...)
}

// Issuer is the issuer name put in leases and GET /v1/keys.
func (k *Keys) Issuer() string { return k.issuer }

// Active returns the one key that signs now.
func (k *Keys) Active() (string, crypto.Signer) {
	v := k.current()
	return v.active.kid, v.active.priv
}

// Published lists every key clients should know: active first, then next (by not_before), then
// retired (newest first) until they drop out.
func (k *Keys) Published() []ports.ServerKey {
	v := k.current()
	out := make([]ports.ServerKey, 0, len(v.list))
	for _, p := range v.list {
		sk := ports.ServerKey{
			KID:       p.k.kid,
			PublicKey: slices.Clone([]byte(p.k.public())),
			NotBefore: p.k.notBefore,
			NotAfter:  p.k.notAfter,
			Status:    p.status,
		}
		if p.k.endorsement != "" {
			e := p.k.endorsement
			sk.Endorsement = &e
		}
		out = append(out, sk)
	}
	return out
}

// SignLease signs claims as a compact JWS with the active key, protected header exactly
// {"alg":"EdDSA","typ":"samplero-lease+jwt","kid":"<kid>"}. An empty claims.Issuer is filled in with
// this server's issuer; a different one is refused, as a lease a client cannot match to
// GET /v1/keys would be useless.
func (k *Keys) SignLease(_ context.Context, claims ports.LeaseClaims) (string, error) {
	if claims.Issuer == "" {
		claims.Issuer = k.issuer
	}
	if claims.Issuer != k.issuer {
		return "", errs.Internalf("serverkeys: lease issuer %q is not this server's %q", claims.Issuer, k.issuer)
	}
	if claims.Entitlements == nil {
		claims.Entitlements = []string{} // "ent" is a list, never null
	}
	active := k.current().active
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: active.priv},
		(&jose.SignerOptions{}).WithType(LeaseType).WithHeader("kid", active.kid),
	)
	if err != nil {
		return "", errs.Internalf("serverkeys: lease signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", errs.Internalf("serverkeys: encode lease: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", errs.Internalf("serverkeys: sign lease: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", errs.Internalf("serverkeys: serialize lease: %w", err)
	}
	return token, nil
}
