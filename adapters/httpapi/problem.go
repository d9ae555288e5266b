package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
)

// problemTypeBase prefixes the type URI of every problem: the code in lower kebab case follows.
const problemTypeBase = "https://samplero.dev/problems/"

// problem is an RFC 9457 problem details object with the protocol's stable code.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// statusOf maps an error kind to its HTTP status.
func statusOf(k errs.Kind) int {
	switch k {
	case errs.Invalid:
		return fiber.StatusBadRequest
	case errs.Unauthenticated:
		return fiber.StatusUnauthorized
	case errs.Forbidden:
		return fiber.StatusForbidden
	case errs.NotFound:
		return fiber.StatusNotFound
	case errs.Conflict:
		return fiber.StatusConflict
	case errs.Gone:
		return fiber.StatusGone
	case errs.TooLarge:
		return fiber.StatusRequestEntityTooLarge
	case errs.RateLimited:
		return fiber.StatusTooManyRequests
	case errs.Unavailable:
		return fiber.StatusServiceUnavailable
	default:
		return fiber.StatusInternalServerError
	}
}

// codeForStatus names the problems Fiber itself raises (unknown route, wrong method, body too large).
func codeForStatus(status int) (errs.Kind, string) {
	switch status {
	case fiber.StatusNotFound:
		return errs.NotFound, errs.CodeNotFound
	case fiber.StatusMethodNotAllowed:
		return errs.Invalid, "METHOD_NOT_ALLOWED"
	case fiber.StatusRequestEntityTooLarge:
		return errs.TooLarge, codeBodyTooLarge
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return errs.Invalid, "HEADERS_TOO_LARGE"
	case fiber.StatusRequestTimeout:
		return errs.Invalid, "REQUEST_TIMEOUT"
	case fiber.StatusServiceUnavailable:
		return errs.Unavailable, errs.CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return errs.Invalid, "BAD_REQUEST"
	}
	return errs.Internal, errs.CodeInternal
}

// problemType is the stable type URI of a code.
func problemType(code string) string {
	return problemTypeBase + strings.ReplaceAll(strings.ToLower(code), "_", "-")
}

// titles are the short human summaries of the codes clients see most; others use the status text.
var titles = map[string]string{
	codeSignatureRequired:     "Request signature required",
	codeMalformedSignature:    "Malformed request signature",
	codeDigestMismatch:        "Content digest does not match the body",
	codeStaleRequest:          "Request is too old or too far in the future",
	codeInvalidSignature:      "Request signature does not verify",
	codeReplayedNonce:         "Nonce already used",
	codeMTLSRequired:          "Client certificate required",
	codeBodyTooLarge:          "Request body too large",
	errs.CodeValidationFailed: "Request validation failed",
	errs.CodeRateLimited:      "Too many requests",
	errs.CodeUnavailable:      "Service unavailable",
	errs.CodeInternal:         "Internal server error",
	errs.CodeUnauthorized:     "Unauthorized",
}

func titleOf(code string, status int) string {
	if t, ok := titles[code]; ok {
		return t
	}
	return http.StatusText(status)
}

// problemOf turns any error into the problem a client sees. Internal errors get a generic detail:
// their text may hold anything (SQL, paths, secrets).
func problemOf(err error) (problem, time.Duration) {
	var (
		kind       errs.Kind
		code, msg  string
		retryAfter time.Duration
	)
	var fe *fiber.Error
	status := 0
	if de, ok := errs.As(err); ok {
		kind, code, msg, retryAfter = de.Kind, de.Code, de.Message, de.RetryAfter
	} else if errors.As(err, &fe) {
		kind, code = codeForStatus(fe.Code)
		if kind != errs.Internal {
			msg = fe.Message
			status = fe.Code // Fiber's own statuses (405, 431, 408) have no kind of their own
		}
	} else {
		kind, code = errs.Internal, errs.CodeInternal
	}
	if status == 0 {
		status = statusOf(kind)
	}
	if kind == errs.Internal {
		code, msg = errs.CodeInternal, "internal error"
	}
	if code == "" {
		code = strings.ToUpper(strings.ReplaceAll(string(kind), " ", "_"))
	}
	return problem{
		Type:   problemType(code),
		Title:  titleOf(code, status),
		Status: status,
		Code:   code,
		Detail: msg,
	}, retryAfter
}

// writeProblem renders err as application/problem+json on c.
func writeProblem(c *fiber.Ctx, err error) problem {
	p, retryAfter := problemOf(err)
	if p.Status == fiber.StatusTooManyRequests {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds(retryAfter)))
	}
	b, mErr := json.Marshal(p)
	if mErr != nil { // cannot happen with these field types; keep the answer well-formed anyway
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"INTERNAL"}`)
	}
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	c.Response().SetBodyRaw(b)
	return p
}

// retryAfterSeconds rounds up, and never answers 0 (which would invite an immediate retry storm).
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// errorHandler is the one place errors become answers: it renders the problem, reports server
// errors, and signs the answer when the path is a device path.
func (a *api) errorHandler(c *fiber.Ctx, err error) error {
	p := writeProblem(c, err)
	if p.Status >= 500 {
		a.log.LogAttrs(c.UserContext(), slog.LevelError, "request failed",
			slog.String("request_id", requestID(c)),
			slog.String("path", string(c.Request().URI().PathOriginal())),
			slog.String("code", p.Code),
			slog.String("error", err.Error()))
		if a.deps.OnServerError != nil {
			a.deps.OnServerError(c.UserContext(), err)
		}
	}
	if isDevicePath(string(c.Request().URI().PathOriginal())) {
		a.signResponse(c)
	}
	return nil
}
