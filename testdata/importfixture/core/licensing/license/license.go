// Package license breaks the rule: an aggregate importing another context's aggregate.
package license

import "example.com/fixture/core/pki/authority"

// Err is a placeholder.
var Err = authority.Err
