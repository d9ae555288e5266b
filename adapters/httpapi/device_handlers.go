package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

// The DTOs below are the bodies of PROTOCOL.md section 6, field for field. Times are rendered by
// rfc3339 (whole seconds, Z) and are null, never absent, where there is none.

type grantBody struct {
	Status              string  `json:"status"`
	ActivationID        string  `json:"activation_id"`
	Certificate         string  `json:"certificate"`
	CAChain             string  `json:"ca_chain"`
	CertificateSerial   string  `json:"certificate_serial"`
	CertificateNotAfter *string `json:"certificate_not_after"`
	Lease               string  `json:"lease"`
	HeartbeatIntervalS  int64   `json:"heartbeat_interval_s"`
	GracePeriodS        int64   `json:"grace_period_s"`
	MTLSURL             *string `json:"mtls_url"`
	TrustLevel          int     `json:"trust_level"`
}

type pendingBody struct {
	Status     string  `json:"status"`
	ClaimID    string  `json:"claim_id"`
	ExpiresAt  *string `json:"expires_at"`
	NextStep   string  `json:"next_step,omitempty"`
	TrustLevel int     `json:"trust_level"`
}

type licenseSummaryBody struct {
	ID           string   `json:"id"`
	Product      string   `json:"product"`
	ExpiresAt    *string  `json:"expires_at"`
	Entitlements []string `json:"entitlements"`
}

type validateBody struct {
	Valid                 bool               `json:"valid"`
	Status                string             `json:"status"`
	Action                string             `json:"action,omitempty"`
	ActivationID          string             `json:"activation_id"`
	License               licenseSummaryBody `json:"license"`
	TrustLevel            int                `json:"trust_level"`
	HeartbeatDueAt        *string            `json:"heartbeat_due_at"`
	GracePeriodRemainingS int64              `json:"grace_period_remaining_s"`
}

type heartbeatBody struct {
	Valid                 bool    `json:"valid"`
	Status                string  `json:"status"`
	PreviousStatus        string  `json:"previous_status,omitempty"`
	Recovered             bool    `json:"recovered"`
	Lease                 *string `json:"lease"`
	HeartbeatDueAt        *string `json:"heartbeat_due_at"`
	GracePeriodRemainingS int64   `json:"grace_period_remaining_s"`
	RenewCertificate      bool    `json:"renew_certificate"`
	TrustLevel            int     `json:"trust_level"`
}

type deactivateBody struct {
	Status         string  `json:"status"`
	SeatsUsed      int     `json:"seats_used"`
	SeatsTotal     int     `json:"seats_total"`
	SeatReleasedAt *string `json:"seat_released_at"`
	TrustLevel     int     `json:"trust_level"`
}

type renewBody struct {
	Certificate         string  `json:"certificate"`
	CAChain             string  `json:"ca_chain"`
	CertificateSerial   string  `json:"certificate_serial"`
	CertificateNotAfter *string `json:"certificate_not_after"`
	Lease               string  `json:"lease"`
	TrustLevel          int     `json:"trust_level"`
}

type statusBody struct {
	Status     string  `json:"status"`
	SeatsUsed  int     `json:"seats_used"`
	SeatsTotal int     `json:"seats_total"`
	ExpiresAt  *string `json:"expires_at"`
	TrustLevel int     `json:"trust_level"`
}

type keyBody struct {
	KID         string  `json:"kid"`
	Alg         string  `json:"alg"`
	PublicKey   string  `json:"public_key"`
	NotBefore   *string `json:"not_before"`
	NotAfter    *string `json:"not_after"`
	Status      string  `json:"status"`
	Endorsement *string `json:"endorsement"`
}

type keysBody struct {
	Issuer  string    `json:"issuer"`
	Keys    []keyBody `json:"keys"`
	CAChain string    `json:"ca_chain"`
}

// rfc3339 renders t as PROTOCOL.md section 1 wants; nil for the zero time.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
	return &s
}

