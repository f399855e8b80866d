package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// PEM block types in identity.tpm. They carry the TPM's own wire encodings
// (TPM2B contents), so tpm2-tools and go-tpm can read them too.
const (
	pemTPMPublic  = "TPM2B PUBLIC"
	pemTPMPrivate = "TPM2B PRIVATE"
)

// tpmKeyTemplate is the identity key: P-256, signing only, bound to this TPM
// and this parent (FixedTPM, FixedParent: it can never be duplicated out),
// generated inside the TPM (SensitiveDataOrigin). The scheme is left null so
// that Sign chooses the hash per call. NoDA: the key has no password, so
// failed authorisations cannot happen and must not count towards the TPM's
// dictionary-attack lockout. A function, not a variable: the package keeps
// no mutable state.
func tpmKeyTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   tpm2.TPMECCNistP256,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// tpmKey is a key loaded in the TPM; it stays loaded until Close.
type tpmKey struct {
	tpm    transport.TPMCloser
	handle tpm2.NamedHandle
	pub    *ecdsa.PublicKey
}

// openTPMKey loads the key saved at path under the SRK, or creates and saves
// one when there is none. It reports whether it created the key. The SRK is
// flushed again before returning: only the identity key stays loaded.
func openTPMKey(tpm transport.TPMCloser, path string) (_ *tpmKey, created bool, err error) {
	srkRsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(tpm)
	if err != nil {
		return nil, false, fmt.Errorf("identity: create TPM storage root key: %w", err)
	}
	defer func() {
		if _, ferr := (tpm2.FlushContext{FlushHandle: srkRsp.ObjectHandle}).Execute(tpm); ferr != nil && err == nil {
			err = fmt.Errorf("identity: flush TPM storage root key: %w", ferr)
		}
	}()
	srk := tpm2.AuthHandle{Handle: srkRsp.ObjectHandle, Name: srkRsp.Name, Auth: tpm2.PasswordAuth(nil)}

	pubBlob, privBlob, err := readTPMBlobs(path)
	if errors.Is(err, fs.ErrNotExist) {
		pubBlob, privBlob, err = createTPMKey(tpm, srk, path)
		created = err == nil
	}
	if err != nil {
		return nil, false, err
	}
	pub, err := tpmPublicKey(pubBlob)
	if err != nil {
		return nil, false, fmt.Errorf("identity: TPM key %s: %w: %w", path, ErrDamaged, err)
	}
	loaded, err := tpm2.Load{
		ParentHandle: srk,
		InPrivate:    tpm2.TPM2BPrivate{Buffer: privBlob},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](pubBlob),
	}.Execute(tpm)
	if err != nil {
		return nil, false, fmt.Errorf("identity: load TPM key %s: %w: %w", path, ErrTPMRejectedKey, err)
	}
	k := &tpmKey{tpm: tpm, handle: tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name}, pub: pub}
	return k, created, nil
}

// createTPMKey has the TPM generate the key under srk and saves its blobs.
// On fs.ErrExist (a racing process saved first) it returns that process's
// blobs instead.
func createTPMKey(tpm transport.TPM, srk tpm2.AuthHandle, path string) (pubBlob, privBlob []byte, err error) {
	rsp, err := tpm2.Create{
		ParentHandle: srk,
		InPublic:     tpm2.New2B(tpmKeyTemplate()),
	}.Execute(tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: create TPM key: %w", err)
	}
	pubBlob, privBlob = rsp.OutPublic.Bytes(), rsp.OutPrivate.Buffer
	var buf bytes.Buffer
	for _, b := range []*pem.Block{
		{Type: pemTPMPublic, Bytes: pubBlob},
		{Type: pemTPMPrivate, Bytes: privBlob},
	} {
		if err := pem.Encode(&buf, b); err != nil {
			return nil, nil, fmt.Errorf("identity: encode TPM key: %w", err)
		}
	}
	// Both blobs go into one file so that a crash cannot leave one without
	// the other.
	if err := createAtomic(path, buf.Bytes()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readTPMBlobs(path)
		}
		return nil, nil, fmt.Errorf("identity: save TPM key: %w", err)
	}
	return pubBlob, privBlob, nil
}

