package identity

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
)

// CSR returns a PKCS#10 certificate request (DER) signed by the device's
// key, for enrollment. Its subject's common name is f.StableID(), and its
// serialNumber attribute the hardware serial when that is usable.
//
// The MAC addresses and the rest of the facts are not in the request: they
// are no property of the key, they change when a network card does, and
// there is no standard place for them in a certificate. They travel next to
// the CSR in the enrollment request, and the server decides what its
// certificate says.
func (id *Identity) CSR(f Facts) ([]byte, error) {
	cn, err := f.StableID()
	if err != nil {
		return nil, fmt.Errorf("identity: CSR: %w", err)
	}
	subject := pkix.Name{CommonName: cn}
	if f.UsableSerial() {
		subject.SerialNumber = f.Serial
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            subject,
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, id)
	if err != nil {
		return nil, fmt.Errorf("identity: CSR: %w", err)
	}
	return der, nil
}
