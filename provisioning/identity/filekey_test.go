package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
)

func TestFileKeyCreatedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // Open creates it
	opts := Options{StateDir: dir, TPMPath: noTPM(t)}

	id := mustOpen(t, opts)
	if id.Backend() != BackendFile {
		t.Fatalf("Backend = %v, want file", id.Backend())
	}
	path := filepath.Join(dir, FileKeyName)
	if id.Path() != path {
		t.Errorf("Path = %q, want %q", id.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("key file mode %v, want -rw-------", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", di.Mode().Perm())
	}
	// The temporary file of the atomic write is gone.
	if got := dirNames(t, dir); !slices.Equal(got, []string{FileKeyName}) {
		t.Errorf("state directory holds %q, want only %s", got, FileKeyName)
	}
	mustVerify(t, id, "first start")
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file is the key itself: what it holds is what signs.
	block, _ := pem.Decode(saved)
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("key file is not PKCS#8 PEM: %v", err)
	}
	if !parsed.(*ecdsa.PrivateKey).PublicKey.Equal(id.Public()) {
		t.Error("the key file holds another key than the one Open returned")
	}

	again := mustOpen(t, opts)
	if !again.Public().(*ecdsa.PublicKey).Equal(id.Public()) {
		t.Fatal("second Open made a new key instead of loading the saved one")
	}
	mustVerify(t, again, "second start")
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, after) {
		t.Error("second Open rewrote the key file")
	}
}

func TestSignHashes(t *testing.T) {
	id := mustOpen(t, Options{StateDir: t.TempDir(), TPMPath: noTPM(t)})
	testSignHashes(t, id)
}

// testSignHashes checks every hash Sign accepts and the ones it refuses;
// the TPM test runs it too.
func testSignHashes(t *testing.T, id *Identity) {
	t.Helper()
	pub := id.Public().(*ecdsa.PublicKey)
	msg := []byte("hash check")
	d256, d384, d512 := sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	for _, c := range []struct {
		h      crypto.Hash
		digest []byte
	}{{crypto.SHA256, d256[:]}, {crypto.SHA384, d384[:]}, {crypto.SHA512, d512[:]}} {
		sig, err := id.Sign(rand.Reader, c.digest, c.h)
		if err != nil {
			t.Errorf("Sign %v: %v", c.h, err)
			continue
		}
		if !ecdsa.VerifyASN1(pub, c.digest, sig) {
			t.Errorf("%v signature does not verify", c.h)
		}
	}
	d1 := sha1.Sum(msg)
	for name, c := range map[string]struct {
		digest []byte
		opts   crypto.SignerOpts
	}{
		"SHA-1":          {d1[:], crypto.SHA1},
		"no hash":        {d256[:], nil},
		"wrong length":   {d256[:20], crypto.SHA256},
		"raw (hash 0)":   {d256[:], crypto.Hash(0)},
		"384 as SHA-256": {d384[:], crypto.SHA256},
	} {
		if _, err := id.Sign(nil, c.digest, c.opts); !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("Sign %s: err = %v, want ErrUnsupportedHash", name, err)
		}
	}
}

func TestSignAfterClose(t *testing.T) {
	id, err := Open(testContext(t), Options{StateDir: t.TempDir(), TPMPath: noTPM(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
	if err := id.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := id.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close: err = %v, want ErrClosed", err)
	}
	if id.Public() == nil {
		t.Error("Public after Close is nil")
	}
}

func pemKey(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestFileKeyDamaged(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := pemKey(t, "PRIVATE KEY", pkcs8(t, p256))
	ecDER, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":           {},
		"not PEM":         []byte("hello\n"),
		"cut in half":     good[:len(good)/2],
		"wrong PEM type":  pemKey(t, "EC PRIVATE KEY", ecDER),
		"garbage DER":     pemKey(t, "PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}),
		"P-384 key":       pemKey(t, "PRIVATE KEY", pkcs8(t, p384)),
		"RSA key":         pemKey(t, "PRIVATE KEY", pkcs8(t, rsaKey)),
		"two keys":        append(slices.Clone(good), good...),
		"trailing binary": append(slices.Clone(good), 0, 1, 2),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileKeyName)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(testContext(t), Options{StateDir: dir, TPMPath: noTPM(t)})
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("err = %v, want ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, data) {
				t.Error("the damaged key file was changed")
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{FileKeyName}) {
				t.Errorf("state directory holds %q after the failure", got)
			}
		})
	}
	// The good key itself loads, so the cases above fail for their damage.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileKeyName), good, 0o600); err != nil {
		t.Fatal(err)
	}
	id := mustOpen(t, Options{StateDir: dir, TPMPath: noTPM(t)})
	if !id.Public().(*ecdsa.PublicKey).Equal(&p256.PublicKey) {
		t.Error("a good key file loaded as another key")
	}
}

