package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// pemPrivateKey is the PEM block type of PKCS#8 (RFC 5958).
const pemPrivateKey = "PRIVATE KEY"

// fileKey is a P-256 key kept in a 0600 file.
type fileKey struct{ key *ecdsa.PrivateKey }

// openFileKey loads the key at path, or creates it when there is none. It
// reports whether it created the key.
func openFileKey(path string) (*fileKey, bool, error) {
	key, err := loadFileKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("identity: encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der})
	if err := createAtomic(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created the identity between our look and
			// our link: its key is the identity now.
			key, err := loadFileKey(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("identity: save new key: %w", err)
	}
	return &fileKey{key: priv}, true, nil
}

// loadFileKey reads and checks the key file. A missing file gives an error
// wrapping fs.ErrNotExist.
func loadFileKey(path string) (*fileKey, error) {
	// O_NOFOLLOW refuses a symbolic link where the key should be: a link
	// could point the device at a key someone else controls.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("identity: key %s is a symbolic link: %w", path, ErrInsecurePermissions)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: open key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: key %s is not a regular file (%v): %w", path, fi.Mode(), ErrInsecurePermissions)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: key %s has mode %04o, group or others may read it (want 0600): %w", path, perm, ErrInsecurePermissions)
	}
	// A PEM key is a few hundred bytes; the limit keeps a wrong file from
	// being read whole.
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("identity: read key %s: %w", path, err)
	}
	priv, err := parseFileKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity: key %s: %w: %w", path, ErrDamaged, err)
	}
	return &fileKey{key: priv}, nil
}

// parseFileKey accepts exactly one PKCS#8 PEM block holding a P-256 key.
func parseFileKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("PEM block %q, want %q", block.Type, pemPrivateKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("key is on %s, want P-256", priv.Curve.Params().Name)
	}
	return priv, nil
}

func (k *fileKey) Public() crypto.PublicKey { return &k.key.PublicKey }

func (k *fileKey) Sign(digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.key.Sign(rand.Reader, digest, opts)
}

func (k *fileKey) Close() error { return nil }
