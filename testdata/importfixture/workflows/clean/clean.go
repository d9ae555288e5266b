// Package clean is allowed: a workflow with ports only.
package clean

import "example.com/fixture/ports/events"

// Name is a placeholder.
const Name = events.Name
