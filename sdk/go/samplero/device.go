package samplero

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// ActivateResult is the answer of POST /v1/activate and POST /v1/bootstrap. When the product needs
// the owner's approval, Pending is set and the other fields are empty.
type ActivateResult struct {
	HTTPStatus          int       `json:"-"` // 201 new activation, 200 same device again, 202 pending
	Status              string    `json:"status"`
	ActivationID        string    `json:"activation_id"`
	Certificate         string    `json:"certificate"`
	CAChain             string    `json:"ca_chain"`
	CertificateSerial   string    `json:"certificate_serial"`
	CertificateNotAfter time.Time `json:"certificate_not_after"`
	Lease               string    `json:"lease"`
	HeartbeatIntervalS  int       `json:"heartbeat_interval_s"`
	GracePeriodS        int       `json:"grace_period_s"`
	MTLSURL             string    `json:"mtls_url"`
	TrustLevel          int       `json:"trust_level"`
	// LeaseInfo is the verified lease.
	LeaseInfo *Lease        `json:"-"`
	Pending   *PendingClaim `json:"-"`
}

// PendingClaim is a 202 answer: the owner must approve this device; call Bootstrap later.
type PendingClaim struct {
	Status     string    `json:"status"`
	ClaimID    string    `json:"claim_id"`
	ExpiresAt  time.Time `json:"expires_at"`
	NextStep   string    `json:"next_step"`
	TrustLevel int       `json:"trust_level"`
}

// LicenseInfo is the license part of a validate answer.
type LicenseInfo struct {
	ID           string     `json:"id"`
	Product      string     `json:"product"`
	ExpiresAt    *time.Time `json:"expires_at"` // nil: perpetual
	Entitlements []string   `json:"entitlements"`
}

// ValidateResult is the answer of POST /v1/validate.
type ValidateResult struct {
	Valid                 bool        `json:"valid"`
	Status                string      `json:"status"`
	Action                string      `json:"action,omitempty"`
	ActivationID          string      `json:"activation_id"`
	License               LicenseInfo `json:"license"`
	TrustLevel            int         `json:"trust_level"`
	HeartbeatDueAt        time.Time   `json:"heartbeat_due_at"`
	GracePeriodRemainingS int         `json:"grace_period_remaining_s"`
}

// HeartbeatResult is the answer of POST /v1/heartbeat.
type HeartbeatResult struct {
	Valid                 bool      `json:"valid"`
	Status                string    `json:"status"`
	PreviousStatus        string    `json:"previous_status,omitempty"`
	Recovered             bool      `json:"recovered"`
	Lease                 string    `json:"lease"`
	HeartbeatDueAt        time.Time `json:"heartbeat_due_at"`
	GracePeriodRemainingS int       `json:"grace_period_remaining_s"`
	RenewCertificate      bool      `json:"renew_certificate"`
	TrustLevel            int       `json:"trust_level"`
	LeaseInfo             *Lease    `json:"-"`
}

// DeactivateResult is the answer of POST /v1/deactivate.
type DeactivateResult struct {
	Status         string    `json:"status"`
	SeatsUsed      int       `json:"seats_used"`
	SeatsTotal     int       `json:"seats_total"`
	SeatReleasedAt time.Time `json:"seat_released_at"`
	TrustLevel     int       `json:"trust_level"`
}

// RenewResult is the answer of POST /v1/certificates/renew.
type RenewResult struct {
	Certificate         string    `json:"certificate"`
	CAChain             string    `json:"ca_chain"`
	CertificateSerial   string    `json:"certificate_serial"`
	CertificateNotAfter time.Time `json:"certificate_not_after"`
	Lease               string    `json:"lease"`
	TrustLevel          int       `json:"trust_level"`
	LeaseInfo           *Lease    `json:"-"`
}

// StatusResult is the answer of POST /v1/status.
type StatusResult struct {
	Status     string     `json:"status"`
	SeatsUsed  int        `json:"seats_used"`
	SeatsTotal int        `json:"seats_total"`
	ExpiresAt  *time.Time `json:"expires_at"`
	TrustLevel int        `json:"trust_level"`
}

// ensureDeviceKey loads the device key, generating and storing one on first use.
func (c *Client) ensureDeviceKey() (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, err := c.deviceKeyLocked()
	if err != nil || key != nil {
		return key, err
	}
	key, err = GenerateKey(c.cfg.KeyType)
	if err != nil {
		return nil, err
	}
	pemKey, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := c.store.Save(StoreDeviceKey, pemKey); err != nil {
		return nil, err
	}
	c.credentialsChangedLocked()
	c.key = key
	return key, nil
}

