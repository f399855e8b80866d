package release

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// Role names as TUF spells them.
const (
	RoleRoot      = "root"
	RoleTargets   = "targets"
	RoleSnapshot  = "snapshot"
	RoleTimestamp = "timestamp"
)

var roles = []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

// Keys holds the roles' ed25519 signing keys. A role whose key file is
// absent has a nil key: a timestamp host carries only the timestamp key,
// and operations needing another role fail with ErrMissingKey.
type Keys struct {
	priv map[string]ed25519.PrivateKey
}

func keyPath(dir, role string) string { return filepath.Join(dir, role+".key") }

// GenerateKeys creates a fresh key for every role and writes each to
// DIR/ROLE.key (PKCS#8 PEM, mode 0600). It refuses to overwrite an
// existing key: replacing a key silently would orphan every device that
// trusts it.
func GenerateKeys(dir string) (*Keys, error) {
	for _, r := range roles {
		if _, err := os.Stat(keyPath(dir, r)); err == nil {
			return nil, fmt.Errorf("generate keys: %s: %w", keyPath(dir, r), fs.ErrExist)
		}
	}
	k := &Keys{priv: map[string]ed25519.PrivateKey{}}
	for _, r := range roles {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate keys: %s: %w", r, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("generate keys: %s: %w", r, err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := atomicfile.Write(keyPath(dir, r), data, 0o600); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
		k.priv[r] = priv
	}
	return k, nil
}

// LoadKeys reads whichever role keys DIR holds. A key file readable by
// group or others is refused: it is no longer a secret. At least one key
// must be present.
func LoadKeys(dir string) (*Keys, error) {
	k := &Keys{priv: map[string]ed25519.PrivateKey{}}
	for _, r := range roles {
		p := keyPath(dir, r)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load keys: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("load keys: %s: mode %v is readable by others, want 0600", p, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load keys: %w", err)
		}
		blk, _ := pem.Decode(data)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("load keys: %s: no PEM PRIVATE KEY block", p)
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("load keys: %s: %w", p, err)
		}
		priv, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("load keys: %s: %T is not an ed25519 key", p, key)
		}
		k.priv[r] = priv
	}
	if len(k.priv) == 0 {
		return nil, fmt.Errorf("load keys: %s: %w: no role key files", dir, ErrMissingKey)
	}
	return k, nil
}

// Has reports whether the key for role is present.
func (k *Keys) Has(role string) bool { return k != nil && k.priv[role] != nil }

// Public returns role's public key, or nil when the key is absent.
func (k *Keys) Public(role string) ed25519.PublicKey {
	if !k.Has(role) {
		return nil
	}
	return k.priv[role].Public().(ed25519.PublicKey)
}

func (k *Keys) private(role string) (ed25519.PrivateKey, error) {
	if !k.Has(role) {
		return nil, fmt.Errorf("%w: %s", ErrMissingKey, role)
	}
	return k.priv[role], nil
}