// readTPMBlobs reads identity.tpm: a public then a private PEM block and
// nothing else. A missing file gives an error wrapping fs.ErrNotExist.
func readTPMBlobs(path string) (pubBlob, privBlob []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: open TPM key %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, nil, fmt.Errorf("identity: read TPM key %s: %w", path, err)
	}
	pubBlock, rest := pem.Decode(data)
	var privBlock *pem.Block
	if pubBlock != nil {
		privBlock, rest = pem.Decode(rest)
	}
	switch {
	case pubBlock == nil || pubBlock.Type != pemTPMPublic:
		err = fmt.Errorf("want a %q PEM block first", pemTPMPublic)
	case privBlock == nil || privBlock.Type != pemTPMPrivate:
		err = fmt.Errorf("want a %q PEM block second", pemTPMPrivate)
	case len(bytes.TrimSpace(rest)) != 0:
		err = errors.New("data after the PEM blocks")
	case len(privBlock.Bytes) == 0:
		err = errors.New("empty private blob")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("identity: TPM key %s: %w: %w", path, ErrDamaged, err)
	}
	return pubBlock.Bytes, privBlock.Bytes, nil
}

// tpmPublicKey decodes a TPMT_PUBLIC and checks it is what tpmKeyTemplate
// makes: a P-256 signing key that cannot leave the TPM.
func tpmPublicKey(blob []byte) (*ecdsa.PublicKey, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](blob)
	if err != nil {
		return nil, fmt.Errorf("decode TPM public area: %w", err)
	}
	if pub.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("TPM key type %v, want ECC", pub.Type)
	}
	a := pub.ObjectAttributes
	if !a.SignEncrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || a.Restricted || a.Decrypt {
		return nil, errors.New("TPM key attributes are not those of a device-bound signing key")
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, fmt.Errorf("TPM key parameters: %w", err)
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("TPM key curve %v, want P-256", parms.CurveID)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return nil, fmt.Errorf("TPM key point: %w", err)
	}
	// The uncompressed SEC 1 form; ParseUncompressedPublicKey also checks
	// that the point is on the curve.
	const size = 32
	if len(point.X.Buffer) > size || len(point.Y.Buffer) > size {
		return nil, errors.New("TPM key point too long for P-256")
	}
	enc := make([]byte, 1+2*size)
	enc[0] = 4
	copy(enc[1+size-len(point.X.Buffer):1+size], point.X.Buffer)
	copy(enc[1+2*size-len(point.Y.Buffer):], point.Y.Buffer)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), enc)
	if err != nil {
		return nil, fmt.Errorf("TPM key point: %w", err)
	}
	return key, nil
}

func (k *tpmKey) Public() crypto.PublicKey { return k.pub }

// Sign has the TPM sign the digest. The digest is not secret and the
// signature is public, so the command needs no encrypted session.
func (k *tpmKey) Sign(digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var alg tpm2.TPMIAlgHash
	switch opts.HashFunc() {
	case crypto.SHA256:
		alg = tpm2.TPMAlgSHA256
	case crypto.SHA384:
		alg = tpm2.TPMAlgSHA384
	case crypto.SHA512:
		alg = tpm2.TPMAlgSHA512
	default:
		return nil, fmt.Errorf("hash %v: %w", opts.HashFunc(), ErrUnsupportedHash)
	}
	rsp, err := tpm2.Sign{
		KeyHandle: k.handle,
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: alg}),
		},
		// A null ticket: the key is not restricted, so the TPM need not
		// have computed the digest itself.
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM sign: %w", err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("TPM signature: %w", err)
	}
	// Go's verifiers, and TLS and X.509, want ECDSA-Sig-Value (RFC 3279
	// section 2.2.3), the TPM gives r and s apart.
	der, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(sig.SignatureR.Buffer),
		new(big.Int).SetBytes(sig.SignatureS.Buffer),
	})
	if err != nil {
		return nil, fmt.Errorf("encode TPM signature: %w", err)
	}
	return der, nil
}

// Close unloads the key from the TPM and closes the connection. Through the
// kernel's resource manager the flush would happen anyway; on a raw TPM
// connection (swtpm) the object would otherwise keep a slot until reset.
func (k *tpmKey) Close() error {
	_, ferr := tpm2.FlushContext{FlushHandle: k.handle.Handle}.Execute(k.tpm)
	if ferr != nil {
		ferr = fmt.Errorf("flush TPM key: %w", ferr)
	}
	return errors.Join(ferr, k.tpm.Close())
}