func rfc3339p(t *time.Time) *string {
	if t == nil {
		return nil
	}
	return rfc3339(*t)
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// render writes v as JSON with status.
func render(c *fiber.Ctx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return errs.Internalf("httpapi: encoding the answer: %w", err)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBodyRaw(b)
	return nil
}

func (a *api) grant(g *ports.ActivationGrant) grantBody {
	mtlsURL := g.MTLSURL // the service's setting; the adapter's is the fallback
	if mtlsURL == "" {
		mtlsURL = a.cfg.MTLSURL
	}
	return grantBody{
		Status:              "active",
		ActivationID:        g.ActivationID,
		Certificate:         g.CertificatePEM,
		CAChain:             g.CAChainPEM,
		CertificateSerial:   g.CertificateSerial,
		CertificateNotAfter: rfc3339(g.CertificateNotAfter),
		Lease:               g.Lease,
		HeartbeatIntervalS:  seconds(g.HeartbeatInterval),
		GracePeriodS:        seconds(g.GracePeriod),
		MTLSURL:             nullable(mtlsURL),
		TrustLevel:          3,
	}
}

// activateResult renders an activate or bootstrap answer. fresh is the status of a new grant (201
// for activate; bootstrap's approved answer is 200).
func (a *api) activateResult(c *fiber.Ctx, endpoint string, res ports.ActivateResult, fresh int, nextStep string) error {
	switch {
	case res.Grant != nil:
		status, result := fiber.StatusOK, "existing"
		if res.Grant.Created {
			status, result = fresh, "created"
		}
		a.metrics.activations.WithLabelValues(endpoint, result).Inc()
		return render(c, status, a.grant(res.Grant))
	case res.Pending != nil:
		a.metrics.activations.WithLabelValues(endpoint, "pending").Inc()
		return render(c, fiber.StatusAccepted, pendingBody{
			Status:     "pending_confirmation",
			ClaimID:    res.Pending.ClaimID,
			ExpiresAt:  rfc3339(res.Pending.ExpiresAt),
			NextStep:   nextStep,
			TrustLevel: 3,
		})
	default:
		return errs.Internalf("httpapi: %s returned neither a grant nor a pending claim", endpoint)
	}
}

func (a *api) countActivationError(endpoint string, err error) {
	code := errs.CodeOf(err)
	a.metrics.activations.WithLabelValues(endpoint, code).Inc()
	if code == license.CodeActivationLimitExceeded {
		a.metrics.seatsRefused.Inc()
	}
}

// activate: POST /v1/activate.
func (a *api) activate(c *fiber.Ctx, r *deviceRequest) error {
	cmd := ports.ActivateCommand{RequestAddr: r.addr, Identity: r.id}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"license_key", &cmd.LicenseKey},
		{"device_fingerprint", &cmd.Fingerprint},
		{"platform", &cmd.Platform},
		{"plugin_version", &cmd.PluginVersion},
		{"csr", &cmd.CSRPEM},
		{"device_name", &cmd.DeviceName},
		{"product", &cmd.Product},
	} {
		v, err := r.str(f.name)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	res, err := a.deps.Licensing.Activate(c.UserContext(), cmd)
	if err != nil {
		a.countActivationError("activate", err)
		return err
	}
	return a.activateResult(c, "activate", res, fiber.StatusCreated, "approve_in_account")
}

// bootstrap: POST /v1/bootstrap.
func (a *api) bootstrap(c *fiber.Ctx, r *deviceRequest) error {
	res, err := a.deps.Licensing.Bootstrap(c.UserContext(), r.id)
	if err != nil {
		a.countActivationError("bootstrap", err)
		return err
	}
	// An approved claim answers 200 with activate's 201 body.
	return a.activateResult(c, "bootstrap", res, fiber.StatusOK, "")
}

