// Package pki is allowed: its own aggregate, ports and errs.
package pki

import (
	"example.com/fixture/core/errs"
	"example.com/fixture/core/pki/authority"
)

// Errs are placeholders.
var Errs = []error{errs.ErrX, authority.Err}
