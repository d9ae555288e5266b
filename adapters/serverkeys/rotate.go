package serverkeys

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/samplero/samplero/ports"
)

// The operator's steps (samplero pki rotate-signing-key, endorse-signing-key, install-endorsement)
// work on the key directory with these functions; a running server picks their files up by itself.

// KeyState is one key as the operator tools show it.
type KeyState struct {
	KeyClaims
	Status   string
	Endorsed bool
}

// State lists the keys of dir as they stand at now, without starting anything (Published, plus
// keys already dropped from it are not shown). root, when not nil, is what endorsements must
// verify against.
func State(dir string, root *x509.Certificate, now time.Time) ([]KeyState, error) {
	snap, err := loadDir(dir, root)
	if err != nil {
		return nil, err
	}
	k := &Keys{dir: dir, log: slog.New(slog.DiscardHandler), warned: map[string]bool{}}
	v := k.compute(snap, now)
	if v.active == nil {
		return nil, fmt.Errorf("serverkeys: %s has no key valid now", dir)
	}
	out := make([]KeyState, 0, len(v.list))
	for _, p := range v.list {
		out = append(out, KeyState{KeyClaims: p.k.claims(), Status: p.status, Endorsed: p.k.endorsement != ""})
	}
	return out, nil
}

// CreateNext adds the next key to dir, valid from notBefore for validity. It refuses while
// another next key is waiting (one rotation at a time), and a notBefore before now or not after
// the active key's. The running servers publish it as next at their next reload and switch to it
// at notBefore (once endorsed, when the active key is: see the package doc).
func CreateNext(dir string, notBefore time.Time, validity time.Duration, clock ports.Clock) (KeyClaims, error) {
	now := clock.Now().UTC().Truncate(time.Second)
	notBefore = notBefore.UTC()
	if !notBefore.Equal(notBefore.Truncate(time.Second)) {
		return KeyClaims{}, errors.New("serverkeys: not_before must be a whole second")
	}
	if notBefore.Before(now) {
		return KeyClaims{}, fmt.Errorf("serverkeys: not_before %s is in the past (now %s)", notBefore.Format(timeLayout), now.Format(timeLayout))
	}
	if validity < time.Hour || validity > maxKeyWindow || validity%time.Second != 0 {
		return KeyClaims{}, errors.New("serverkeys: validity must be whole seconds from 1h to ten years")
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return KeyClaims{}, fmt.Errorf("serverkeys: %s does not exist (a server makes its first key when it first starts)", dir)
	}
	states, err := State(dir, nil, clock.Now())
	if err != nil {
		return KeyClaims{}, err
	}
	for _, s := range states {
		switch s.Status {
		case StatusNext:
			return KeyClaims{}, fmt.Errorf("serverkeys: key %s is already next (not_before %s): let it take over, or remove %s first",
				s.KID, s.NotBefore.Format(timeLayout), filepath.Join(dir, s.KID+fileSuffix))
		case StatusActive:
			if !notBefore.After(s.NotBefore) {
				return KeyClaims{}, fmt.Errorf("serverkeys: not_before must be after the active key's (%s)", s.NotBefore.Format(timeLayout))
			}
		}
	}
	k, err := writeNewKey(dir, notBefore, notBefore.Add(validity))
	if err != nil {
		return KeyClaims{}, err
	}
	return k.claims(), nil
}

// ClaimsFor returns the covered fields of the key kid in dir (to write an endorsement request
// for a key that exists already, such as the first one).
func ClaimsFor(dir, kid string) (KeyClaims, error) {
	if !kidPattern.MatchString(kid) {
		return KeyClaims{}, fmt.Errorf("serverkeys: %q is not a kid", kid)
	}
	k, err := loadKey(filepath.Join(dir, kid+fileSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return KeyClaims{}, fmt.Errorf("serverkeys: no key %s in %s", kid, dir)
	}
	if err != nil {
		return KeyClaims{}, fmt.Errorf("serverkeys: %s: %w", kid, err)
	}
	return k.claims(), nil
}

// Install verifies endorsement against root and installs it beside its key in dir. It refuses an
// endorsement for a key dir does not hold, or for other dates than the key's. Installing the
// same endorsement again changes nothing (changed is false).
func Install(dir, endorsement string, root *x509.Certificate, clock ports.Clock) (kid string, changed bool, err error) {
	c, err := EndorsedClaims(endorsement)
	if err != nil {
		return "", false, err
	}
	k, err := loadKey(filepath.Join(dir, c.KID+fileSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("serverkeys: the endorsement is for key %s, which %s does not hold", c.KID, dir)
	}
	if err != nil {
		return "", false, fmt.Errorf("serverkeys: %s: %w", c.KID, err)
	}
	if err := VerifyEndorsement(root, endorsement, k.claims()); err != nil {
		return "", false, err
	}
	changed, err = writeEndorsement(dir, k, endorsement, clock.Now())
	if err != nil {
		return "", false, fmt.Errorf("serverkeys: %w", err)
	}
	return k.kid, changed, nil
}

// EndorseAll endorses, with a root key at hand, every key of dir that is not retired and has no
// endorsement verifying against rootCert. It is for `samplero dev`, whose root key is on the
// machine; in production the root is offline and endorses one request at a time. It returns the
// kids it endorsed.
func EndorseAll(dir string, rootKey crypto.Signer, rootCert *x509.Certificate, clock ports.Clock) ([]string, error) {
	if _, err := rootPublicKey(rootCert); err != nil {
		return nil, err
	}
	snap, err := loadDir(dir, rootCert)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, k := range snap.keys {
		if k.retired || k.endorsement != "" || !k.notAfter.After(clock.Now()) {
			continue
		}
		e, err := Endorse(rootKey, rootCert, k.claims())
		if err != nil {
			return done, err
		}
		if _, err := writeEndorsement(dir, k, e, clock.Now()); err != nil {
			return done, fmt.Errorf("serverkeys: %w", err)
		}
		done = append(done, k.kid)
	}
	return done, nil
}
