package netns_test

import (
	"net"
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// The tests run in a namespace with loopback and the veth pair only, and the
// private address is there: no route leads anywhere else.
func TestIsolated(t *testing.T) {
	if !netns.Inside() {
		t.Fatal("not inside the test namespace")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, i := range ifs {
		names[i.Name] = true
	}
	if len(ifs) != 3 || !names["lo"] || !names[netns.Interface] || !names[netns.Interface+"p"] {
		t.Fatalf("interfaces %v, want lo and the %s pair only", names, netns.Interface)
	}
	ln, err := net.ListenPacket("udp", net.JoinHostPort(netns.Addr, "0"))
	if err != nil {
		t.Fatalf("bind %s: %v", netns.Addr, err)
	}
	ln.Close()
	if _, err := net.Dial("udp", "192.0.2.1:9"); err == nil {
		// Dial of UDP succeeds only with a route; there must be none.
		t.Error("a route out of the namespace exists")
	}
}
