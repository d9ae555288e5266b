// Package web breaks the rule: an adapter importing another adapter.
package web

import "example.com/fixture/adapters/pgstore"

// Store is a placeholder.
var Store pgstore.Store
