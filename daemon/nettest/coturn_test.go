package nettest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/turntest"
)

// servers returns s's STUN and TURN URLs as roomd would configure them.
func servers(s *turntest.Server, password string) []meeting.ICEServer {
	return []meeting.ICEServer{
		{URLs: []string{fmt.Sprintf("stun:%s:%d", s.Addr, s.Port)}},
		{URLs: []string{s.UDPURL, s.TCPURL, s.TLSURL}, Username: turntest.Username, Credential: password},
	}
}

func roots(t *testing.T, s *turntest.Server) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", s.CAFile)
	}
	return p
}

func byURL(r Result) map[string]Check {
	m := map[string]Check{}
	for _, c := range r.Checks {
		m[c.URL] = c
	}
	return m
}

func TestCoturnOpen(t *testing.T) {
	s := turntest.Start(t, turntest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, servers(s, turntest.Password), Options{RootCAs: roots(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Checks {
		if !c.OK || c.RTTMS <= 0 {
			t.Errorf("%s: %+v\n%s", c.URL, c, s.Log())
		}
		if c.Kind == KindTURN && !strings.HasPrefix(c.Relay, s.Addr+":") {
			t.Errorf("%s: relay %q, want one on %s", c.URL, c.Relay, s.Addr)
		}
		if c.Transport != TransportUDP && c.ConnectMS <= 0 {
			t.Errorf("%s: no connect time", c.URL)
		}
	}
	if c := byURL(r)[fmt.Sprintf("stun:%s:%d", s.Addr, s.Port)]; !strings.HasPrefix(c.Reflexive, netns.Addr+":") {
		t.Errorf("reflexive address %q, want one on %s", c.Reflexive, netns.Addr)
	}
	want := Verdict{LevelOK, "All good: calls can use UDP directly", "udp"}
	if r.Verdict != want {
		t.Errorf("verdict %+v, want %+v", r.Verdict, want)
	}
	b := r.Bandwidth
	if b == nil || b.Error != "" || b.Transport != TransportUDP {
		t.Fatalf("bandwidth probe: %+v", b)
	}
	// On a veth link nothing should be lost at 4 Mbps; allow a little.
	if b.SentPackets < 200 || b.LossPercent > 5 || b.ReceivedKbps < 0.8*b.TargetKbps {
		t.Errorf("bandwidth probe: %+v", b)
	}
	t.Logf("result: %+v; bandwidth %+v", r.Verdict, *b)

	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), turntest.Password) || strings.Contains(string(data), turntest.Username) {
		t.Errorf("the result holds credentials: %s", data)
	}
}

func TestCoturnFailures(t *testing.T) {
	s := turntest.Start(t, turntest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("wrong password", func(t *testing.T) {
		r, err := Run(ctx, servers(s, "wrong"), Options{RootCAs: roots(t, s), ProbeDuration: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Checks {
			if c.Kind == KindTURN && c.Failure != FailAuth {
				t.Errorf("%s: %+v, want %s", c.URL, c, FailAuth)
			}
		}
		want := Verdict{LevelWarning, "TURN credentials refused by " + s.Addr + ": calls can use UDP directly, but not through TURN", "udp"}
		if r.Verdict != want || r.Bandwidth != nil {
			t.Errorf("verdict %+v, bandwidth %+v; want %+v and no probe", r.Verdict, r.Bandwidth, want)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		r, err := Run(ctx, []meeting.ICEServer{{URLs: []string{s.TLSURL}, Username: turntest.Username, Credential: turntest.Password}},
			Options{RootCAs: x509.NewCertPool(), ProbeDuration: -1})
		if err != nil {
			t.Fatal(err)
		}
		if c := r.Checks[0]; c.Failure != FailTLS {
			t.Errorf("%+v, want %s", c, FailTLS)
		}
	})

	t.Run("closed port and silent port", func(t *testing.T) {
		// A UDP socket that never answers, and its port over TCP, where
		// nothing listens.
		silent, err := net.ListenPacket("udp4", net.JoinHostPort(netns.Addr, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		port := silent.LocalAddr().(*net.UDPAddr).Port
		start := time.Now()
		r, err := Run(ctx, []meeting.ICEServer{{URLs: []string{
			fmt.Sprintf("stun:%s:%d", netns.Addr, port),
			fmt.Sprintf("turn:%s:%d?transport=tcp", netns.Addr, port),
		}}}, Options{CheckTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %s with a 500ms check timeout", el)
		}
		if c := r.Checks[0]; c.Failure != FailTimeout {
			t.Errorf("%+v, want %s", c, FailTimeout)
		}
		if c := r.Checks[1]; c.Failure != FailUnreachable {
			t.Errorf("%+v, want %s", c, FailUnreachable)
		}
		want := Verdict{LevelFail, "UDP blocked and no TURN server could be reached: calls from this network will fail", ""}
		if r.Verdict != want {
			t.Errorf("verdict %+v, want %+v", r.Verdict, want)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := Run(cctx, servers(s, turntest.Password), Options{RootCAs: roots(t, s)}); err == nil {
			t.Error("Run with a cancelled context succeeded")
		}
	})
}

// TestCoturnRoomWithoutUDP runs the test from a room whose firewall drops
// UDP: calls must fall back to TURN over TCP, or TLS when that is all.
func TestCoturnRoomWithoutUDP(t *testing.T) {
	s := turntest.Start(t, turntest.Options{})
	room := turntest.Firewalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{RootCAs: roots(t, s), Dialer: nsDialer{room.NetNS}, CheckTimeout: 2 * time.Second}

	r, err := Run(ctx, servers(s, turntest.Password), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Checks {
		wantOK := c.Transport != TransportUDP
		if c.OK != wantOK || (!wantOK && c.Failure != FailTimeout) {
			t.Errorf("%s: %+v", c.URL, c)
		}
	}
	want := Verdict{LevelWarning, "UDP blocked: calls will use TURN over TCP", "turn-tcp"}
	if r.Verdict != want {
		t.Errorf("verdict %+v, want %+v", r.Verdict, want)
	}
	if b := r.Bandwidth; b == nil || b.Error != "" || b.Transport != TransportTCP || b.ReceivedPackets == 0 {
		t.Errorf("bandwidth probe: %+v", b)
	} else {
		t.Logf("over TCP: %+v", *b)
	}
	if room.DroppedUDP(t) == 0 {
		t.Errorf("the firewall dropped no UDP:\n%s", room.Rules())
	}

	tlsOnly := servers(s, turntest.Password)
	tlsOnly[1].URLs = []string{s.UDPURL, s.TLSURL}
	r, err = Run(ctx, tlsOnly, opts)
	if err != nil {
		t.Fatal(err)
	}
	want = Verdict{LevelWarning, "UDP blocked: calls will use TURN over TLS", "turn-tls"}
	if r.Verdict != want {
		t.Errorf("verdict %+v, want %+v (checks %+v)", r.Verdict, want, r.Checks)
	}
	if b := r.Bandwidth; b == nil || b.Transport != TransportTLS || b.ReceivedPackets == 0 {
		t.Errorf("bandwidth probe: %+v", b)
	}
}

// nsDialer opens sockets in the network namespace at path: a socket belongs
// to the namespace of the thread that creates it, so each is created on a
// thread moved there, which then dies with its goroutine (a locked thread
// that is never unlocked is not reused).
type nsDialer struct{ path string }

func (d nsDialer) in(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(d.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", d.path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func (d nsDialer) DialContext(ctx context.Context, network, address string) (c net.Conn, err error) {
	err = d.in(func() (err error) {
		var nd net.Dialer
		c, err = nd.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

func (d nsDialer) ListenPacket(ctx context.Context, network, address string) (c net.PacketConn, err error) {
	err = d.in(func() (err error) {
		var lc net.ListenConfig
		c, err = lc.ListenPacket(ctx, network, address)
		return err
	})
	return c, err
}
