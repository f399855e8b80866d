package identity

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Backend says where the identity key lives.
type Backend int

const (
	// BackendAuto keeps an existing identity where it is; a new one goes
	// into the TPM when Options.TPMPath exists, into a file otherwise.
	BackendAuto Backend = iota
	// BackendFile demands the file key.
	BackendFile
	// BackendTPM demands the TPM key.
	BackendTPM
)

// String returns "auto", "file" or "tpm".
func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendFile:
		return "file"
	case BackendTPM:
		return "tpm"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// File names inside the state directory.
const (
	// FileKeyName holds the file-backed key (PKCS#8 PEM, 0600).
	FileKeyName = "identity.key"
	// TPMKeyName holds the TPM key's public and TPM-encrypted private blobs.
	TPMKeyName = "identity.tpm"
)

// DefaultTPMPath is the kernel's TPM 2.0 resource manager: it flushes what a
// process leaves loaded and lets roomd share the TPM with other users.
const DefaultTPMPath = "/dev/tpmrm0"

// Options configure Open.
type Options struct {
	// StateDir holds the key files. Created (0700) if missing. Required.
	StateDir string
	// Backend forces a backend; the zero value is BackendAuto.
	Backend Backend
	// TPMPath is the TPM device; its existence makes BackendAuto choose the
	// TPM for a new identity. Default DefaultTPMPath.
	TPMPath string
	// OpenTPM opens the TPM at TPMPath. Default: the Linux character device.
	// Tests and development setups connect to swtpm here (see DialTPM).
	OpenTPM func(ctx context.Context, path string) (transport.TPMCloser, error)
	// Logger receives which backend was chosen and why. Default: discard.
	Logger *slog.Logger
}

// signer is what a backend provides.
type signer interface {
	Public() crypto.PublicKey
	Sign(digest []byte, opts crypto.SignerOpts) ([]byte, error)
	Close() error
}

// Identity is the device's key. It is a crypto.Signer, so it goes wherever
// Go wants a private key (x509.CreateCertificateRequest, tls.Certificate),
// while the private key itself stays in the file or the TPM. Safe for
// concurrent use.
type Identity struct {
	backend Backend
	path    string
	mu      sync.Mutex
	key     signer // nil once closed
	pub     crypto.PublicKey
}

// Open loads the device's identity key from opts.StateDir, creating it on
// first use. See the package documentation for which backend it picks.
//
// When the TPM is the choice but cannot be opened (ErrTPMUnavailable), Open
// fails rather than fall back to a file key: a file key made once would
// stay the identity for good, and a device that has a TPM should use it.
// ctx bounds only the opening of the TPM; go-tpm's commands take no
// context, so the transport's own timeout bounds them (see DialTPM).
func Open(ctx context.Context, opts Options) (*Identity, error) {
	if opts.StateDir == "" {
		return nil, errors.New("identity: open: Options.StateDir is empty")
	}
	if opts.TPMPath == "" {
		opts.TPMPath = DefaultTPMPath
	}
	if opts.OpenTPM == nil {
		opts.OpenTPM = openLinuxTPM
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create state directory: %w", err)
	}
	filePath := filepath.Join(opts.StateDir, FileKeyName)
	tpmPath := filepath.Join(opts.StateDir, TPMKeyName)
	haveFile, err := exists(filePath)
	if err != nil {
		return nil, err
	}
	haveTPM, err := exists(tpmPath)
	if err != nil {
		return nil, err
	}

	backend, err := chooseBackend(opts, haveFile, haveTPM)
	if err != nil {
		return nil, err
	}
	var (
		key  signer
		path string
	)
	switch backend {
	case BackendFile:
		path = filePath
		var created bool
		key, created, err = openFileKey(filePath)
		if err == nil {
			log.Info("identity key", "backend", "file", "path", filePath, "created", created)
		}
	case BackendTPM:
		path = tpmPath
		var (
			tpm     transport.TPMCloser
			created bool
		)
		tpm, err = opts.OpenTPM(ctx, opts.TPMPath)
		if err != nil {
			return nil, fmt.Errorf("identity: open TPM %s: %w: %w", opts.TPMPath, ErrTPMUnavailable, err)
		}
		key, created, err = openTPMKey(tpm, tpmPath)
		if err != nil {
			err = errors.Join(err, tpm.Close())
		} else {
			log.Info("identity key", "backend", "tpm", "tpm", opts.TPMPath, "path", tpmPath, "created", created)
		}
	}
	if err != nil {
		return nil, err
	}
	return &Identity{backend: backend, path: path, key: key, pub: key.Public()}, nil
}

