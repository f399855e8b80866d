package ca

import "errors"

var (
	// ErrBadCSR: the certificate request does not parse or its signature
	// does not verify with the key it carries.
	ErrBadCSR = errors.New("invalid certificate request")
	// ErrCSRTooLarge: the request is larger than MaxCSRSize; a P-256 request
	// is a few hundred bytes, so anything bigger is not from a device.
	ErrCSRTooLarge = errors.New("certificate request too large")
	// ErrKeyType: the request's key is not ECDSA on P-256, the only kind
	// device identities have.
	ErrKeyType = errors.New("certificate request key is not ECDSA P-256")
	// ErrKeyPermissions: the CA key file is readable or writable by group
	// or others; the CA refuses to use a key that may have leaked.
	ErrKeyPermissions = errors.New("CA key file permissions too open")
	// ErrCorrupt: the CA directory holds a certificate without its key,
	// files that do not parse, or a certificate that does not belong to the
	// key.
	ErrCorrupt = errors.New("CA files unusable")
	// ErrRevoked: the peer's certificate serial is revoked.
	ErrRevoked = errors.New("device certificate revoked")
	// ErrNoClientCert: the handshake carried no verified client certificate.
	ErrNoClientCert = errors.New("no verified client certificate")
)