func TestFileKeyInsecure(t *testing.T) {
	t.Run("group-readable", func(t *testing.T) {
		dir := t.TempDir()
		id := mustOpen(t, Options{StateDir: dir, TPMPath: noTPM(t)})
		path := id.Path()
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testContext(t), Options{StateDir: dir, TPMPath: noTPM(t)})
		if !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want ErrInsecurePermissions naming %s", err, path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode changed to %v: a refused key must be left for inspection", fi.Mode())
		}
	})
	t.Run("symlink", func(t *testing.T) {
		elsewhere := t.TempDir()
		id := mustOpen(t, Options{StateDir: elsewhere, TPMPath: noTPM(t)})
		dir := t.TempDir()
		if err := os.Symlink(id.Path(), filepath.Join(dir, FileKeyName)); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testContext(t), Options{StateDir: dir, TPMPath: noTPM(t)})
		if !errors.Is(err, ErrInsecurePermissions) {
			t.Fatalf("err = %v, want ErrInsecurePermissions", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, FileKeyName), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testContext(t), Options{StateDir: dir, TPMPath: noTPM(t)})
		if !errors.Is(err, ErrInsecurePermissions) {
			t.Fatalf("err = %v, want ErrInsecurePermissions", err)
		}
	})
}

func TestCreateAtomicNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := createAtomic(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	err := createAtomic(path, []byte("two"))
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: err = %v, want fs.ErrExist", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "one" {
		t.Errorf("file holds %q, want the first write", got)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"f"}) {
		t.Errorf("directory holds %q: a temporary file was left", names)
	}
	// A directory that does not exist fails before anything is written.
	if err := createAtomic(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Error("create in a missing directory succeeded")
	}
}

// failOpen is an OpenTPM that must not be reached.
func failOpen(t *testing.T) func(context.Context, string) (transport.TPMCloser, error) {
	return func(context.Context, string) (transport.TPMCloser, error) {
		t.Error("OpenTPM called")
		return nil, errors.New("no TPM in this test")
	}
}

func TestChooseBackend(t *testing.T) {
	present := filepath.Join(t.TempDir(), "tpmrm0")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	absent := noTPM(t)
	for _, c := range []struct {
		name              string
		backend           Backend
		tpmPath           string
		haveFile, haveTPM bool
		want              Backend
		wantErr           error
	}{
		{"new, no TPM", BackendAuto, absent, false, false, BackendFile, nil},
		{"new, TPM", BackendAuto, present, false, false, BackendTPM, nil},
		{"file key wins over a new TPM", BackendAuto, present, true, false, BackendFile, nil},
		{"TPM key without the TPM", BackendAuto, absent, false, true, BackendTPM, nil},
		{"both", BackendAuto, present, true, true, 0, ErrBackendMismatch},
		{"file forced", BackendFile, present, false, false, BackendFile, nil},
		{"file forced, TPM key", BackendFile, present, false, true, 0, ErrBackendMismatch},
		{"TPM forced, no device", BackendTPM, absent, false, false, BackendTPM, nil},
		{"TPM forced, file key", BackendTPM, present, true, false, 0, ErrBackendMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := chooseBackend(Options{StateDir: "/state", Backend: c.backend, TPMPath: c.tpmPath}, c.haveFile, c.haveTPM)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("= %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestOpenKeepsFileKeyWhenTPMAppears(t *testing.T) {
	dir := t.TempDir()
	first := mustOpen(t, Options{StateDir: dir, TPMPath: noTPM(t)})
	tpm := filepath.Join(t.TempDir(), "tpmrm0")
	if err := os.WriteFile(tpm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	id := mustOpen(t, Options{StateDir: dir, TPMPath: tpm, OpenTPM: failOpen(t)})
	if id.Backend() != BackendFile || !id.Public().(*ecdsa.PublicKey).Equal(first.Public()) {
		t.Fatalf("backend %v: the file identity was not kept", id.Backend())
	}
}

func TestOpenTPMKeyWithoutTPM(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TPMKeyName)
	if err := os.WriteFile(path, []byte("blobs"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The default opener, on a device path that does not exist.
	_, err := Open(testContext(t), Options{StateDir: dir, TPMPath: noTPM(t)})
	if !errors.Is(err, ErrTPMUnavailable) {
		t.Fatalf("err = %v, want ErrTPMUnavailable", err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{TPMKeyName}) {
		t.Errorf("state directory holds %q: a file key was made in place of the TPM one", got)
	}
}

func TestOpenNeedsStateDir(t *testing.T) {
	if _, err := Open(testContext(t), Options{}); err == nil {
		t.Fatal("Open without a state directory succeeded")
	}
}

func TestBackendString(t *testing.T) {
	for b, want := range map[Backend]string{BackendAuto: "auto", BackendFile: "file", BackendTPM: "tpm", 7: "Backend(7)"} {
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(b), got, want)
		}
	}
}

func TestErase(t *testing.T) {
	dir := t.TempDir()
	first := mustOpen(t, Options{StateDir: dir, TPMPath: noTPM(t)})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Erase(dir); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"settings.json"}) {
		t.Errorf("after Erase the directory holds %q, want only the unrelated file", got)
	}
	second := mustOpen(t, Options{StateDir: dir, TPMPath: noTPM(t)})
	if second.Public().(*ecdsa.PublicKey).Equal(first.Public()) {
		t.Error("the identity after Erase is the old one")
	}
	// Nothing to erase is fine, even without the directory.
	if err := Erase(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("Erase of a missing directory: %v", err)
	}
}
