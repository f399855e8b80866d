package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

func TestKeyRotationFollowed(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	oldKeys := f.keys
	next, err := GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RotateKeys(next, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A device that trusted root 1 walks to root 2 and the new keys.
	mustRefresh(t, c)
	cached, err := os.ReadFile(filepath.Join(c.opts.MetadataDir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if root2, _ := f.repo.RootJSON(); string(cached) != string(root2) {
		t.Fatal("device did not cache root 2")
	}
	// So does a factory-fresh device whose image still carries root 1.
	mustRefresh(t, f.client(t, nil))

	// A leaked old timestamp key no longer signs anything devices accept.
	attacker := *f.repo
	attacker.keys = oldKeys
	if err := attacker.RefreshTimestamp(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Refresh with a timestamp signed by the rotated-out key: %v, want ErrBadSignature", err)
	}
}

func TestRootSignedOnlyByNewKeyRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	next, err := GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RotateKeys(next, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Strip the old root key's signature: root 1 no longer vouches for 2.
	nr := *f.repo.root
	nr.ClearSignatures()
	signer, err := signature.LoadED25519Signer(next.priv[RoleRoot])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nr.Sign(signer); err != nil {
		t.Fatal(err)
	}
	b, err := nr.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "metadata", "2.root.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Refresh with root 2 signed only by the new key: %v, want ErrBadSignature", err)
	}
}

func TestRootRenewedWithSameKeys(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	if err := f.repo.RotateKeys(f.keys, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, c)
	if v := f.repo.root.Signed.Version; v != 2 || len(f.repo.root.Signatures) != 1 {
		t.Fatalf("renewed root version %d with %d signatures, want 2 with 1", v, len(f.repo.root.Signatures))
	}
	if _, err := os.Stat(filepath.Join(f.dir, "metadata", "2.root.json")); err != nil {
		t.Fatal(err)
	}
}
