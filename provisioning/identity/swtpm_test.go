package identity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// swtpm is Debian's software TPM (packages swtpm, swtpm-tools) serving raw
// TPM 2.0 commands on a socket, started by the test.
type swtpm struct {
	cmd     *exec.Cmd
	network string
	addr    string
	logPath string
}

// startSwtpm runs swtpm on stateDir, serving on a Unix socket in a fresh
// directory. It fails the test when swtpm is not installed.
func startSwtpm(t *testing.T, stateDir string) *swtpm {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tpm.sock")
	return launchSwtpm(t, stateDir, "unix", sock, "type=unixio,path="+sock)
}

// startSwtpmTCP runs swtpm serving on a loopback TCP port. swtpm takes a
// port number, not a listener, so a port found free may be taken by the
// time swtpm binds it: a few attempts cover that.
func startSwtpmTCP(t *testing.T, stateDir string) *swtpm {
	t.Helper()
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		s, err := trySwtpm(t, stateDir, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port))
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("swtpm on TCP: %v", lastErr)
	return nil
}

func launchSwtpm(t *testing.T, stateDir, network, addr, server string) *swtpm {
	t.Helper()
	s, err := trySwtpm(t, stateDir, network, addr, server)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trySwtpm(t *testing.T, stateDir, network, addr, server string) (*swtpm, error) {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm is required for the TPM tests (apt-get install swtpm swtpm-tools): %v", err)
	}
	s := &swtpm{network: network, addr: addr, logPath: filepath.Join(t.TempDir(), "swtpm.log")}
	// not-need-init and startup-clear: swtpm powers the TPM on and sends
	// TPM2_Startup itself, as firmware does before the kernel sees a TPM,
	// so no control channel is needed.
	s.cmd = exec.Command(bin, "socket", "--tpm2",
		"--server", server,
		"--flags", "not-need-init,startup-clear",
		"--tpmstate", "dir="+stateDir,
		"--log", "file="+s.logPath+",level=1")
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	// Ready when a connection is accepted; the TPM answers a command on it
	// in the tests proper.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			s.stop(t)
			return nil, fmt.Errorf("swtpm did not listen on %s %s: %w; log:\n%s", network, addr, err, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { s.stop(t) })
	return s, nil
}

func (s *swtpm) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// stop terminates swtpm and waits for it; swtpm writes its state as it
// goes, so the state directory is whole afterwards. Stopping twice is
// harmless.
func (s *swtpm) stop(t *testing.T) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("stop swtpm: %v", err)
	}
	err := s.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Errorf("wait for swtpm: %v", err)
	}
}

// opener is an Options.OpenTPM that connects to this swtpm.
func (s *swtpm) opener(ctx context.Context, _ string) (transport.TPMCloser, error) {
	return DialTPM(ctx, s.network, s.addr, 10*time.Second)
}
