package httpapi

import (
	"encoding/pem"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// crlMaxAge is how long a cache between us and a proxy may keep a list. It is short: a list is
// re-signed as soon as a certificate is revoked, and a cache must not hide that for long.
const crlMaxAge = "public, max-age=60"

// crl serves GET /v1/pki/crl/{intermediate id}.crl (DER, application/pkix-crl, RFC 5280 section
// 4.2.1.13 and RFC 2585) and .pem (the same list PEM-encoded, what nginx's ssl_crl reads). The
// lists come from ports.CRLPublisher, which the PKI service passed as Deps.Issuer implements; an
// issuer that does not is a server without revocation lists (503 CRL_NOT_CONFIGURED). The answer
// is unsigned: the list carries the intermediate's own signature, which is what relying parties check.
func (a *api) crl(c *fiber.Ctx) error {
	id, ext, ok := cutLast(c.Params("file"), ".")
	if !ok || id == "" || (ext != "crl" && ext != "pem") {
		return errs.E(errs.NotFound, ports.CodeCRLNotFound, "no such revocation list: ask for {intermediate id}.crl or .pem")
	}
	pub, ok := a.deps.Issuer.(ports.CRLPublisher)
	if !ok {
		return errs.E(errs.Unavailable, ports.CodeCRLNotConfigured, "certificate revocation lists are not configured")
	}
	list, err := pub.CRL(c.UserContext(), strings.Clone(id))
	if err != nil {
		return err
	}
	// One tag per signed list and encoding: a refresh job can send If-None-Match and skip the
	// reload when nothing changed.
	etag := `"` + list.Number.Text(16) + "-" + ext + `"`
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, crlMaxAge)
	c.Set(fiber.HeaderLastModified, list.ThisUpdate.UTC().Format(http.TimeFormat))
	c.Set(fiber.HeaderExpires, list.NextUpdate.UTC().Format(http.TimeFormat))
	if inm := c.Get(fiber.HeaderIfNoneMatch); inm != "" && etagMatches(inm, etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	if ext == "pem" {
		c.Set(fiber.HeaderContentType, "application/x-pem-file")
		return c.Send(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: list.DER}))
	}
	c.Set(fiber.HeaderContentType, "application/pkix-crl")
	return c.Send(list.DER)
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// etagMatches reports whether an If-None-Match header names etag (or is "*"); weak tags compare
// equal to strong ones, as RFC 9110 section 13.1.2 asks for this header.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
