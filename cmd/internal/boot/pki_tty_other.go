//go:build !linux

package boot

import (
	"errors"
	"os"
)

// isTerminal is false where echo cannot be turned off here: the passphrase is then read as a line
// from stdin (pipe it in, or use --passphrase-file).
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File) ([]byte, error) { return nil, errors.New("no terminal support") }
