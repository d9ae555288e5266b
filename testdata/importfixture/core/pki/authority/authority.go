// Package authority is a PKI aggregate.
package authority

import "example.com/fixture/core/errs"

// Err is a placeholder.
var Err = errs.ErrX
