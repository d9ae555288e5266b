// Package sig breaks the rule: the SDK importing a non-standard package.
package sig

import "example.com/fixture/core/errs"

// Err is a placeholder.
var Err = errs.ErrX
