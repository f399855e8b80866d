package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// presentTPM makes a file standing for /dev/tpmrm0, so that BackendAuto
// sees a TPM; the opener then reaches swtpm.
func presentTPM(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tpmrm0")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTPMKeyWithSwtpm(t *testing.T) {
	tpmState := t.TempDir()
	stateDir := t.TempDir()
	sw := startSwtpm(t, tpmState)
	opts := Options{StateDir: stateDir, TPMPath: presentTPM(t), OpenTPM: sw.opener}

	id, err := Open(testContext(t), opts)
	if err != nil {
		t.Fatalf("Open: %v\nswtpm log:\n%s", err, sw.log())
	}
	if id.Backend() != BackendTPM {
		t.Fatalf("Backend = %v, want tpm", id.Backend())
	}
	blobPath := filepath.Join(stateDir, TPMKeyName)
	if id.Path() != blobPath {
		t.Errorf("Path = %q, want %q", id.Path(), blobPath)
	}
	if got := dirNames(t, stateDir); !slices.Equal(got, []string{TPMKeyName}) {
		t.Errorf("state directory holds %q, want only %s", got, TPMKeyName)
	}
	fi, err := os.Stat(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("blob file mode %v, want -rw-------", fi.Mode())
	}
	mustVerify(t, id, "signed in the TPM")
	testSignHashes(t, id)
	facts := Facts{Serial: "G6AN3230012X", MachineID: testMachineID}
	der, err := id.CSR(facts)
	if err != nil {
		t.Fatal(err)
	}
	checkCSR(t, id, der, "G6AN3230012X", "G6AN3230012X")

	// The saved public part is the key Open returned, and the private part
	// is a TPM2B_PRIVATE: an integrity digest and the sensitive area
	// encrypted under the SRK, which never leaves this TPM.
	saved, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	pubBlob, privBlob, err := readTPMBlobs(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	savedPub, err := tpmPublicKey(pubBlob)
	if err != nil {
		t.Fatal(err)
	}
	if !savedPub.Equal(id.Public()) {
		t.Error("the saved public blob is another key")
	}
	if bytes.Contains(saved, []byte("PRIVATE KEY")) || len(privBlob) < 32 {
		t.Errorf("private blob of %d bytes does not look TPM-wrapped", len(privBlob))
	}
	first := id.Public().(*ecdsa.PublicKey)
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted TPM (a reboot) loads the same key from the saved blobs.
	sw.stop(t)
	sw = startSwtpm(t, tpmState)
	opts.OpenTPM = sw.opener
	again := mustOpen(t, opts)
	if !again.Public().(*ecdsa.PublicKey).Equal(first) {
		t.Fatal("after a TPM restart Open returned another key")
	}
	mustVerify(t, again, "signed after the restart")
	after, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, after) {
		t.Error("the blob file was rewritten on reload")
	}
	// Signatures from several goroutines share one TPM connection.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			d := sha256.Sum256(fmt.Appendf(nil, "concurrent %d", i))
			sig, err := again.Sign(nil, d[:], crypto.SHA256)
			if err == nil && !ecdsa.VerifyASN1(first, d[:], sig) {
				err = errors.New("signature does not verify")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Sign: %v", err)
		}
	}

	// A factory reset: the blobs go, and the TPM makes a new key.
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Erase(stateDir); err != nil {
		t.Fatal(err)
	}
	fresh := mustOpen(t, opts)
	if fresh.Backend() != BackendTPM || fresh.Public().(*ecdsa.PublicKey).Equal(first) {
		t.Errorf("after Erase: backend %v, same key %v; want a new TPM key", fresh.Backend(), fresh.Public().(*ecdsa.PublicKey).Equal(first))
	}
}

// TestTPMKeyBoundToItsTPM: the saved blobs are useless to another TPM, which
// is what keeps the private key on this device even if the state directory
// is copied. The identity is then refused, never replaced.
func TestTPMKeyBoundToItsTPM(t *testing.T) {
	stateDir := t.TempDir()
	sw := startSwtpm(t, t.TempDir())
	id := mustOpen(t, Options{StateDir: stateDir, Backend: BackendTPM, TPMPath: presentTPM(t), OpenTPM: sw.opener})
	mustVerify(t, id, "home TPM")
	saved, err := os.ReadFile(id.Path())
	if err != nil {
		t.Fatal(err)
	}

	other := startSwtpm(t, t.TempDir())
	_, err = Open(testContext(t), Options{StateDir: stateDir, TPMPath: presentTPM(t), OpenTPM: other.opener})
	if !errors.Is(err, ErrTPMRejectedKey) || !strings.Contains(err.Error(), id.Path()) {
		t.Fatalf("Open on another TPM: err = %v, want ErrTPMRejectedKey naming %s", err, id.Path())
	}
	after, err := os.ReadFile(id.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, after) {
		t.Error("the refused blob file was changed")
	}
	// The other TPM was left clean: the SRK flushed after the failure.
	tpm, err := other.opener(testContext(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	loaded, err := tpm2.GetCapability{
		Capability:    tpm2.TPMCapHandles,
		Property:      uint32(tpm2.TPMHTTransient) << 24,
		PropertyCount: 16,
	}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	handles, err := loaded.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	if len(handles.Handle) != 0 {
		t.Errorf("transient objects left loaded in the TPM: %v", handles.Handle)
	}
}

func TestTPMKeyDamaged(t *testing.T) {
	sw := startSwtpm(t, t.TempDir())
	stateDir := t.TempDir()
	id := mustOpen(t, Options{StateDir: stateDir, Backend: BackendTPM, TPMPath: presentTPM(t), OpenTPM: sw.opener})
	good, err := os.ReadFile(id.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
	pubBlock, rest := pem.Decode(good)
	privBlock, _ := pem.Decode(rest)
	flipped := slices.Clone(privBlock.Bytes)
	flipped[len(flipped)-1] ^= 1
	for name, c := range map[string]struct {
		data []byte
		want error
	}{
		"empty":            {nil, ErrDamaged},
		"public only":      {pem.EncodeToMemory(pubBlock), ErrDamaged},
		"swapped":          {append(pem.EncodeToMemory(privBlock), pem.EncodeToMemory(pubBlock)...), ErrDamaged},
		"trailing garbage": {append(slices.Clone(good), "junk"...), ErrDamaged},
		"bad public":       {append(pem.EncodeToMemory(&pem.Block{Type: pemTPMPublic, Bytes: []byte{0, 1}}), pem.EncodeToMemory(privBlock)...), ErrDamaged},
		// Well-formed, but the TPM's integrity check fails.
		"flipped bit": {append(pem.EncodeToMemory(pubBlock), pem.EncodeToMemory(&pem.Block{Type: pemTPMPrivate, Bytes: flipped})...), ErrTPMRejectedKey},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(id.Path(), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(testContext(t), Options{StateDir: stateDir, TPMPath: presentTPM(t), OpenTPM: sw.opener})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), id.Path()) {
				t.Fatalf("err = %v, want %v naming %s", err, c.want, id.Path())
			}
			after, err := os.ReadFile(id.Path())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, c.data) {
				t.Error("the damaged blob file was changed")
			}
		})
	}
}

// TestDialTPMOverTCP drives swtpm's TCP server, the form the issue names,
// through DialTPM.
func TestDialTPMOverTCP(t *testing.T) {
	sw := startSwtpmTCP(t, t.TempDir())
	id := mustOpen(t, Options{StateDir: t.TempDir(), Backend: BackendTPM, OpenTPM: sw.opener})
	mustVerify(t, id, "over TCP")
}
