// Package errs is the one error vocabulary of Samplero. A domain error carries a Kind, which decides
// how an edge reports it (HTTP status, retryable or not), and a stable upper-snake Code that clients
// may branch on. Errors are mapped to the outside world in exactly two places: the Fiber error handler
// and the activity error classifier.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for the edges. Persisted and logged as its string.
type Kind string

const (
	Invalid         Kind = "invalid"         // 400: the input is wrong; retrying it unchanged fails again
	Unauthenticated Kind = "unauthenticated" // 401
	Forbidden       Kind = "forbidden"       // 403
	NotFound        Kind = "not_found"       // 404
	Conflict        Kind = "conflict"        // 409
	Gone            Kind = "gone"            // 410
	TooLarge        Kind = "too_large"       // 413
	RateLimited     Kind = "rate_limited"    // 429
	Unavailable     Kind = "unavailable"     // 503: a dependency is down; retrying later may succeed
	Internal        Kind = "internal"        // 500: a bug or an unexpected failure; never shown to clients
)

// Error is a domain error. Code is stable; Message is safe to show to a client and never contains
// secrets; Err is the cause, for logs only.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	RetryAfter time.Duration // for RateLimited: how long the client should wait
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E builds a domain error.
func E(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap builds a domain error with a cause kept for logs.
func Wrap(kind Kind, code, message string, cause error) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: cause}
}

// Internalf wraps an unexpected failure. Its message never reaches a client.
func Internalf(format string, args ...any) *Error {
	return &Error{Kind: Internal, Code: "INTERNAL", Message: "internal error", Err: fmt.Errorf(format, args...)}
}

// As returns the domain error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of err; Internal for anything that is not a domain error.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// CodeOf returns the stable code of err; "INTERNAL" for anything that is not a domain error.
func CodeOf(err error) string {
	if e, ok := As(err); ok {
		return e.Code
	}
	return "INTERNAL"
}

// Is reports whether err is a domain error with this code.
func Is(err error, code string) bool { return CodeOf(err) == code }

// Stable codes used across contexts. Endpoint-specific codes live beside their use cases.
const (
	CodeValidationFailed = "VALIDATION_FAILED"
	CodeNotFound         = "NOT_FOUND"
	CodeUnavailable      = "UNAVAILABLE"
	CodeInternal         = "INTERNAL"
	CodeRateLimited      = "RATE_LIMITED"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeConflict         = "CONFLICT"
)

// Validation is shorthand for a VALIDATION_FAILED error.
func Validation(message string) *Error { return E(Invalid, CodeValidationFailed, message) }