// Activate activates this device with a license key. The device key is generated and stored on
// first use. On 200/201 the certificate, CA chain, lease and activation id are checked and stored;
// on 202 the claim id is stored for Bootstrap.
func (c *Client) Activate(ctx context.Context, licenseKey string) (*ActivateResult, error) {
	if c.cfg.Fingerprint == "" {
		return nil, errors.New("samplero: Config.Fingerprint is required to activate")
	}
	key, err := c.ensureDeviceKey()
	if err != nil {
		return nil, err
	}
	body, err := c.activateBody(licenseKey, key)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	status, err := c.call(ctx, "/v1/activate", json.RawMessage(body), key, false, &raw)
	if err != nil {
		return nil, err
	}
	return c.finishActivation(ctx, status, raw, key)
}

// activateBody is the JSON body of POST /v1/activate for key.
func (c *Client) activateBody(licenseKey string, key crypto.Signer) ([]byte, error) {
	csr, err := CreateCSR(key)
	if err != nil {
		return nil, err
	}
	in := map[string]string{
		"license_key":        licenseKey,
		"device_fingerprint": c.cfg.Fingerprint,
		"platform":           c.cfg.Platform,
		"plugin_version":     c.cfg.PluginVersion,
		"csr":                csr,
	}
	if c.cfg.DeviceName != "" {
		in["device_name"] = c.cfg.DeviceName
	}
	if c.cfg.Product != "" {
		in["product"] = c.cfg.Product
	}
	return json.Marshal(in)
}

// Bootstrap asks whether a pending claim was approved; "" uses the claim id stored by Activate.
// It signs with the device key the claim's CSR was made with.
func (c *Client) Bootstrap(ctx context.Context, claimID string) (*ActivateResult, error) {
	if claimID == "" {
		data, err := load(c.store, StoreClaimID)
		if err != nil {
			return nil, err
		}
		if claimID = string(data); claimID == "" {
			return nil, errors.New("samplero: no pending claim")
		}
	}
	key, err := c.deviceKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, ErrNotActivated
	}
	var raw json.RawMessage
	status, err := c.call(ctx, "/v1/bootstrap", map[string]string{"claim_id": claimID}, key, false, &raw)
	if err != nil {
		return nil, err
	}
	return c.finishActivation(ctx, status, raw, key)
}

func (c *Client) finishActivation(ctx context.Context, status int, raw []byte, key crypto.Signer) (*ActivateResult, error) {
	if status == http.StatusAccepted {
		var p PendingClaim
		if err := json.Unmarshal(raw, &p); err != nil || p.ClaimID == "" {
			return nil, errors.New("samplero: pending answer without claim_id")
		}
		if err := c.store.Save(StoreClaimID, []byte(p.ClaimID)); err != nil {
			return nil, err
		}
		return &ActivateResult{HTTPStatus: status, Status: p.Status, TrustLevel: p.TrustLevel, Pending: &p}, nil
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return nil, fmt.Errorf("samplero: unexpected status %d", status)
	}
	var res ActivateResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("samplero: activation answer does not decode: %w", err)
	}
	res.HTTPStatus = status
	if res.Status != "active" || res.ActivationID == "" {
		return nil, fmt.Errorf("%w: activation answer without an active activation", ErrAnswerMismatch)
	}
	if err := checkCertificate(res.Certificate, key, res.ActivationID); err != nil {
		return nil, err
	}
	lease, err := c.verifyOnlineLease(ctx, res.Lease, key, res.ActivationID)
	if err != nil {
		return nil, err
	}
	res.LeaseInfo = lease
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range []struct{ name, v string }{
		{StoreCertificate, res.Certificate}, {StoreCAChain, res.CAChain}, {StoreLease, res.Lease},
		{StoreActivationID, res.ActivationID}, {StoreClaimID, ""},
	} {
		if err := c.store.Save(e.name, []byte(e.v)); err != nil {
			return nil, err
		}
	}
	c.credentialsChangedLocked()
	if err := c.recordSeenLocked(lease.IssuedAt); err != nil {
		return nil, err
	}
	return &res, nil
}

// checkCertificate makes sure the issued certificate carries our key and, when it names an
// activation, ours.
func checkCertificate(certPEM string, key crypto.Signer, activationID string) error {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: certificate is not PEM", ErrAnswerMismatch)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%w: certificate does not parse", ErrAnswerMismatch)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: certificate is not for this device key", ErrAnswerMismatch)
	}
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, "urn:samplero:activation:") && s != "urn:samplero:activation:"+activationID {
			return fmt.Errorf("%w: certificate names another activation", ErrAnswerMismatch)
		}
	}
	return nil
}

