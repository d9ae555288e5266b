// Package errs is allowed: standard library only.
package errs

import "errors"

// ErrX is a placeholder.
var ErrX = errors.New("x")
