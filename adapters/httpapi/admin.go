package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

const localsAdmin = "samplero.admin"

// param and query copy values out of Fiber's reused buffers before they travel to a port.
func param(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }
func query(c *fiber.Ctx, name string) string { return strings.Clone(c.Query(name)) }

// adminAuth admits a request whose bearer token hashes (SHA-256) to a stored admin token. Anything
// else is 401 UNAUTHORIZED, with no hint of why.
func (a *api) adminAuth(c *fiber.Ctx) error {
	unauthorized := func() error {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="samplero-admin"`)
		return errs.E(errs.Unauthenticated, errs.CodeUnauthorized, "a valid admin bearer token is required")
	}
	h := c.Get(fiber.HeaderAuthorization)
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || a.deps.AdminTokens == nil {
		return unauthorized()
	}
	token := strings.TrimSpace(h[len(scheme):])
	if token == "" {
		return unauthorized()
	}
	sum := sha256.Sum256([]byte(token))
	t, err := a.deps.AdminTokens.ByHash(c.UserContext(), sum[:])
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return unauthorized()
		}
		return err
	}
	c.Locals(localsAdmin, t)
	return c.Next()
}

func adminActor(c *fiber.Ctx) string {
	if t, ok := c.Locals(localsAdmin).(ports.AdminToken); ok {
		if t.Name != "" {
			return "admin:" + t.Name
		}
		return "admin:" + t.ID
	}
	return "admin"
}

// decodeStrict reads a JSON object into v: unknown fields, wrong types and trailing data are
// VALIDATION_FAILED with a detail naming the problem. An empty body reads as {}.
func decodeStrict(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return errs.Validation("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonValidation(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errs.Validation("the body must hold exactly one JSON object")
	}
	return nil
}

func jsonValidation(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return errs.Validation("the body must be a JSON object")
		}
		return errs.Validation(fmt.Sprintf("%s must be %s, not %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Validation("the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errs.Validation("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errs.Validation("the body does not match the expected shape")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "ptr":
		return "a value of another type"
	}
	return "another type"
}

// field is a required body field and whether the request had it.
type field struct {
	name    string
	present bool
}

// required names the first missing field, for a VALIDATION_FAILED detail.
func required(fields ...field) error {
	for _, f := range fields {
		if !f.present {
			return errs.Validation(f.name + " is required")
		}
	}
	return nil
}

// --- products ---

type policyRequest struct {
	MaxActivations       *int    `json:"max_activations"`
	FirstActivation      *string `json:"first_activation"`
	HeartbeatIntervalS   *int64  `json:"heartbeat_interval_s"`
	GracePeriodS         *int64  `json:"grace_period_s"`
	CertificateValidityS *int64  `json:"certificate_validity_s"`
	TransfersPer30d      *int    `json:"transfers_per_30d"`
	DurationS            *int64  `json:"duration_s"`
}

type productRequest struct {
	Slug       *string        `json:"slug"`
	Name       *string        `json:"name"`
	Type       *string        `json:"type"`
	PriceCents *int64         `json:"price_cents"`
	Currency   *string        `json:"currency"`
	Policy     *policyRequest `json:"policy"`
}

type policyBody struct {
	MaxActivations       int    `json:"max_activations"`
	FirstActivation      string `json:"first_activation"`
	HeartbeatIntervalS   int64  `json:"heartbeat_interval_s"`
	GracePeriodS         int64  `json:"grace_period_s"`
	CertificateValidityS int64  `json:"certificate_validity_s"`
	TransfersPer30d      int    `json:"transfers_per_30d"`
	DurationS            *int64 `json:"duration_s"`
}

type productBody struct {
	Slug         string     `json:"slug"`
	Name         string     `json:"name"`
	Type         string     `json:"type"`
	PriceCents   int64      `json:"price_cents"`
	Currency     string     `json:"currency"`
	Entitlements []string   `json:"entitlements"`
	Policy       policyBody `json:"policy"`
	CreatedAt    *string    `json:"created_at"`
	UpdatedAt    *string    `json:"updated_at"`
}

func productOf(p license.ProductRecord) productBody {
	ent := p.Entitlements
	if ent == nil {
		ent = []string{}
	}
	var duration *int64
	if p.Policy.Duration > 0 {
		d := seconds(p.Policy.Duration)
		duration = &d
	}
	return productBody{
		Slug: p.Slug, Name: p.Name, Type: p.Type, PriceCents: p.PriceCents, Currency: p.Currency,
		Entitlements: ent,
		Policy: policyBody{
			MaxActivations:       p.Policy.MaxActivations,
			FirstActivation:      string(p.Policy.FirstActivation),
			HeartbeatIntervalS:   seconds(p.Policy.HeartbeatInterval),
			GracePeriodS:         seconds(p.Policy.GracePeriod),
			CertificateValidityS: seconds(p.Policy.CertificateValidity),
			TransfersPer30d:      p.Policy.TransfersPer30d,
			DurationS:            duration,
		},
		CreatedAt: rfc3339(p.CreatedAt),
		UpdatedAt: rfc3339(p.UpdatedAt),
	}
}

// putProduct: POST /v1/admin/products → 201 the product. With Commerce the catalog owns products
// (and hands the policy to licensing in the same transaction): putCatalogProduct.
func (a *api) putProduct(c *fiber.Ctx) error {
	if a.deps.Commerce != nil {
		return a.putCatalogProduct(c)
	}
	var req productRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if err := required(field{"slug", req.Slug != nil}, field{"name", req.Name != nil}, field{"type", req.Type != nil},
		field{"price_cents", req.PriceCents != nil}, field{"currency", req.Currency != nil}, field{"policy", req.Policy != nil}); err != nil {
		return err
	}
	p := req.Policy
	if err := required(field{"policy.max_activations", p.MaxActivations != nil}, field{"policy.first_activation", p.FirstActivation != nil},
		field{"policy.heartbeat_interval_s", p.HeartbeatIntervalS != nil}, field{"policy.grace_period_s", p.GracePeriodS != nil}); err != nil {
		return err
	}
	rec, err := a.deps.Licensing.PutProduct(c.UserContext(), ports.ProductSpec{
		Slug: *req.Slug, Name: *req.Name, Type: *req.Type, PriceCents: *req.PriceCents, Currency: *req.Currency,
		Policy: ports.PolicySpec{
			MaxActivations:       *p.MaxActivations,
			FirstActivation:      *p.FirstActivation,
			HeartbeatIntervalS:   *p.HeartbeatIntervalS,
			GracePeriodS:         *p.GracePeriodS,
			CertificateValidityS: p.CertificateValidityS,
			TransfersPer30d:      p.TransfersPer30d,
			DurationS:            p.DurationS,
		},
	})
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, productOf(rec))
}

// --- licenses ---

type createLicenseRequest struct {
	Product        *string `json:"product"`
	OwnerEmail     *string `json:"owner_email"`
	MaxActivations *int    `json:"max_activations"`
	ExpiresAt      *string `json:"expires_at"`
}

type activationBody struct {
	ID                string  `json:"id"`
	LicenseID         string  `json:"license_id"`
	Status            string  `json:"status"`
	DeviceFingerprint string  `json:"device_fingerprint"`
	DeviceName        *string `json:"device_name"`
	Platform          string  `json:"platform"`
	PluginVersion     *string `json:"plugin_version"`
	LastHeartbeatAt   *string `json:"last_heartbeat_at"`
	CertificateSerial *string `json:"certificate_serial"`
	CreatedAt         *string `json:"created_at"`
}

type licenseBody struct {
	ID             string           `json:"id"`
	Key            string           `json:"key"`
	Status         string           `json:"status"`
	Product        string           `json:"product"`
	OwnerEmail     *string          `json:"owner_email"`
	MaxActivations int              `json:"max_activations"`
	SeatsUsed      int              `json:"seats_used"`
	ExpiresAt      *string          `json:"expires_at"`
	CreatedAt      *string          `json:"created_at"`
	Activations    []activationBody `json:"activations"`
}

type claimBody struct {
	ID                string  `json:"id"`
	Status            string  `json:"status"`
	LicenseID         string  `json:"license_id"`
	DeviceName        *string `json:"device_name"`
	Platform          string  `json:"platform"`
	DeviceFingerprint string  `json:"device_fingerprint"`
	RequestAddr       *string `json:"request_addr"`
	CreatedAt         *string `json:"created_at"`
	ExpiresAt         *string `json:"expires_at"`
}

type pageBody[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// renderPage answers one page of a list: the items mapped to their bodies and the next cursor.
func renderPage[V, B any](c *fiber.Ctx, items []V, next string, body func(V) B) error {
	out := pageBody[B]{Items: make([]B, 0, len(items)), NextCursor: nullable(next)}
	for _, v := range items {
		out.Items = append(out.Items, body(v))
	}
	return render(c, fiber.StatusOK, out)
}

func activationOf(v ports.ActivationView) activationBody {
	return activationBody{
		ID:                v.ID,
		LicenseID:         v.LicenseID,
		Status:            v.Status,
		DeviceFingerprint: v.DeviceFingerprint,
		DeviceName:        nullable(v.DeviceName),
		Platform:          v.Platform,
		PluginVersion:     nullable(v.PluginVersion),
		LastHeartbeatAt:   rfc3339p(v.LastHeartbeatAt),
		CertificateSerial: nullable(v.CertificateSerial),
		CreatedAt:         rfc3339(v.CreatedAt),
	}
}

func licenseOf(v ports.LicenseView) licenseBody {
	acts := make([]activationBody, 0, len(v.Activations))
	for _, x := range v.Activations {
		acts = append(acts, activationOf(x))
	}
	return licenseBody{
		ID:             v.ID,
		Key:            v.Key,
		Status:         v.Status,
		Product:        v.Product,
		OwnerEmail:     nullable(v.OwnerEmail),
		MaxActivations: v.MaxActivations,
		SeatsUsed:      v.SeatsUsed,
		ExpiresAt:      rfc3339p(v.ExpiresAt),
		CreatedAt:      rfc3339(v.CreatedAt),
		Activations:    acts,
	}
}

func claimOf(v ports.ClaimView) claimBody {
	return claimBody{
		ID:                v.ID,
		Status:            v.Status,
		LicenseID:         v.LicenseID,
		DeviceName:        nullable(v.DeviceName),
		Platform:          v.Platform,
		DeviceFingerprint: v.Fingerprint,
		RequestAddr:       nullable(v.RequestAddr),
		CreatedAt:         rfc3339(v.CreatedAt),
		ExpiresAt:         rfc3339(v.ExpiresAt),
	}
}

// createLicense: POST /v1/admin/licenses → 201 the license. An Idempotency-Key header makes a retry
// return the license the first call created.
func (a *api) createLicense(c *fiber.Ctx) error {
	var req createLicenseRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if req.Product == nil || *req.Product == "" {
		return errs.Validation("product is required")
	}
	cmd := ports.CreateLicenseCommand{
		Product:        *req.Product,
		MaxActivations: req.MaxActivations,
		IdempotencyKey: strings.Clone(c.Get("Idempotency-Key")),
	}
	if req.OwnerEmail != nil {
		cmd.OwnerEmail = *req.OwnerEmail
	}
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil {
			return errs.Validation("expires_at must be an RFC 3339 time")
		}
		t = t.UTC()
		cmd.ExpiresAt = &t
	}
	v, err := a.deps.Licensing.CreateLicense(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, licenseOf(v))
}

// page reads limit (1..200) and cursor from the query.
func page(c *fiber.Ctx) (ports.Page, error) {
	p := ports.Page{Cursor: query(c, "cursor")}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return p, errs.Validation("limit must be an integer from 1 to 200")
		}
		p.Limit = n
	}
	return p, nil
}

// listLicenses: GET /v1/admin/licenses?product=&status=&owner_email=&limit=&cursor=.
func (a *api) listLicenses(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := ports.LicenseFilter{Product: query(c, "product"), OwnerEmail: query(c, "owner_email"), Page: p}
	if s := query(c, "status"); s != "" {
		switch st := license.LicenseStatus(s); st {
		// The filter is on the stored status: "expired" is derived and never stored.
		case license.LicenseActive, license.LicenseSuspended, license.LicenseRevoked:
			f.Status = st
		default:
			return errs.Validation("status must be active, suspended or revoked")
		}
	}
	items, next, err := a.deps.Licensing.ListLicenses(c.UserContext(), f)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, licenseOf)
}

// getLicense: GET /v1/admin/licenses/{id}.
func (a *api) getLicense(c *fiber.Ctx) error {
	v, err := a.deps.Licensing.GetLicense(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, licenseOf(v))
}

type actionRequest struct {
	Reason *string `json:"reason"`
}

func (r actionRequest) reason() string {
	if r.Reason == nil {
		return ""
	}
	return *r.Reason
}

// changeLicenseStatus: POST /v1/admin/licenses/{id}/revoke|suspend|reinstate → 200 the license.
func (a *api) changeLicenseStatus(c *fiber.Ctx) error {
	var req actionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	v, err := a.deps.Licensing.ChangeLicenseStatus(c.UserContext(), param(c, "id"), param(c, "action"), req.reason())
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, licenseOf(v))
}

// listActivations: GET /v1/admin/activations?license_id=&status=&fingerprint=&limit=&cursor=.
func (a *api) listActivations(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := ports.ActivationFilter{LicenseID: query(c, "license_id"), Fingerprint: query(c, "fingerprint"), Page: p}
	if s := query(c, "status"); s != "" {
		switch st := license.ActivationStatus(s); st {
		case license.ActivationActive, license.ActivationDeactivated, license.ActivationRevoked, license.ActivationSuperseded:
			f.Status = st
		default:
			return errs.Validation("status must be active, deactivated, revoked or superseded")
		}
	}
	items, next, err := a.deps.Licensing.ListActivations(c.UserContext(), f)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, activationOf)
}

// releaseSeat: POST /v1/admin/activations/{id}/release-seat → 200 the license.
func (a *api) releaseSeat(c *fiber.Ctx) error {
	var req actionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	v, err := a.deps.Licensing.ReleaseSeat(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, licenseOf(v))
}

// decideClaim: POST /v1/admin/claims/{id}/approve|reject → 200 the claim.
func (a *api) decideClaim(c *fiber.Ctx) error {
	var req actionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	v, err := a.deps.Licensing.DecideClaim(c.UserContext(), param(c, "id"), c.Params("decision") == "approve", adminActor(c))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, claimOf(v))
}
