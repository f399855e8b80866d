package ca

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"
)

// RevocationTimeout bounds one revocation lookup during a handshake.
const RevocationTimeout = 5 * time.Second

// RevokedFunc reports whether a certificate serial (SerialString form) is
// revoked. Its ctx ends after RevocationTimeout. An error refuses the
// connection: when the fleet cannot tell, it fails closed.
type RevokedFunc func(ctx context.Context, serial string) (bool, error)

// ServerTLS returns fleetd's TLS configuration for device endpoints:
// TLS 1.3, serverCert as the server's certificate, and a client
// certificate required that chains to this CA, is valid for client auth at
// the CA's clock, and whose serial isRevoked does not report revoked. The
// check runs at every handshake, so a revoked device is cut off at its
// next connection.
//
// The configuration is self-contained (no GetConfigForClient), so
// http.Server may clone it and add its ALPN protocols.
func (c *CA) ServerTLS(serverCert tls.Certificate, isRevoked RevokedFunc) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.Pool(),
		Time:         c.now,
		// VerifyConnection runs after the chain is verified, on resumed
		// sessions too (VerifyPeerCertificate would not), so a revoked
		// device cannot come back on an old session ticket.
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkRevoked(cs, isRevoked)
		},
	}
}

func checkRevoked(cs tls.ConnectionState, isRevoked RevokedFunc) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ErrNoClientCert
	}
	serial := SerialString(cs.VerifiedChains[0][0])
	// tls.ConnectionState carries no context; bound the lookup so a stuck
	// store cannot hold handshakes forever.
	ctx, cancel := context.WithTimeout(context.Background(), RevocationTimeout)
	defer cancel()
	revoked, err := isRevoked(ctx, serial)
	if err != nil {
		return fmt.Errorf("ca: revocation check for %s: %w", serial, err)
	}
	if revoked {
		return fmt.Errorf("ca: certificate %s: %w", serial, ErrRevoked)
	}
	return nil
}
