// Package temporalclient is allowed: it may import workflows' messages.
package temporalclient

import "example.com/fixture/workflows/clean"

// Name is a placeholder.
const Name = clean.Name
