package deviceapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// maxCodeLen bounds what is hashed as a code; real ones are 20 characters
// plus the spaces and dashes people type.
const maxCodeLen = 64

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	ok, wait := s.limit.take(client)
	if !ok {
		s.log.Warn("enrollment rate-limited", "client", client, "retry_after", wait)
		writeProblem(w, problem(http.StatusTooManyRequests, fleetapi.CodeRateLimited, "",
			"too many failed enrollment attempts; try again in %s", wait.Round(time.Second)), wait)
		return
	}
	resp, p := s.doEnroll(r.Context(), w, r)
	if p != nil {
		if p.Status >= 500 {
			// The server's failure is not the client's attempt.
			s.limit.refund(client)
		} else {
			s.log.Info("enrollment refused", "client", client, "code", p.Code, "detail", p.Detail)
		}
		writeProblem(w, p, 0)
		return
	}
	s.limit.refund(client)
	s.log.Info("device enrolled", "client", client, "device", resp.DeviceID, "room", resp.RoomID)
	writeJSON(w, resp)
}

// doEnroll runs one enrollment; a nil Problem is a success.
func (s *Server) doEnroll(ctx context.Context, w http.ResponseWriter, r *http.Request) (fleetapi.EnrollResponse, *fleetapi.Problem) {
	var req fleetapi.EnrollRequest
	if p := decodeBody(w, r, &req); p != nil {
		return fleetapi.EnrollResponse{}, p
	}
	switch code := store.NormaliseCode(req.Code); {
	case code == "":
		return fleetapi.EnrollResponse{}, problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "code", "the activation code is missing")
	case len(req.Code) > maxCodeLen:
		// Answered like any unknown code: its length says nothing useful.
		return fleetapi.EnrollResponse{}, problem(http.StatusForbidden, fleetapi.CodeInvalidCode, "code", "unknown activation code")
	}
	// The request is checked before the code, so a guesser learns nothing
	// about a code from a bad CSR, and a device with a broken key does not
	// spend its code.
	if p := checkCSR(req.CSR); p != nil {
		return fleetapi.EnrollResponse{}, p
	}
	hw, err := json.Marshal(req.Facts)
	if err != nil { // cannot happen: Facts is strings only
		return fleetapi.EnrollResponse{}, s.redeemProblem(err)
	}
	var certDER []byte
	dev, err := s.st.Redeem(ctx, store.Redemption{
		Code: req.Code, RoomName: req.RoomName, Hardware: hw,
		Issue: func(deviceID string) (string, time.Time, error) {
			der, serial, notAfter, err := s.ca.Sign(req.CSR, deviceID, s.lifetime)
			certDER = der
			return serial, notAfter, err
		},
	})
	if err != nil {
		return fleetapi.EnrollResponse{}, s.redeemProblem(err)
	}
	room, err := s.st.Room(ctx, dev.RoomID)
	if err != nil {
		// The device exists and holds its certificate; only the name is
		// missing from the answer.
		s.log.Error("enrolled device's room unreadable", "device", dev.ID, "err", err)
	}
	return fleetapi.EnrollResponse{
		DeviceID: dev.ID, RoomID: dev.RoomID, RoomName: room.Name,
		Certificate:    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})),
		CABundle:       string(s.ca.Bundle()),
		CheckInSeconds: int(s.interval / time.Second),
	}, nil
}

// redeemProblem explains a failed redemption.
func (s *Server) redeemProblem(err error) *fleetapi.Problem {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusForbidden, fleetapi.CodeInvalidCode, "code", "unknown activation code")
	case errors.Is(err, store.ErrCodeExpired):
		return problem(http.StatusForbidden, fleetapi.CodeExpiredCode, "code", "the activation code has expired; ask for a new one")
	case errors.Is(err, store.ErrCodeUsed):
		return problem(http.StatusForbidden, fleetapi.CodeUsedCode, "code", "the activation code was used already; ask for a new one")
	case errors.Is(err, store.ErrWrongScope):
		return problem(http.StatusForbidden, fleetapi.CodeWrongScope, "roomName",
			"the activation code covers a whole site: name the room (roomName) the device is in")
	case errors.Is(err, store.ErrInvalid):
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "roomName", "the room name must be at most 63 printable bytes")
	case errors.Is(err, ca.ErrBadCSR), errors.Is(err, ca.ErrKeyType), errors.Is(err, ca.ErrCSRTooLarge):
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "csr", "%v", err)
	}
	s.log.Error("enrollment failed", "err", err)
	return problem(http.StatusInternalServerError, fleetapi.CodeInternal, "", "the server failed to enroll the device; try again later")
}

// checkCSR refuses a request the CA would refuse, with the reason.
func checkCSR(der []byte) *fleetapi.Problem {
	bad := func(format string, args ...any) *fleetapi.Problem {
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "csr", format, args...)
	}
	if len(der) == 0 {
		return bad("the certificate request is missing")
	}
	if len(der) > ca.MaxCSRSize {
		return bad("the certificate request is %d bytes; at most %d", len(der), ca.MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return bad("the certificate request does not parse (DER PKCS#10 expected): %v", err)
	}
	if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return bad("the certificate request's key must be ECDSA P-256")
	}
	if err := csr.CheckSignature(); err != nil {
		return bad("the certificate request's signature does not verify: %v", err)
	}
	return nil
}
