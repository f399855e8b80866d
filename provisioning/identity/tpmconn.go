package identity

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Limits of the TPM 2.0 wire format: every command and response starts with
// a 10-byte header (tag, total size, command or response code). Real TPMs
// answer within 4 KiB; the upper bound only stops a confused peer from
// making us allocate without limit.
const (
	tpmHeaderSize     = 10
	maxTPMResponse    = 64 << 10
	defaultTPMTimeout = 2 * time.Minute
)

// socketTPM is a TPM reached over a stream socket that carries raw TPM 2.0
// commands and responses back to back, as swtpm's socket server does by
// default. (The Microsoft simulator's framing that go-tpm's tcp transport
// speaks is a different protocol.)
type socketTPM struct {
	mu      sync.Mutex
	conn    net.Conn
	timeout time.Duration
	// broken is the first I/O error: after it, where one response ends in
	// the stream is unknown, so no later command may be sent.
	broken error
}

// DialTPM connects to a TPM that speaks raw TPM 2.0 over a stream socket:
// swtpm started with "socket --tpm2 --server type=tcp,port=P" (network
// "tcp") or "--server type=unixio,path=P" (network "unix"), with
// "--flags not-need-init,startup-clear" so that no control-channel step is
// needed. Each command must be answered within timeout (0: two minutes;
// key generation on a slow TPM takes seconds). It is meant for Options.OpenTPM
// in tests and development.
func DialTPM(ctx context.Context, network, address string, timeout time.Duration) (transport.TPMCloser, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("identity: dial TPM: %w", err)
	}
	return newSocketTPM(conn, timeout), nil
}

func newSocketTPM(conn net.Conn, timeout time.Duration) *socketTPM {
	if timeout <= 0 {
		timeout = defaultTPMTimeout
	}
	return &socketTPM{conn: conn, timeout: timeout}
}

// Send writes one command and reads its whole response: the header says how
// long the response is.
func (t *socketTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) < tpmHeaderSize {
		return nil, fmt.Errorf("send TPM command: %d bytes is shorter than a header", len(cmd))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return nil, fmt.Errorf("send TPM command: connection unusable after an earlier error: %w", t.broken)
	}
	rsp, err := t.exchange(cmd)
	if err != nil {
		t.broken = err
		return nil, err
	}
	return rsp, nil
}

func (t *socketTPM) exchange(cmd []byte) ([]byte, error) {
	if err := t.conn.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		return nil, fmt.Errorf("send TPM command: %w", err)
	}
	if _, err := t.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("send TPM command: %w", err)
	}
	hdr := make([]byte, tpmHeaderSize)
	if _, err := io.ReadFull(t.conn, hdr); err != nil {
		return nil, fmt.Errorf("read TPM response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < tpmHeaderSize || size > maxTPMResponse {
		return nil, fmt.Errorf("TPM response size %d: %w", size, ErrTPMProtocol)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(t.conn, rsp[tpmHeaderSize:]); err != nil {
		return nil, fmt.Errorf("read TPM response body: %w", err)
	}
	return rsp, nil
}

// Close closes the connection.
func (t *socketTPM) Close() error {
	return t.conn.Close()
}
