// Package mail breaks the rule: a workflow importing a core service.
package mail

import "example.com/fixture/core/licensing"

// Err is a placeholder.
var Err = licensing.Err