// validate: POST /v1/validate.
func (a *api) validate(c *fiber.Ctx, r *deviceRequest) error {
	cmd := ports.ValidateCommand{Identity: r.id}
	var err error
	if cmd.Product, err = r.str("product"); err != nil {
		return err
	}
	if cmd.PluginVersion, err = r.str("plugin_version"); err != nil {
		return err
	}
	res, err := a.deps.Licensing.Validate(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	a.metrics.validations.WithLabelValues(strconv.FormatBool(res.Valid), res.Status).Inc()
	ent := res.License.Entitlements
	if ent == nil {
		ent = []string{}
	}
	return render(c, fiber.StatusOK, validateBody{
		Valid:        res.Valid,
		Status:       res.Status,
		Action:       res.Action,
		ActivationID: res.ActivationID,
		License: licenseSummaryBody{
			ID:           res.License.ID,
			Product:      res.License.Product,
			ExpiresAt:    rfc3339p(res.License.ExpiresAt),
			Entitlements: ent,
		},
		TrustLevel:            r.trustLevel(),
		HeartbeatDueAt:        rfc3339(res.HeartbeatDueAt),
		GracePeriodRemainingS: seconds(res.GracePeriodRemaining),
	})
}

// heartbeat: POST /v1/heartbeat.
func (a *api) heartbeat(c *fiber.Ctx, r *deviceRequest) error {
	cmd := ports.HeartbeatCommand{Identity: r.id}
	var err error
	if cmd.PluginVersion, err = r.str("plugin_version"); err != nil {
		return err
	}
	res, err := a.deps.Licensing.Heartbeat(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	if !res.Valid {
		// Only the status is meaningful: the license refused the heartbeat and nothing moved.
		return render(c, fiber.StatusOK, heartbeatBody{Status: res.Status, TrustLevel: r.trustLevel()})
	}
	body := heartbeatBody{
		Valid:                 true,
		Status:                res.Status,
		Recovered:             res.Recovered,
		Lease:                 nullable(res.Lease),
		HeartbeatDueAt:        rfc3339(res.HeartbeatDueAt),
		GracePeriodRemainingS: seconds(res.GracePeriodRemaining),
		RenewCertificate:      res.RenewCertificate,
		TrustLevel:            r.trustLevel(),
	}
	if res.Recovered {
		body.PreviousStatus = res.PreviousStatus
	}
	return render(c, fiber.StatusOK, body)
}

// deactivate: POST /v1/deactivate.
func (a *api) deactivate(c *fiber.Ctx, r *deviceRequest) error {
	res, err := a.deps.Licensing.Deactivate(c.UserContext(), ports.DeactivateCommand{Identity: r.id})
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, deactivateBody{
		Status:         "deactivated",
		SeatsUsed:      res.SeatsUsed,
		SeatsTotal:     res.SeatsTotal,
		SeatReleasedAt: rfc3339(res.SeatReleasedAt),
		TrustLevel:     r.trustLevel(),
	})
}

// renew: POST /v1/certificates/renew.
func (a *api) renew(c *fiber.Ctx, r *deviceRequest) error {
	csr, err := r.str("csr")
	if err != nil {
		return err
	}
	if csr == "" {
		return errs.Validation("csr is required")
	}
	res, err := a.deps.Licensing.Renew(c.UserContext(), ports.RenewCommand{Identity: r.id, CSRPEM: csr})
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, renewBody{
		Certificate:         res.CertificatePEM,
		CAChain:             res.CAChainPEM,
		CertificateSerial:   res.CertificateSerial,
		CertificateNotAfter: rfc3339(res.CertificateNotAfter),
		Lease:               res.Lease,
		TrustLevel:          r.trustLevel(),
	})
}

// status: POST /v1/status.
func (a *api) status(c *fiber.Ctx, r *deviceRequest) error {
	key, _ := r.str("license_key")
	res, err := a.deps.Licensing.Status(c.UserContext(), key)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, statusBody{
		Status:     res.Status,
		SeatsUsed:  res.SeatsUsed,
		SeatsTotal: res.SeatsTotal,
		ExpiresAt:  rfc3339p(res.ExpiresAt),
		TrustLevel: r.trustLevel(),
	})
}

// keys: GET /v1/keys, the published server keys and the CA chain. Unsigned request, signed answer.
func (a *api) keys(c *fiber.Ctx) error {
	ctx := c.UserContext()
	if err := a.limit(ctx, limitKeyAddr+a.clientAddr(c), a.cfg.RateLimits.PerAddress); err != nil {
		return err
	}
	if c.Request().URI().QueryArgs().Has("nonce") && !httpsig.ValidNonce(c.Query("nonce")) {
		return errs.Validation("nonce must be 22 to 64 characters of [A-Za-z0-9_-]")
	}
	chain, err := a.deps.Issuer.CAChainPEM(ctx)
	if err != nil {
		return err
	}
	published := a.deps.Keys.Published()
	out := keysBody{Issuer: a.deps.Keys.Issuer(), Keys: make([]keyBody, 0, len(published)), CAChain: chain}
	for _, k := range published {
		out.Keys = append(out.Keys, keyBody{
			KID:         k.KID,
			Alg:         "ed25519",
			PublicKey:   base64.StdEncoding.EncodeToString(k.PublicKey),
			NotBefore:   rfc3339(k.NotBefore),
			NotAfter:    rfc3339(k.NotAfter),
			Status:      k.Status,
			Endorsement: k.Endorsement,
		})
	}
	return render(c, fiber.StatusOK, out)
}
