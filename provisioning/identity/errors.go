package identity

import "errors"

var (
	// ErrDamaged means a stored key file cannot be parsed. The error names
	// the file. The file is left as it is: replacing it would give the
	// device a new identity the fleet does not know.
	ErrDamaged = errors.New("identity key file is damaged")

	// ErrInsecurePermissions means the file key may be read by group or
	// others, or is not a regular file. It is refused, not repaired: see the
	// package documentation.
	ErrInsecurePermissions = errors.New("identity key file has insecure permissions")

	// ErrTPMRejectedKey means the TPM refused to load the saved key: the
	// blobs were made by another TPM, or this TPM's owner hierarchy was
	// cleared since. The saved key can never be used again on this device.
	ErrTPMRejectedKey = errors.New("the TPM rejects the saved identity key")

	// ErrTPMUnavailable means the identity lives in a TPM that cannot be
	// opened (absent, or access denied).
	ErrTPMUnavailable = errors.New("the TPM holding the identity key is unavailable")

	// ErrBackendMismatch means the identity that exists is not where
	// Options.Backend demands it, or both a file key and a TPM key exist.
	ErrBackendMismatch = errors.New("identity key exists in another backend")

	// ErrUnsupportedHash means Sign was given a digest whose hash is not
	// SHA-256, SHA-384 or SHA-512, or whose length does not match it.
	ErrUnsupportedHash = errors.New("unsupported signature hash")

	// ErrClosed means the Identity was used after Close.
	ErrClosed = errors.New("identity is closed")

	// ErrTPMProtocol means a TPM socket (DialTPM) sent something that is
	// not a TPM 2.0 response.
	ErrTPMProtocol = errors.New("malformed TPM response")

	// ErrNoStableID means the facts carry neither a usable serial number nor
	// a machine ID, so a CSR would have no subject.
	ErrNoStableID = errors.New("no serial number or machine ID for the CSR subject")
)
