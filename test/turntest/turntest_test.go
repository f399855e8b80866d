package turntest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/turntest"
)

func TestMain(m *testing.M) { netns.Main(m) }

// TestRelay checks the server itself with pion's TURN client, over each
// transport a room may use: the credentials work, the TLS certificate
// verifies against CAFile for the server's IP address, and the server
// relays UDP to and from a peer in the test namespace.
func TestRelay(t *testing.T) {
	s := turntest.Start(t, turntest.Options{})
	for _, u := range []string{s.UDPURL, s.TCPURL, s.TLSURL} {
		if !strings.Contains(u, s.Addr) {
			t.Errorf("URL %q does not name %s", u, s.Addr)
		}
	}
	peer, err := net.ListenPacket("udp4", net.JoinHostPort(netns.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			c := dial(t, s, transport, turntest.Password)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v\n%s", err, s.Log())
			}
			defer relay.Close()
			if ip := relay.LocalAddr().(*net.UDPAddr).IP.String(); ip != s.Addr {
				t.Errorf("relayed address %s, want one on %s", relay.LocalAddr(), s.Addr)
			}

			msg := []byte("to the peer over " + transport)
			if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			got, from := readPacket(t, peer)
			if string(got) != string(msg) || from.String() != relay.LocalAddr().String() {
				t.Fatalf("peer got %q from %s, want %q from %s", got, from, msg, relay.LocalAddr())
			}
			// Longer than 4 bytes: pion's STUNConn waits for a 9th byte
			// before it parses a frame, so it holds a 4-byte ChannelData
			// payload back until the next frame.
			back := []byte("back from the peer")
			if _, err := peer.WriteTo(back, from); err != nil {
				t.Fatal(err)
			}
			if got, _ := readPacket(t, relay); string(got) != string(back) {
				t.Fatalf("client got %q, want %q", got, back)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		c := dial(t, s, "tcp", "not-"+turntest.Password)
		if relay, err := c.Allocate(); err == nil {
			relay.Close()
			t.Fatal("allocated with a wrong password")
		}
	})

	t.Run("peer outside the namespace", func(t *testing.T) {
		c := dial(t, s, "tcp", turntest.Password)
		relay, err := c.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		// The permission to a loopback peer is refused (403): the server
		// relays only inside the test namespace's subnet.
		if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
			t.Fatal("permission to 127.0.0.1 granted")
		}
	})
}

// dial connects a TURN client to s over transport (udp, tcp or tls).
func dial(t *testing.T, s *turntest.Server, transport, password string) *turn.Client {
	t.Helper()
	addr := net.JoinHostPort(s.Addr, fmt.Sprint(s.Port))
	var conn net.PacketConn
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(netns.Addr, "0"))
		if err != nil {
			t.Fatal(err)
		}
		conn = pc
	case "tcp":
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	case "tls":
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatalf("no certificate in %s", s.CAFile)
		}
		addr = net.JoinHostPort(s.Addr, fmt.Sprint(s.TLSPort))
		// No ServerName: Go verifies the IP address in the URL, as pion's
		// ICE agent does for a turns: URL.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatalf("TLS to the TURN server: %v", err)
		}
		conn = turn.NewSTUNConn(c)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr,
		TURNServerAddr: addr,
		Conn:           conn,
		Username:       turntest.Username,
		Password:       password,
		Realm:          turntest.Realm,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

func readPacket(t *testing.T, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read from %s: %v", pc.LocalAddr(), err)
	}
	return buf[:n], from
}

// TestRoomFirewall checks the room's network from inside it: TCP reaches
// the test namespace, UDP does not while blocked (and is counted), and does
// once allowed; Forward reaches a loopback-only server; Wrap runs a program
// in the room.
func TestRoomFirewall(t *testing.T) {
	room := turntest.Firewalled(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := exec.CommandContext(ctx, room.Wrap(t, "/usr/sbin/ip"), "-4", "-o", "addr", "show").CombinedOutput()
	out := string(raw)
	if err != nil || !strings.Contains(out, room.Addr+"/24") || strings.Contains(out, netns.Addr+"/") {
		t.Fatalf("addresses in the room: %v\n%s", err, out)
	}

	tcp, err := net.Listen("tcp", net.JoinHostPort(netns.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp4", net.JoinHostPort(netns.Addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port

	// TCP passes.
	accepted := make(chan string, 1)
	go func() {
		c, err := tcp.Accept()
		if err != nil {
			accepted <- err.Error()
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		accepted <- line
	}()
	if out, err := inRoom(t, room, fmt.Sprintf("echo over-tcp >/dev/tcp/%s/%d", netns.Addr, tcp.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatalf("TCP from the room: %v\n%s", err, out)
	}
	if got := <-accepted; got != "over-tcp\n" {
		t.Fatalf("TCP from the room: got %q", got)
	}

	// UDP is dropped, and counted.
	before := room.DroppedUDP(t)
	send := fmt.Sprintf("echo over-udp >/dev/udp/%s/%d", netns.Addr, udpPort)
	if out, err := inRoom(t, room, send); err != nil {
		t.Fatalf("UDP from the room: %v\n%s", err, out)
	}
	_ = udp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, from, err := udp.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("UDP passed the firewall: %d bytes from %s\n%s", n, from, room.Rules())
	}
	if after := room.DroppedUDP(t); after <= before {
		t.Errorf("dropped UDP packets: %d before, %d after\n%s", before, after, room.Rules())
	}
	// Towards the room too.
	before = room.DroppedUDP(t)
	c, err := net.Dial("udp4", net.JoinHostPort(room.Addr, "9"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for room.DroppedUDP(t) == before {
		if time.Now().After(deadline) {
			t.Fatalf("UDP towards the room was not dropped\n%s", room.Rules())
		}
		_, _ = c.Write([]byte("x"))
		time.Sleep(50 * time.Millisecond)
	}

	// Allowed, it passes.
	room.AllowUDP(t)
	if out, err := inRoom(t, room, send); err != nil {
		t.Fatalf("UDP from the room: %v\n%s", err, out)
	}
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _, err := udp.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "over-udp\n" {
		t.Fatalf("UDP with the firewall open: %q, %v", buf[:n], err)
	}
	room.BlockUDP(t)
	if !strings.Contains(room.Rules(), "udp") {
		t.Fatalf("UDP not blocked again:\n%s", room.Rules())
	}

	// A loopback-only server, reached through Forward.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte("echo " + line))
	}()
	fwd := room.Forward(t, echo.Addr().String())
	host, port, _ := net.SplitHostPort(fwd)
	out, err = inRoom(t, room, fmt.Sprintf("exec 3<>/dev/tcp/%s/%s; echo hello >&3; read -t 5 line <&3; echo \"$line\"", host, port))
	if err != nil || out != "echo hello\n" {
		t.Fatalf("through Forward: %v: %q", err, out)
	}
}

// inRoom runs a bash script in the room, for its /dev/tcp and /dev/udp.
func inRoom(t *testing.T, room *turntest.Room, script string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := room.Command(ctx, "bash", "-c", script).CombinedOutput()
	return string(out), err
}
