package httpapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
)

// This file holds what the commerce handlers share: the body limit every route but the asset upload
// gets, the public routes' rate limit, and small parsing helpers.

const (
	// transferTimeout is how long an asset upload may take to arrive, or a file download to be
	// sent (2 GiB at ~300 KB/s).
	transferTimeout = 2 * time.Hour
	// limitKeyPublic prefixes the per-address counter of the public commerce routes (its own budget,
	// so that browsing the catalog cannot starve a device of activations, and the other way round).
	limitKeyPublic = "public:addr:"
	// webhookBodyLimit caps webhook bodies whatever BodyLimit says (Stripe events are far smaller).
	webhookBodyLimit = 1 << 20
)

// public rate-limits the public commerce routes per client address, with the device API's
// per-address limit (and its switch).
func (a *api) public(c *fiber.Ctx) error {
	if err := a.limit(c.UserContext(), limitKeyPublic+a.clientAddr(c), a.cfg.RateLimits.PerAddress); err != nil {
		return err
	}
	return c.Next()
}

// optional is a PATCH field: absent (set false), null (set, null) or a value.
type optional[T any] struct {
	set  bool
	null bool
	v    T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	// Strict like decodeStrict: the outer decoder's DisallowUnknownFields does not reach here.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&o.v)
}

// value returns the field's value when it was given (non-null), else keep.
func (o optional[T]) value(keep T) T {
	if o.set && !o.null {
		return o.v
	}
	return keep
}

// clearable is value for a field that null clears: null gives the zero value.
func (o optional[T]) clearable(keep T) T {
	if o.set && o.null {
		var zero T
		return zero
	}
	return o.value(keep)
}

// notNull refuses an explicit null for a field that cannot be cleared.
func (o optional[T]) notNull(name string) error {
	if o.set && o.null {
		return errs.Validation(name + " cannot be null")
	}
	return nil
}

// parseTime reads an RFC 3339 time field.
func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errs.Validation(name + " must be an RFC 3339 time")
	}
	return t.UTC(), nil
}

// absoluteHTTPURL checks a return URL: absolute http or https with a host, no user info.
func absoluteHTTPURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(s) > 2048 {
		return errs.E(errs.Invalid, order.CodeInvalidURL, name+" must be an absolute http or https URL")
	}
	return nil
}

// queryBool reads a boolean query parameter: "" is false.
func queryBool(c *fiber.Ctx, name string) (bool, error) {
	switch strings.ToLower(c.Query(name)) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, errs.Validation(name + " must be true or false")
}
