//go:build !unix

package casigner

import "os"

// lockDir is a no-op where flock does not exist: run one state-changing command at a time there.
func lockDir(string) (func(), error) { return func() {}, nil }

// fileOwner is unknown where there are no uids; the owner check is skipped.
func fileOwner(os.FileInfo) (uint32, bool) { return 0, false }
