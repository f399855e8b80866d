package fleetload

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Device is one simulated device's identity: its fleet ID, its room and
// the client certificate (with its private key) it presents.
type Device struct {
	ID       string
	RoomID   string
	RoomName string
	Serial   string // the hardware serial in its facts
	Cert     tls.Certificate
}

// MaxDevices bounds how many devices one Provision call or Generator
// creates: a benchmark on one machine has no use for more, and the bound
// keeps a mistyped count from exhausting memory.
const MaxDevices = 20000

// newKeyAndCSR makes a device key and its enrollment CSR, carrying the
// hardware serial as the subject's serialNumber like provisioning/identity.
func newKeyAndCSR(serial string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "atrium-sim", SerialNumber: serial},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR for %s: %w", serial, err)
	}
	return key, csr, nil
}

// facts are the hardware facts a simulated device reports.
func facts(serial string, n int) fleetapi.Facts {
	return fleetapi.Facts{
		Model: "Atrium Sim Room Bar", Vendor: "Atrium", Serial: serial,
		MACs:      []string{fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", byte(n>>24), byte(n>>16), byte(n>>8), byte(n))},
		MachineID: fmt.Sprintf("%032x", n+1),
	}
}

// ProvisionOptions configure [Provision].
type ProvisionOptions struct {
	// Store and CA are the fleet's own, opened on fleetd's database and CA
	// directory (before fleetd runs, or beside it). Required.
	Store *store.Store
	CA    *ca.CA
	// Count is how many devices to create, 1 to MaxDevices.
	Count int
	// DevicesPerRoom groups devices into rooms (default 1: one appliance
	// per meeting room, as fleets are).
	DevicesPerRoom int
	// Name prefixes the organisation, site and rooms created (default
	// "fleetload"); it must be new to the store.
	Name string
	// CertLifetime is the device certificates' (default ca.DefaultLifetime).
	CertLifetime time.Duration
}

// Fleet is what Provision created.
type Fleet struct {
	OrgID, SiteID string
	Devices       []Device
}

// Provision creates an organisation, a site, rooms and opts.Count devices
// in the store, each enrolled with its own single-use code redeemed with
// its own CSR and a certificate from the fleet's CA, as the enrollment
// endpoint would do — without its rate limit. Keys stay in memory.
func Provision(ctx context.Context, opts ProvisionOptions) (Fleet, error) {
	if opts.Store == nil || opts.CA == nil {
		return Fleet{}, errors.New("fleetload: provision: Store and CA are required")
	}
	if opts.Count < 1 || opts.Count > MaxDevices {
		return Fleet{}, fmt.Errorf("fleetload: provision: count %d: %w", opts.Count, ErrTooMany)
	}
	if opts.DevicesPerRoom <= 0 {
		opts.DevicesPerRoom = 1
	}
	if opts.Name == "" {
		opts.Name = "fleetload"
	}
	const actor = "fleetload"
	org, err := opts.Store.CreateOrganisation(ctx, actor, opts.Name)
	if err != nil {
		return Fleet{}, fmt.Errorf("fleetload: provision: %w", err)
	}
	site, err := opts.Store.CreateSite(ctx, actor, org.ID, opts.Name+" site")
	if err != nil {
		return Fleet{}, fmt.Errorf("fleetload: provision: %w", err)
	}
	f := Fleet{OrgID: org.ID, SiteID: site.ID, Devices: make([]Device, 0, opts.Count)}
	var room store.Room
	for i := range opts.Count {
		if i%opts.DevicesPerRoom == 0 {
			room, err = opts.Store.CreateRoom(ctx, actor, site.ID, fmt.Sprintf("%s room %d", opts.Name, i/opts.DevicesPerRoom+1))
			if err != nil {
				return Fleet{}, fmt.Errorf("fleetload: provision: %w", err)
			}
		}
		d, err := provisionOne(ctx, opts, room, fmt.Sprintf("%s-%06d", opts.Name, i+1), i)
		if err != nil {
			return Fleet{}, fmt.Errorf("fleetload: provision device %d of %d: %w", i+1, opts.Count, err)
		}
		f.Devices = append(f.Devices, d)
	}
	return f, nil
}

// provisionOne enrolls one device the way the enrollment endpoint does:
// a code for its room, redeemed with its facts, and a certificate whose
// common name is the device ID the store assigned.
func provisionOne(ctx context.Context, opts ProvisionOptions, room store.Room, serial string, n int) (Device, error) {
	key, csr, err := newKeyAndCSR(serial)
	if err != nil {
		return Device{}, err
	}
	code, _, err := opts.Store.CreateEnrollmentCode(ctx, "fleetload", store.CodeScope{RoomID: room.ID}, time.Hour)
	if err != nil {
		return Device{}, err
	}
	hw, err := json.Marshal(facts(serial, n))
	if err != nil {
		return Device{}, fmt.Errorf("encode facts: %w", err)
	}
	// The store names the device while it spends the code, and the
	// certificate carries that name: it is issued inside the redeeming
	// transaction, as the enrollment endpoint does.
	var der []byte
	dev, err := opts.Store.Redeem(ctx, store.Redemption{
		Code: code, Hardware: hw,
		Issue: func(deviceID string) (string, time.Time, error) {
			var serial string
			var notAfter time.Time
			var err error
			der, serial, notAfter, err = opts.CA.Sign(csr, deviceID, opts.CertLifetime)
			return serial, notAfter, err
		},
	})
	if err != nil {
		return Device{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Device{}, fmt.Errorf("parse certificate of %s: %w", dev.ID, err)
	}
	return Device{
		ID: dev.ID, RoomID: room.ID, RoomName: room.Name, Serial: serial,
		Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}, nil
}

// EnrollOptions configure [Enroll].
type EnrollOptions struct {
	// BaseURL is fleetd's device API on a loopback host, e.g.
	// "https://localhost:8443".
	BaseURL string
	// Roots verify fleetd's server certificate (the fleet CA's bundle, as
	// a factory image would carry it).
	Roots *x509.CertPool
	// Code is the activation code; RoomName names the room for a code that
	// covers a whole site.
	Code     string
	RoomName string
	// Serial is the simulated hardware serial.
	Serial string
	// Timeout bounds the request (default 10 s).
	Timeout time.Duration
}

// Enroll enrolls one new device through fleetd's enrollment endpoint
// (fleetapi.PathEnroll) with a fresh key, as roomd does with a typed code.
// A refusal comes back as a *fleetapi.Problem in the error chain.
func Enroll(ctx context.Context, opts EnrollOptions) (Device, fleetapi.EnrollResponse, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if u, err := url.Parse(opts.BaseURL); err != nil || u.Scheme != "https" || !loopbackHost(u.Hostname()) {
		return Device{}, fleetapi.EnrollResponse{}, fmt.Errorf("fleetload: enroll: base URL %q is not https on a loopback host", opts.BaseURL)
	}
	key, csr, err := newKeyAndCSR(opts.Serial)
	if err != nil {
		return Device{}, fleetapi.EnrollResponse{}, fmt.Errorf("fleetload: enroll: %w", err)
	}
	body, err := json.Marshal(fleetapi.EnrollRequest{Code: opts.Code, CSR: csr, Facts: facts(opts.Serial, 0), RoomName: opts.RoomName})
	if err != nil {
		return Device{}, fleetapi.EnrollResponse{}, fmt.Errorf("fleetload: enroll: encode request: %w", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: opts.Roots, MinVersion: tls.VersionTLS13}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: opts.Timeout}
	var resp fleetapi.EnrollResponse
	if err := postJSON(ctx, client, opts.BaseURL+fleetapi.PathEnroll, body, &resp); err != nil {
		return Device{}, fleetapi.EnrollResponse{}, fmt.Errorf("fleetload: enroll %s: %w", opts.Serial, err)
	}
	block, _ := pem.Decode([]byte(resp.Certificate))
	if block == nil || block.Type != "CERTIFICATE" {
		return Device{}, resp, fmt.Errorf("fleetload: enroll %s: response certificate is not a PEM certificate", opts.Serial)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Device{}, resp, fmt.Errorf("fleetload: enroll %s: parse certificate: %w", opts.Serial, err)
	}
	if leaf.Subject.CommonName != resp.DeviceID {
		return Device{}, resp, fmt.Errorf("fleetload: enroll %s: certificate names %q, response device %q", opts.Serial, leaf.Subject.CommonName, resp.DeviceID)
	}
	return Device{
		ID: resp.DeviceID, RoomID: resp.RoomID, RoomName: resp.RoomName, Serial: opts.Serial,
		Cert: tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf},
	}, resp, nil
}

// postJSON posts body and decodes a 2xx answer strictly into out; any other
// status becomes an error carrying the server's Problem when it sent one.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, fleetapi.MaxBody+1))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if len(raw) > fleetapi.MaxBody {
		return fmt.Errorf("response larger than %d bytes", fleetapi.MaxBody)
	}
	if resp.StatusCode/100 != 2 {
		var p fleetapi.Problem
		if json.Unmarshal(raw, &p) == nil && p.Code != "" {
			return fmt.Errorf("status %d: %w", resp.StatusCode, &p)
		}
		return fmt.Errorf("status %d: %.200q", resp.StatusCode, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
