// Package client is allowed: the SDK importing its own packages.
package client

import "example.com/fixture/sdk/go/sig"

// Err is a placeholder.
var Err = sig.Err
