// Package ca is fleetd's certificate authority for device identities
// (issue 6 §1 "Enrollment", §2 "device endpoints require mTLS with a
// non-revoked device certificate").
//
// A device proves itself with an ECDSA P-256 key that never leaves it (see
// provisioning/identity); at enrollment it sends a certificate request, and
// the CA answers with a short-lived, client-auth-only certificate whose
// common name is the fleet's ID for the device, whatever the request
// claimed. fleetd's device endpoints then accept a TLS connection only with
// such a certificate whose serial the fleet has not revoked (ServerTLS), so
// revoking a device cuts it off at its next handshake.
//
// The CA's key and self-signed certificate live in one directory: the key
// as PKCS#8 PEM readable by its owner only (a looser key file is refused),
// the certificate as PEM. Both are created on first start and written
// atomically, so a crash leaves either no CA or a whole one.
//
// Serials are 128 random bits, written as 32 lowercase hex digits
// (SerialString); the fleet store keeps them in that form.
package ca
