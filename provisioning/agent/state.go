package agent

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// File names inside Options.StateDir.
const (
	deviceFile       = "device.json"
	certFile         = "cert.pem"
	caFile           = "ca.pem"
	profileFile      = "profile.json"
	profilePrevFile  = "profile.prev.json"
	profileStateFile = "profile-state.json"
	outboxDir        = "outbox"
	journalDir       = "commands"
)

// maxStateFile bounds what the agent reads back from its own files, so a
// file grown by accident cannot exhaust memory.
const maxStateFile = 4 << 20

// enrollment is what Enroll stored: device.json plus the parsed
// certificate and CA bundle.
type enrollment struct {
	DeviceID       string    `json:"deviceId"`
	RoomID         string    `json:"roomId"`
	RoomName       string    `json:"roomName"`
	Server         string    `json:"server"`
	CheckInSeconds int       `json:"checkInSeconds"`
	EnrolledAt     time.Time `json:"enrolledAt"`
	// Revoked is set when the server answered CodeRevoked, so a restart
	// does not start calling every minute again.
	Revoked bool `json:"revoked,omitempty"`

	cert  *x509.Certificate
	roots *x509.CertPool
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxStateFile {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, fi.Size(), maxStateFile)
	}
	buf := make([]byte, fi.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && fi.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

// loadEnrollment reads the enrollment; (nil, nil) when there is none.
func loadEnrollment(dir string) (*enrollment, error) {
	data, err := readSmall(filepath.Join(dir, deviceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e enrollment
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, deviceFile), err)
	}
	if e.DeviceID == "" || e.Server == "" {
		return nil, fmt.Errorf("%s: no device ID or server", filepath.Join(dir, deviceFile))
	}
	certPEM, err := readSmall(filepath.Join(dir, certFile))
	if err != nil {
		return nil, err
	}
	if e.cert, err = parseCert(certPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, certFile), err)
	}
	caPEM, err := readSmall(filepath.Join(dir, caFile))
	if err != nil {
		return nil, err
	}
	if e.roots, err = parseBundle(caPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, caFile), err)
	}
	return &e, nil
}

// saveEnrollment writes the certificate and bundle first and device.json
// last: device.json is what makes the device enrolled, so a power cut in
// between leaves it unenrolled rather than half enrolled.
func saveEnrollment(dir string, e *enrollment, certPEM, caPEM []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, certFile), certPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, caFile), caPEM, 0o600); err != nil {
		return err
	}
	return saveDevice(dir, e)
}

func saveDevice(dir string, e *enrollment) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, deviceFile), append(data, '\n'), 0o600)
}

// parseCert reads the first certificate of a PEM block list.
func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

// parseBundle reads every certificate of a PEM bundle; at least one.
func parseBundle(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in the CA bundle")
	}
	return pool, nil
}

// storedProfile is profile.json and profile.prev.json.
type storedProfile struct {
	Version string          `json:"version"`
	Body    json.RawMessage `json:"body"`
}

// profileState is profile-state.json.
type profileState struct {
	Applied string                  `json:"applied"`
	Last    fleetapi.ProfileOutcome `json:"last"`
	// Settling is the version being watched for health. Set before it is
	// applied and cleared when it is judged: found set at start, roomd
	// restarted during the settle period, which counts as unhealthy.
	Settling string `json:"settling,omitempty"`
	// SettleUntil is when Settling counts as applied if roomd stayed
	// healthy.
	SettleUntil time.Time `json:"settleUntil,omitzero"`
	// Refused lists versions rejected or rolled back, never tried again
	// (the newest maxRefused).
	Refused []string `json:"refused,omitempty"`
}

const maxRefused = 32

func (a *Agent) loadProfileState() profileState {
	var st profileState
	data, err := readSmall(filepath.Join(a.opts.StateDir, profileStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st
	}
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		// Forgetting the applied version costs one re-apply of the
		// server's profile, which is harmless; refusing to run is not.
		a.log.Error("fleet agent: profile state unreadable; starting from none", "file", profileStateFile, "err", err)
		return profileState{}
	}
	return st
}

func (a *Agent) saveProfileState(st profileState) error {
	if len(st.Refused) > maxRefused {
		st.Refused = st.Refused[len(st.Refused)-maxRefused:]
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(a.opts.StateDir, profileStateFile), append(data, '\n'), 0o600)
}

// loadProfile reads profile.json or profile.prev.json; an absent file is
// the empty profile (no fleet settings).
func (a *Agent) loadProfile(name string) (storedProfile, error) {
	empty := storedProfile{Body: json.RawMessage("{}")}
	data, err := readSmall(filepath.Join(a.opts.StateDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, err
	}
	var p storedProfile
	if err := json.Unmarshal(data, &p); err != nil || len(p.Body) == 0 {
		return empty, fmt.Errorf("%s: not a stored profile: %v", name, err)
	}
	return p, nil
}

func (a *Agent) saveProfile(name string, p storedProfile) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// 0600: profiles carry secrets (calendar password, TURN credentials,
	// the admin PIN).
	return atomicfile.Write(filepath.Join(a.opts.StateDir, name), append(data, '\n'), 0o600)
}
