package httpapi

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// The customer API: the signed-in customer's account, licenses, devices and claims (orders and
// downloads are in me_orders.go). Every object is asked for with the owner's verified e-mail: the
// licensing service answers another owner's license, device or claim exactly as a missing one
// (LICENSE_NOT_FOUND, ACTIVATION_NOT_FOUND, CLAIM_NOT_FOUND), so ids and keys cannot be probed.

type ownerDeviceBody struct {
	activationBody
	TrustLevel     int     `json:"trust_level"`
	SeatHeldUntil  *string `json:"seat_held_until"`
	EndedAt        *string `json:"ended_at"`
	CanReleaseSeat bool    `json:"can_release_seat"`
}

type ownerLicenseBody struct {
	ID             string            `json:"id"`
	MaskedKey      string            `json:"masked_key"`
	Status         string            `json:"status"`
	Product        string            `json:"product"`
	MaxActivations int               `json:"max_activations"`
	SeatsUsed      int               `json:"seats_used"`
	ExpiresAt      *string           `json:"expires_at"`
	CreatedAt      *string           `json:"created_at"`
	Devices        []ownerDeviceBody `json:"devices"`
	PendingClaims  []claimBody       `json:"pending_claims"`
}

func ownerLicenseOf(v ports.OwnerLicenseView) ownerLicenseBody {
	b := ownerLicenseBody{
		ID: v.ID, MaskedKey: v.MaskedKey, Status: v.Status, Product: v.Product, MaxActivations: v.MaxActivations,
		SeatsUsed: v.SeatsUsed, ExpiresAt: rfc3339p(v.ExpiresAt), CreatedAt: rfc3339(v.CreatedAt),
		Devices: make([]ownerDeviceBody, 0, len(v.Devices)), PendingClaims: make([]claimBody, 0, len(v.Claims)),
	}
	for _, d := range v.Devices {
		b.Devices = append(b.Devices, ownerDeviceBody{
			activationBody: activationOf(d.ActivationView), TrustLevel: d.TrustLevel,
			SeatHeldUntil: rfc3339p(d.SeatHeldUntil), EndedAt: rfc3339p(d.EndedAt), CanReleaseSeat: d.CanReleaseSeat,
		})
	}
	for _, cl := range v.Claims {
		b.PendingClaims = append(b.PendingClaims, claimOf(cl))
	}
	return b
}

// meAccount: GET /v1/me → the account.
func (a *api) meAccount(c *fiber.Ctx) error {
	acc, err := a.deps.Customers.Account(c.UserContext(), session(c).ident.AccountID)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, accountOf(acc))
}

// mePassword: PUT /v1/me/password {"password"} → 204. Other sessions stay signed in; the customer
// signs them out with sign-out-everywhere.
func (a *api) mePassword(c *fiber.Ctx) error {
	var req struct {
		Password *string `json:"password"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	// The customers service owns the password rules (PASSWORD_TOO_SHORT, PASSWORD_TOO_LONG, …).
	if req.Password == nil || *req.Password == "" {
		return errs.Validation("password is required")
	}
	if err := a.deps.Customers.SetPassword(c.UserContext(), session(c).ident.AccountID, *req.Password); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// meLicenses: GET /v1/me/licenses → every license of the customer (one page: an owner has few).
func (a *api) meLicenses(c *fiber.Ctx) error {
	ls, err := a.deps.Licensing.OwnerLicenses(c.UserContext(), session(c).ident.Email)
	if err != nil {
		return err
	}
	return renderPage(c, ls, "", ownerLicenseOf)
}

// meLicense: GET /v1/me/licenses/{ref} → one license, by id or by key.
func (a *api) meLicense(c *fiber.Ctx) error {
	v, err := a.deps.Licensing.OwnerLicense(c.UserContext(), session(c).ident.Email, param(c, "ref"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, ownerLicenseOf(v))
}

// meRevealKey: POST /v1/me/licenses/{id}/reveal-key → {"key"}. A POST, so that the key is never in
// a URL, a log line or a cache, and a cookie request needs our origin.
func (a *api) meRevealKey(c *fiber.Ctx) error {
	if err := emptyBody(c); err != nil {
		return err
	}
	key, err := a.deps.Licensing.RevealKey(c.UserContext(), session(c).ident.Email, param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, struct {
		Key string `json:"key"`
	}{key})
}

// meReissueKey: POST /v1/me/licenses/{id}/reissue-key → {"license","key"}: the old key stops
// working at once; devices already active keep working.
func (a *api) meReissueKey(c *fiber.Ctx) error {
	if err := emptyBody(c); err != nil {
		return err
	}
	v, key, err := a.deps.Licensing.ReissueKey(c.UserContext(), session(c).ident.Email, param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, struct {
		License ownerLicenseBody `json:"license"`
		Key     string           `json:"key"`
	}{ownerLicenseOf(v), key})
}

// meRenameDevice: PATCH /v1/me/devices/{id} {"name"} → the device.
func (a *api) meRenameDevice(c *fiber.Ctx) error {
	var req struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		return errs.Validation("name is required")
	}
	name := strings.TrimSpace(*req.Name)
	if err := license.ValidateDeviceName(name); err != nil {
		return err
	}
	v, err := a.deps.Licensing.RenameDevice(c.UserContext(), session(c).ident.Email, param(c, "id"), name)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, activationOf(v))
}

// meRevokeDevice: POST /v1/me/devices/{id}/revoke → the license: the seat is free at once and the
// device's certificate is revoked.
func (a *api) meRevokeDevice(c *fiber.Ctx) error {
	if err := emptyBody(c); err != nil {
		return err
	}
	v, err := a.deps.Licensing.RevokeDevice(c.UserContext(), session(c).ident.Email, param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, ownerLicenseOf(v))
}

// meReleaseSeat: POST /v1/me/devices/{id}/release-seat → the license: the seat an ended device
// still holds (too many transfers, PROTOCOL.md section 5) is free at once.
func (a *api) meReleaseSeat(c *fiber.Ctx) error {
	if err := emptyBody(c); err != nil {
		return err
	}
	v, err := a.deps.Licensing.OwnerReleaseSeat(c.UserContext(), session(c).ident.Email, param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, ownerLicenseOf(v))
}

// meClaims: GET /v1/me/claims → the pending claims of every license of the customer.
func (a *api) meClaims(c *fiber.Ctx) error {
	ls, err := a.deps.Licensing.OwnerLicenses(c.UserContext(), session(c).ident.Email)
	if err != nil {
		return err
	}
	var claims []ports.ClaimView
	for _, l := range ls {
		claims = append(claims, l.Claims...)
	}
	return renderPage(c, claims, "", claimOf)
}

// meDecideClaim: POST /v1/me/claims/{id}/approve|reject → the claim.
func (a *api) meDecideClaim(c *fiber.Ctx) error {
	if err := emptyBody(c); err != nil {
		return err
	}
	v, err := a.deps.Licensing.OwnerDecideClaim(c.UserContext(), session(c).ident.Email, param(c, "id"), c.Params("decision") == "approve")
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, claimOf(v))
}

// emptyBody admits the action calls' body: none, or an empty JSON object.
func emptyBody(c *fiber.Ctx) error {
	var req struct{}
	return decodeStrict(c.Request().Body(), &req)
}