// chooseBackend applies the rules of the package documentation.
func chooseBackend(opts Options, haveFile, haveTPM bool) (Backend, error) {
	if haveFile && haveTPM {
		return 0, fmt.Errorf("identity: both %s and %s exist in %s: %w", FileKeyName, TPMKeyName, opts.StateDir, ErrBackendMismatch)
	}
	switch opts.Backend {
	case BackendFile:
		if haveTPM {
			return 0, fmt.Errorf("identity: file key demanded but the identity is in the TPM (%s): %w", TPMKeyName, ErrBackendMismatch)
		}
		return BackendFile, nil
	case BackendTPM:
		if haveFile {
			return 0, fmt.Errorf("identity: TPM key demanded but the identity is a file key (%s): %w", FileKeyName, ErrBackendMismatch)
		}
		return BackendTPM, nil
	case BackendAuto:
		switch {
		case haveFile:
			return BackendFile, nil
		case haveTPM:
			return BackendTPM, nil
		}
		present, err := exists(opts.TPMPath)
		if err != nil {
			return 0, err
		}
		if present {
			return BackendTPM, nil
		}
		return BackendFile, nil
	}
	return 0, fmt.Errorf("identity: unknown backend %v", opts.Backend)
}

func openLinuxTPM(_ context.Context, path string) (transport.TPMCloser, error) {
	return linuxtpm.Open(path)
}

// exists reports whether path exists; errors other than "does not exist"
// (a permission problem, say) are returned, so that an unreadable identity
// is never mistaken for a missing one.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("identity: %w", err)
}

// Backend says where the key lives: BackendFile or BackendTPM.
func (id *Identity) Backend() Backend { return id.backend }

// Path is the file in the state directory that holds the key (or, for the
// TPM, its blobs).
func (id *Identity) Path() string { return id.path }

// Public returns the key's *ecdsa.PublicKey. It stays valid after Close.
func (id *Identity) Public() crypto.PublicKey { return id.pub }

// Sign signs digest, the hash named by opts, with the device's key and
// returns an ASN.1 ECDSA signature. rand is unused: the file key uses the
// system's randomness, the TPM its own.
func (id *Identity) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("identity: sign: no hash given: %w", ErrUnsupportedHash)
	}
	switch h := opts.HashFunc(); h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("identity: sign: %d-byte digest for %v: %w", len(digest), h, ErrUnsupportedHash)
		}
	default:
		return nil, fmt.Errorf("identity: sign: hash %v: %w", h, ErrUnsupportedHash)
	}
	// One signature at a time: a TPM connection carries one command at a
	// time, and signing is rare (enrollment, TLS handshakes).
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.key == nil {
		return nil, fmt.Errorf("identity: sign: %w", ErrClosed)
	}
	sig, err := id.key.Sign(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("identity: sign with %v key: %w", id.backend, err)
	}
	return sig, nil
}

// Close releases the TPM (the key stays saved). Closing twice is harmless.
func (id *Identity) Close() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.key == nil {
		return nil
	}
	err := id.key.Close()
	id.key = nil
	if err != nil {
		return fmt.Errorf("identity: close: %w", err)
	}
	return nil
}
