package samplero

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// ServerKey is one entry of GET /v1/keys.
type ServerKey struct {
	KID         string     `json:"kid"`
	Alg         string     `json:"alg"`
	PublicKey   string     `json:"public_key"` // standard base64 of the raw 32 bytes
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    *time.Time `json:"not_after"`
	Status      string     `json:"status"` // active, next or retired
	Endorsement string     `json:"endorsement"`
}

// KeyList is the body of GET /v1/keys.
type KeyList struct {
	Issuer  string      `json:"issuer"`
	Keys    []ServerKey `json:"keys"`
	CAChain string      `json:"ca_chain"`
}

func (k ServerKey) ed25519() (ed25519.PublicKey, bool) {
	if k.Alg != "ed25519" || k.KID == "" {
		return nil, false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(k.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(raw), true
}

// version is the newest not_before of the list: a newer list never has an older one.
func (l *KeyList) version() time.Time {
	var v time.Time
	for _, k := range l.Keys {
		if k.NotBefore.After(v) {
			v = k.NotBefore
		}
	}
	return v
}

func (l *KeyList) find(kid string) (ServerKey, bool) {
	for _, k := range l.Keys {
		if k.KID == kid {
			return k, true
		}
	}
	return ServerKey{}, false
}

var statusRank = map[string]int{"next": 0, "active": 1, "retired": 2}

// checkSuccessor tells whether next may replace stored. The rules, kept simple on purpose:
//   - the issuer does not change;
//   - the newest not_before does not go back;
//   - a key's status only moves forward (next → active → retired): a retired key never returns;
//   - a key that was active or next is not dropped (keys leave the list only once retired).
//
// An older list replayed by an attacker (or served by a stale cache) breaks at least one of them
// as soon as anything rotated.
func checkSuccessor(stored, next *KeyList) error {
	if stored == nil {
		return nil
	}
	if next.Issuer != stored.Issuer {
		return fmt.Errorf("%w: issuer changed", ErrKeyListRollback)
	}
	if next.version().Before(stored.version()) {
		return fmt.Errorf("%w: older not_before", ErrKeyListRollback)
	}
	for _, old := range stored.Keys {
		k, ok := next.find(old.KID)
		if !ok {
			if old.Status != "retired" {
				return fmt.Errorf("%w: key %q dropped before retirement", ErrKeyListRollback, old.KID)
			}
			continue
		}
		if statusRank[k.Status] < statusRank[old.Status] {
			return fmt.Errorf("%w: key %q went from %s back to %s", ErrKeyListRollback, old.KID, old.Status, k.Status)
		}
	}
	return nil
}

func (c *Client) storedKeyList() (*KeyList, error) {
	data, err := load(c.store, StoreKeyList)
	if err != nil || data == nil {
		return nil, err
	}
	var l KeyList
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("samplero: stored key list: %w", err)
	}
	return &l, nil
}

// trustedKeys returns the keys answers may be signed with: the configured ones and the active
// and next keys of the newest verified list, minus any key that list marks retired. With
// EndorsementRoots, a key of the list counts only when it is configured or endorsed (an
// endorsement whose window has ended no longer counts).
func (c *Client) trustedKeys() (map[string]ed25519.PublicKey, error) {
	list, err := c.storedKeyList()
	if err != nil {
		return nil, err
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range c.cfg.TrustedKeys {
		keys[k.KID] = k.PublicKey
	}
	if list != nil {
		for _, k := range list.Keys {
			if k.Status == "retired" {
				delete(keys, k.KID)
				continue
			}
			if pub, ok := k.ed25519(); ok && (k.Status == "active" || k.Status == "next") && c.acceptable(k, pub) {
				keys[k.KID] = pub
			}
		}
	}
	return keys, nil
}

// acceptable says whether a list key may be trusted: always without EndorsementRoots (the list
// was signed by a trusted key); with them, only a configured key (the same kid and key) or an
// endorsed one.
func (c *Client) acceptable(k ServerKey, pub ed25519.PublicKey) bool {
	if len(c.cfg.EndorsementRoots) == 0 {
		return true
	}
	for _, t := range c.cfg.TrustedKeys {
		if t.KID == k.KID && t.PublicKey.Equal(pub) {
			return true
		}
	}
	return c.endorse.verify(c.cfg.EndorsementRoots, k, c.now()) == nil
}

// ensureTrust fetches the key list when no key is trusted yet (trust on first use).
func (c *Client) ensureTrust(ctx context.Context) error {
	keys, err := c.trustedKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		return nil
	}
	_, err = c.FetchKeys(ctx)
	return err
}

// issuer returns the expected lease issuer: Config.Issuer, else the verified key list's, fetching
// the list if there is none yet.
func (c *Client) issuer(ctx context.Context) (string, error) {
	if c.cfg.Issuer != "" {
		return c.cfg.Issuer, nil
	}
	list, err := c.storedKeyList()
	if err != nil {
		return "", err
	}
	if list == nil {
		if list, err = c.FetchKeys(ctx); err != nil {
			return "", err
		}
	}
	if list.Issuer == "" {
		return "", errors.New("samplero: no issuer known")
	}
	return list.Issuer, nil
}

// FetchKeys gets GET /v1/keys with a fresh nonce, verifies the answer, and stores the list when
// it is at least as new as the stored one (see checkSuccessor). The answer must be signed by a
// trusted key (Config.TrustedKeys, or a key of the stored list) that the new list shows active.
//
// Trust on first use: when no key is trusted at all, the client accepts a first list signed by
// one of its own active keys, but only when Config.RootCAs pins the server's TLS chain and the
// client made the connection itself (no Config.HTTPClient). From then on only that list's keys,
// and lists they sign, are trusted.
//
// With Config.EndorsementRoots, the answer may also be signed by a key the list shows active and
// the root endorses (no trust on first use is needed then), and only configured or endorsed keys
// of the list become trusted.
func (c *Client) FetchKeys(ctx context.Context) (*KeyList, error) {
	nonce := httpsig.NewNonce()
	resp, err := c.Send(ctx, Request{Method: http.MethodGet, Path: "/v1/keys?nonce=" + nonce, Nonce: nonce, SkipVerify: true, NoClientCert: true})
	if err != nil {
		return nil, err
	}
	trusted, err := c.trustedKeys()
	if err != nil {
		return nil, err
	}
	path := c.base.EscapedPath() + "/v1/keys"
	if resp.Status != http.StatusOK {
		if _, verr := c.verifyAnswer(resp.Status, path, resp.Body, resp.Header, nonce, trusted); verr != nil {
			return nil, fmt.Errorf("%w: /v1/keys: %w", ErrUnverified, verr)
		}
		return nil, problemOf(resp)
	}
	var list KeyList
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		return nil, fmt.Errorf("samplero: /v1/keys answer does not decode: %w", err)
	}
	switch {
	case len(c.cfg.EndorsementRoots) > 0:
		// The list may be signed by a key this client meets for the first time, if the root
		// endorsed it: that is how a client that pins only the root follows a rotation.
		for _, k := range list.Keys {
			if pub, ok := k.ed25519(); ok && k.Status == "active" && c.acceptable(k, pub) {
				trusted[k.KID] = pub
			}
		}
		if len(trusted) == 0 {
			return nil, fmt.Errorf("%w: no key of the list is endorsed by a pinned root", ErrKeyListUntrusted)
		}
	case len(trusted) == 0:
		if c.cfg.RootCAs == nil || c.cfg.HTTPClient != nil {
			return nil, fmt.Errorf("%w: configure TrustedKeys or EndorsementRoots, or pin RootCAs to trust the first key list", ErrNoTrustedKeys)
		}
		for _, k := range list.Keys {
			if pub, ok := k.ed25519(); ok && k.Status == "active" {
				trusted[k.KID] = pub
			}
		}
	}
	info, err := c.verifyAnswer(resp.Status, path, resp.Body, resp.Header, nonce, trusted)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyListUntrusted, err)
	}
	if k, ok := list.find(info.KeyID); !ok || k.Status != "active" {
		return nil, fmt.Errorf("%w: signing key %q is not active in the list", ErrKeyListUntrusted, info.KeyID)
	}
	if c.cfg.Issuer != "" && list.Issuer != c.cfg.Issuer {
		return nil, fmt.Errorf("%w: issuer %q, want %q", ErrKeyListUntrusted, list.Issuer, c.cfg.Issuer)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	stored, err := c.storedKeyList()
	if err != nil {
		return nil, err
	}
	if err := checkSuccessor(stored, &list); err != nil {
		return nil, err
	}
	if err := c.store.Save(StoreKeyList, resp.Body); err != nil {
		return nil, err
	}
	if err := c.recordSeenLocked(time.Unix(info.Created, 0)); err != nil {
		return nil, err
	}
	return &list, nil
}