// product is the product this client checks answers against: Config.Product, else the product
// of the stored lease (verified when it was stored).
func (c *Client) product() string {
	if c.cfg.Product != "" {
		return c.cfg.Product
	}
	data, _ := load(c.store, StoreLease)
	return leaseProduct(string(data))
}

// leaseProduct reads prd from a lease without verifying it.
func leaseProduct(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Prd string `json:"prd"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.Prd
}

func (c *Client) verifyOnlineLease(ctx context.Context, token string, key crypto.Signer, activationID string) (*Lease, error) {
	issuer, err := c.issuer(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := c.trustedKeys()
	if err != nil {
		return nil, err
	}
	tp, err := httpsig.Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	seen, err := c.newestSeen()
	if err != nil {
		return nil, err
	}
	product := c.cfg.Product
	if product == "" {
		product = leaseProduct(token)
	}
	lease, err := VerifyLease(token, LeaseCheck{
		Keys: keys, Issuer: issuer, Fingerprint: c.cfg.Fingerprint, Thumbprint: tp, Product: product,
		Now: c.now(), NewestSeen: seen, Skew: MaxSkew,
	})
	if err != nil {
		return nil, err
	}
	if lease.ActivationID != activationID {
		return nil, fmt.Errorf("%w: lease is for activation %q", ErrAnswerMismatch, lease.ActivationID)
	}
	return lease, nil
}

// activation returns the stored activation id and device key, or ErrNotActivated.
func (c *Client) activation() (string, crypto.Signer, error) {
	data, err := load(c.store, StoreActivationID)
	if err != nil {
		return "", nil, err
	}
	key, err := c.deviceKey()
	if err != nil {
		return "", nil, err
	}
	if data == nil || key == nil {
		return "", nil, ErrNotActivated
	}
	return string(data), key, nil
}

// Validate asks whether this activation is valid. It never moves the heartbeat clock. The answer
// must name this activation and cover the product.
func (c *Client) Validate(ctx context.Context) (*ValidateResult, error) {
	actID, key, err := c.activation()
	if err != nil {
		return nil, err
	}
	in := map[string]string{}
	if p := c.product(); p != "" {
		in["product"] = p
	}
	if c.cfg.PluginVersion != "" {
		in["plugin_version"] = c.cfg.PluginVersion
	}
	var res ValidateResult
	if _, err := c.call(ctx, "/v1/validate", in, key, true, &res); err != nil {
		return nil, err
	}
	if res.ActivationID != actID {
		return nil, fmt.Errorf("%w: answer for activation %q", ErrAnswerMismatch, res.ActivationID)
	}
	if p := c.product(); p != "" && res.License.Product != p && !contains(res.License.Entitlements, p) {
		return nil, fmt.Errorf("%w: license does not cover %q", ErrAnswerMismatch, p)
	}
	return &res, nil
}

// Heartbeat reports this device alive. A valid answer carries a fresh lease, which is verified
// and stored; an answer with valid:false (license revoked, suspended or expired) deletes the stored
// lease, so that the device stops working offline too.
func (c *Client) Heartbeat(ctx context.Context) (*HeartbeatResult, error) {
	actID, key, err := c.activation()
	if err != nil {
		return nil, err
	}
	in := map[string]string{}
	if c.cfg.PluginVersion != "" {
		in["plugin_version"] = c.cfg.PluginVersion
	}
	var res HeartbeatResult
	if _, err := c.call(ctx, "/v1/heartbeat", in, key, true, &res); err != nil {
		return nil, err
	}
	if !res.Valid {
		if err := c.store.Save(StoreLease, nil); err != nil {
			return nil, err
		}
		return &res, nil
	}
	lease, err := c.verifyOnlineLease(ctx, res.Lease, key, actID)
	if err != nil {
		return nil, err
	}
	res.LeaseInfo = lease
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.store.Save(StoreLease, []byte(res.Lease)); err != nil {
		return nil, err
	}
	if err := c.recordSeenLocked(lease.IssuedAt); err != nil {
		return nil, err
	}
	return &res, nil
}

// Deactivate releases this device's seat. On success the stored certificate, lease and
// activation id are deleted (the key is kept for a later activation).
func (c *Client) Deactivate(ctx context.Context) (*DeactivateResult, error) {
	_, key, err := c.activation()
	if err != nil {
		return nil, err
	}
	var res DeactivateResult
	if _, err := c.call(ctx, "/v1/deactivate", map[string]string{}, key, true, &res); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range []string{StoreLease, StoreCertificate, StoreCAChain, StoreActivationID} {
		if err := c.store.Save(name, nil); err != nil {
			return nil, err
		}
	}
	c.credentialsChangedLocked()
	return &res, nil
}

// Renew gets a new certificate. With newKey a new device key is generated for it; the request is
// still signed with the current key (the one the current certificate holds), and the new key is
// stored only once the server issued its certificate. (Key and certificate are two Storage
// entries; a crash between the two saves leaves them mismatched, and the device then re-activates
// with the same fingerprint.)
func (c *Client) Renew(ctx context.Context, newKey bool) (*RenewResult, error) {
	actID, key, err := c.activation()
	if err != nil {
		return nil, err
	}
	certKey := key
	if newKey {
		if certKey, err = GenerateKey(c.cfg.KeyType); err != nil {
			return nil, err
		}
	}
	csr, err := CreateCSR(certKey)
	if err != nil {
		return nil, err
	}
	var res RenewResult
	if _, err := c.call(ctx, "/v1/certificates/renew", map[string]string{"csr": csr}, key, true, &res); err != nil {
		return nil, err
	}
	if err := checkCertificate(res.Certificate, certKey, actID); err != nil {
		return nil, err
	}
	lease, err := c.verifyOnlineLease(ctx, res.Lease, certKey, actID)
	if err != nil {
		return nil, err
	}
	res.LeaseInfo = lease
	c.mu.Lock()
	defer c.mu.Unlock()
	if newKey {
		pemKey, err := MarshalPrivateKeyPEM(certKey)
		if err != nil {
			return nil, err
		}
		if err := c.store.Save(StoreDeviceKey, pemKey); err != nil {
			return nil, err
		}
	}
	for _, e := range []struct{ name, v string }{{StoreCertificate, res.Certificate}, {StoreCAChain, res.CAChain}, {StoreLease, res.Lease}} {
		if err := c.store.Save(e.name, []byte(e.v)); err != nil {
			return nil, err
		}
	}
	c.credentialsChangedLocked()
	if err := c.recordSeenLocked(lease.IssuedAt); err != nil {
		return nil, err
	}
	return &res, nil
}

// Status asks about a license by its key. It signs with the device key when there is one, and
// with a throwaway key otherwise (the server then skips the signature check, section 2 step 5).
func (c *Client) Status(ctx context.Context, licenseKey string) (*StatusResult, error) {
	key, err := c.deviceKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		if key, err = GenerateKey(KeyP256); err != nil {
			return nil, err
		}
	}
	var res StatusResult
	if _, err := c.call(ctx, "/v1/status", map[string]string{"license_key": licenseKey}, key, false, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// CheckOffline verifies the stored lease for product ("" means Config.Product, else the lease's
// own product) without the network, using the trusted keys and issuer known locally. The device
// clock may lag the server's by up to MaxSkew. On success the current time is recorded as the
// newest seen, so a clock set back later is detected (ErrClockRollback).
func (c *Client) CheckOffline(product string) (*Lease, error) {
	data, err := load(c.store, StoreLease)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, ErrNoLease
	}
	token := string(data)
	if product == "" {
		product = c.product()
	}
	issuer := c.cfg.Issuer
	if issuer == "" {
		list, err := c.storedKeyList()
		if err != nil {
			return nil, err
		}
		if list == nil || list.Issuer == "" {
			return nil, errors.New("samplero: no issuer known offline (set Config.Issuer or fetch the key list once)")
		}
		issuer = list.Issuer
	}
	keys, err := c.trustedKeys()
	if err != nil {
		return nil, err
	}
	key, err := c.deviceKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, ErrNotActivated
	}
	tp, err := httpsig.Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	seen, err := c.newestSeen()
	if err != nil {
		return nil, err
	}
	now := c.now()
	lease, err := VerifyLease(token, LeaseCheck{
		Keys: keys, Issuer: issuer, Fingerprint: c.cfg.Fingerprint, Thumbprint: tp, Product: product,
		Now: now, NewestSeen: seen, Skew: MaxSkew,
	})
	if err != nil {
		return nil, err
	}
	if actID, err := load(c.store, StoreActivationID); err != nil {
		return nil, err
	} else if string(actID) != lease.ActivationID {
		return nil, fmt.Errorf("%w: lease is for activation %q", ErrAnswerMismatch, lease.ActivationID)
	}
	if err := c.recordSeen(now); err != nil {
		return nil, err
	}
	return lease, nil
}
