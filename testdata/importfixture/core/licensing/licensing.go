// Package licensing breaks the rule: a core service importing an adapter (and, through it, Fiber).
package licensing

import (
	"example.com/fixture/adapters/pgstore"
	"example.com/fixture/core/licensing/license"
)

// Placeholders.
var (
	Err   = license.Err
	Store = pgstore.Store{}
)
