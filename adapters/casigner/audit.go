package casigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/samplero/samplero/ports"
)

// maxAuditRead bounds how much of one file the audit reads to look for keys: every file of a PKI
// directory is far smaller; a larger one is reported instead.
const maxAuditRead = 1 << 20

// AuditFiles checks custody on the files of the PKI directory (see ports.PKIDirectory), the way the
// seed's audit did and more strictly:
//   - no root key anywhere: no file named like one (*root*key*, *.jwe) and no private key whose
//     public half is root.pem's, wherever it sits;
//   - private keys only where they belong (intermediates/<id>/key.pem, server-key.pem), each mode
//     0600 or stricter and owned by the owner of the PKI directory (the service user);
//   - every directory 0700 or stricter, no file writable by group or others;
//   - no symlinks and no special files.
//
// It returns the findings and the number of files looked at.
func (d *Directory) AuditFiles(context.Context) ([]ports.AuditFinding, int, error) {
	if err := d.mustExist(); err != nil {
		return nil, 0, err
	}
	top, err := os.Stat(d.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("casigner: %w", err)
	}
	owner, haveOwner := fileOwner(top)
	var rootPub any
	if root, err := d.readRoot(); err == nil && root != nil {
		rootPub = root.PublicKey
	}
	var findings []ports.AuditFinding
	add := func(code, rel, msg string) {
		findings = append(findings, ports.AuditFinding{Code: code, Location: rel, Message: msg})
	}
	files := 0
	err = filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(d.dir, p)
		if err != nil {
			add("UNREADABLE", rel, err.Error())
			if e != nil && e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := e.Info()
		if err != nil {
			add("UNREADABLE", rel, err.Error())
			return nil
		}
		mode := info.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			add("SYMLINK", rel, "a symlink in the PKI directory (it could point a key or a certificate anywhere)")
			return nil
		case mode.IsDir():
			if mode.Perm()&0o077 != 0 {
				add("DIR_MODE", rel, fmt.Sprintf("directory mode %04o, want 0700", mode.Perm()))
			}
			return nil
		case !mode.IsRegular():
			add("FILE_TYPE", rel, "not a regular file")
			return nil
		}
		files++
		name := strings.ToLower(e.Name())
		// One finding per root key, however many ways it gives itself away.
		namedLikeRootKey := (strings.Contains(name, "root") && strings.Contains(name, "key")) || strings.HasSuffix(name, ".jwe")
		if mode.Perm()&0o022 != 0 {
			add("FILE_MODE", rel, fmt.Sprintf("mode %04o: writable by group or others", mode.Perm()))
		}
		if info.Size() > maxAuditRead {
			if namedLikeRootKey {
				add("ROOT_KEY_PRESENT", rel, "a file named like a root key: the root key belongs on the offline machine only")
			}
			add("FILE_TOO_LARGE", rel, "larger than any file of a PKI directory; not inspected for keys")
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			add("UNREADABLE", rel, err.Error())
			return nil
		}
		keys, other := privateKeysIn(data)
		isRoot := false
		for _, k := range keys {
			isRoot = isRoot || (rootPub != nil && keyMatches(k, rootPub))
		}
		switch {
		case isRoot:
			add("ROOT_KEY_PRESENT", rel, "the root's private key: it belongs on the offline machine only")
			return nil
		case namedLikeRootKey:
			add("ROOT_KEY_PRESENT", rel, "a file named like a root key: the root key belongs on the offline machine only")
			return nil
		case len(keys) == 0 && !other:
			return nil
		case !keyPlace(rel):
			add("STRAY_PRIVATE_KEY", rel, "a private key outside intermediates/<id>/key.pem and server-key.pem")
			return nil
		}
		if mode.Perm()&0o077 != 0 {
			add("KEY_MODE", rel, fmt.Sprintf("key mode %04o: readable beyond its owner, want 0600", mode.Perm()))
		}
		if uid, ok := fileOwner(info); ok && haveOwner && uid != owner {
			add("KEY_OWNER", rel, fmt.Sprintf("owned by uid %d, the PKI directory by uid %d", uid, owner))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("casigner: %w", err)
	}
	return findings, files, nil
}

// keyPlace reports whether rel is where a private key may live in the PKI directory.
func keyPlace(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	switch {
	case len(parts) == 1:
		return parts[0] == serverKeyFile
	case len(parts) == 3:
		return parts[0] == intermediatesDir && validRef(parts[1]) && parts[2] == "key.pem"
	}
	return false
}

// privateKeysIn returns the private keys in data's PEM blocks; other is true when data holds a
// private key it cannot parse (an encrypted PEM, a JWE, a PRIVATE KEY marker in broken PEM).
func privateKeysIn(data []byte) (keys []crypto.Signer, other bool) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.Contains(b.Type, "PRIVATE") && !strings.Contains(b.Type, "ENCRYPTED") {
			continue
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			err = fmt.Errorf("unparsed")
		}
		if s, ok := k.(crypto.Signer); err == nil && ok {
			keys = append(keys, s)
		} else {
			other = true
		}
	}
	if len(keys) == 0 && bytes.Contains(data, []byte("PRIVATE KEY")) {
		other = true
	}
	return keys, other
}
