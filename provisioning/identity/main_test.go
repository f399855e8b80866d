package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testContext bounds a test: nothing here needs more than a few seconds, so
// 30s means something hangs.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// noTPM is a TPM path that does not exist, so BackendAuto picks the file.
func noTPM(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "no-tpmrm0")
}

// mustVerify signs a fresh message with id and checks the signature with
// the public key alone.
func mustVerify(t *testing.T, id *Identity, msg string) {
	t.Helper()
	digest := sha256.Sum256([]byte(msg))
	sig, err := id.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	pub, ok := id.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("Public is %T, want *ecdsa.PublicKey", id.Public())
	}
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatalf("signature of %q does not verify with the public key", msg)
	}
	other := sha256.Sum256([]byte(msg + "!"))
	if ecdsa.VerifyASN1(pub, other[:], sig) {
		t.Fatal("signature verifies for another message")
	}
}

// dirNames lists a directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func mustOpen(t *testing.T, opts Options) *Identity {
	t.Helper()
	id, err := Open(testContext(t), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := id.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return id
}
