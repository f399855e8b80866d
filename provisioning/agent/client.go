package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// CallError is a refusal from the fleet server: the Problem it sent (or one
// made from the status when the body was not a Problem) and how long it
// asked the device to wait (Retry-After), if it did. It unwraps to the
// *fleetapi.Problem, so errors.As finds the code ("expired-code"…).
type CallError struct {
	Problem    *fleetapi.Problem
	RetryAfter time.Duration
}

func (e *CallError) Error() string { return "fleet server: " + e.Problem.Error() }

// Unwrap returns the Problem.
func (e *CallError) Unwrap() error { return e.Problem }

// parsePin accepts a SHA-256 fingerprint as 64 hex digits, optionally with
// colons and a "sha256:" prefix, in either case.
func parsePin(pin string) ([]byte, error) {
	s := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(pin)), "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("server CA pin %q is not a SHA-256 fingerprint (64 hex digits)", pin)
	}
	return b, nil
}

// firstContactTLS is the trust for enrollment, before the device knows the
// fleet's CA bundle: the configured CA, or the pin, or the system roots.
func (a *Agent) firstContactTLS(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: host, Time: a.clock.Now}
	switch {
	case len(a.opts.ServerCA) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(a.opts.ServerCA) {
			return nil, errors.New("Options.ServerCA holds no PEM certificate")
		}
		cfg.RootCAs = pool
	case a.pin != nil:
		pin := a.pin
		// The pin names one certificate the server presents (the fleet CA
		// when fleetd sends it in its chain, else the server's own); the
		// leaf must chain to it and match the host. The standard
		// verification cannot express "this one root", so it is done here.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyPinned(cs, pin, host, a.clock.Now())
		}
	}
	return cfg, nil
}

func verifyPinned(cs tls.ConnectionState, pin []byte, host string, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	for _, c := range cs.PeerCertificates {
		sum := sha256.Sum256(c.Raw)
		if !bytes.Equal(sum[:], pin) {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		inter := x509.NewCertPool()
		for _, other := range cs.PeerCertificates[1:] {
			inter.AddCert(other)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now,
		})
		if err != nil {
			return fmt.Errorf("server certificate does not chain to the pinned one: %w", err)
		}
		return nil
	}
	return errors.New("no certificate the server presented matches the configured pin")
}

// deviceTLS is the trust once enrolled: only the fleet's CA bundle, and the
// device certificate with the identity's key.
func (a *Agent) deviceTLS(host string, id *enrollment) *tls.Config {
	cert := &tls.Certificate{Certificate: [][]byte{id.cert.Raw}, PrivateKey: a.opts.Signer, Leaf: id.cert}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: host,
		RootCAs:    id.roots,
		Time:       a.clock.Now,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	}
}

// httpClient makes a client for one exchange. Keep-alives are off: a
// device calls once a minute at most, and a fresh handshake each time is
// what makes a revocation effective at the next call. It also leaves no
// idle connection (or goroutine) behind.
func (a *Agent) httpClient(cfg *tls.Config) *http.Client {
	dial := a.opts.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 15 * time.Second}
		dial = d.DialContext
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            dial,
			TLSClientConfig:        cfg,
			DisableKeepAlives:      true,
			ForceAttemptHTTP2:      false,
			TLSHandshakeTimeout:    15 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		// The device API never redirects; following one would carry the
		// device's credentials somewhere unplanned.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// endpoint joins the server's base URL and a path.
func endpoint(server, path string, query url.Values) (string, string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("fleet server %q is not an https URL", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	return u.String(), u.Hostname(), nil
}

// post sends body (JSON unless contentType says otherwise) and decodes a
// 2xx answer into out (when out is not nil). A JSON call is bounded by
// Options.RequestTimeout; an upload only by ctx.
func (a *Agent) post(ctx context.Context, client *http.Client, target, contentType string, body []byte, out any) error {
	if contentType == "application/json" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.opts.RequestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, fleetapi.MaxBody+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if len(data) > fleetapi.MaxBody {
		return fmt.Errorf("answer larger than %d bytes", fleetapi.MaxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &CallError{Problem: problemFrom(resp.StatusCode, data), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), a.clock.Now())}
	}
	if out == nil {
		return nil
	}
	// Answers are decoded leniently on purpose: fleetd is upgraded before
	// the devices, and a field a newer server adds must not cut off every
	// older device. What the device acts on is checked where it is used.
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// problemFrom reads a Problem body, or makes one from the status.
func problemFrom(status int, body []byte) *fleetapi.Problem {
	var p fleetapi.Problem
	if err := json.Unmarshal(body, &p); err == nil && p.Code != "" {
		p.Status = status
		return &p
	}
	detail := strings.TrimSpace(string(body))
	if len(detail) > 200 {
		detail = detail[:200] + "…"
	}
	if detail == "" {
		detail = http.StatusText(status)
	}
	code := fleetapi.CodeInternal
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		code = fleetapi.CodeBadRequest
	case http.StatusUnauthorized:
		code = fleetapi.CodeUnauthorized
	case http.StatusTooManyRequests:
		code = fleetapi.CodeRateLimited
	}
	return &fleetapi.Problem{Status: status, Code: code, Detail: detail}
}

// retryAfter parses Retry-After: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// problemOf returns the server's Problem inside err, if any.
func problemOf(err error) *fleetapi.Problem {
	var p *fleetapi.Problem
	if errors.As(err, &p) {
		return p
	}
	return nil
}
