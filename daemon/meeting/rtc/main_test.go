package rtc

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind. Registered
// first, it runs as the last cleanup, after peers and the network closed.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testContext bounds a test: the slowest here needs about 10 s under -race.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// lockedBuffer collects logs; they are printed only when a test fails, so
// nothing logs through t after the test ended.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	b := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RTC_TEST_LOGS") != "" {
			b.mu.Lock()
			t.Logf("logs:\n%s", b.buf.String())
			b.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testNet is a virtual network: one router, one NIC per factory. A loss
// rate can be set for RTP from one address, as a lossy uplink.
type testNet struct {
	router   *vnet.Router
	lossFrom atomic.Pointer[net.IP]
	lossPct  atomic.Int32
	dropped  atomic.Int64
	// partitioned drops everything, both ways.
	partitioned atomic.Bool
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	r, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          "10.77.0.0/24",
		LoggerFactory: pionLogs{log: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatalf("vnet router: %v", err)
	}
	n := &testNet{router: r}
	r.AddChunkFilter(n.filter)
	return n
}

func (n *testNet) filter(c vnet.Chunk) bool {
	if n.partitioned.Load() {
		return false
	}
	pct := n.lossPct.Load()
	if pct == 0 {
		return true
	}
	from := n.lossFrom.Load()
	src, ok := c.SourceAddr().(*net.UDPAddr)
	if !ok || from == nil || !src.IP.Equal(*from) {
		return true
	}
	// Only RTP (RFC 5761: payload types 96-127 here), not STUN, DTLS or
	// RTCP, so ICE and feedback keep working.
	d := c.UserData()
	if len(d) < 2 || d[0]>>6 != 2 || d[1]&0x7f < 96 {
		return true
	}
	if rand.Int32N(100) < pct {
		n.dropped.Add(1)
		return false
	}
	return true
}

func (n *testNet) setLoss(ip string, pct int) {
	a := net.ParseIP(ip)
	n.lossFrom.Store(&a)
	n.lossPct.Store(int32(pct))
}

func (n *testNet) nic(t *testing.T, ip string) *vnet.Net {
	t.Helper()
	nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	if err != nil {
		t.Fatalf("vnet net: %v", err)
	}
	if err := n.router.AddNet(nw); err != nil {
		t.Fatalf("add vnet net: %v", err)
	}
	return nw
}

func (n *testNet) start(t *testing.T) {
	t.Helper()
	if err := n.router.Start(); err != nil {
		t.Fatalf("start vnet: %v", err)
	}
	t.Cleanup(func() { _ = n.router.Stop() })
}

const (
	senderIP   = "10.77.0.2"
	receiverIP = "10.77.0.3"
)

// testSettings shortens ICE timeouts so failures show within a test.
func testSettings(se *webrtc.SettingEngine) {
	se.SetICETimeouts(3*time.Second, 6*time.Second, 250*time.Millisecond)
}

func newTestFactory(t *testing.T, nw *vnet.Net, cfg Config, media Media) *Factory {
	t.Helper()
	cfg.Net = nw
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.SettingEngine == nil {
		cfg.SettingEngine = testSettings
	}
	f, err := New(cfg, media)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

func newTestPeer(t *testing.T, ctx context.Context, f *Factory, role meeting.PeerRole, label string) *Peer {
	t.Helper()
	mp, err := f.NewPeer(ctx, meeting.PeerOptions{Role: role, Label: label})
	if err != nil {
		t.Fatalf("NewPeer %s: %v", label, err)
	}
	p := mp.(*Peer)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close %s: %v", label, err)
		}
	})
	return p
}

// connect runs offer/answer from a to b, as a provider would.
func connect(t *testing.T, ctx context.Context, a, b *Peer) {
	t.Helper()
	offer, err := a.Offer(ctx)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	answer, err := b.Answer(ctx, offer)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if err := a.Accept(ctx, answer); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	waitConnected(t, ctx, a)
	waitConnected(t, ctx, b)
}

func waitConnected(t *testing.T, ctx context.Context, p *Peer) {
	t.Helper()
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		return
	}
	for {
		select {
		case st, ok := <-p.State():
			if !ok {
				t.Fatalf("%s: state channel closed", p.opts.Label)
			}
			if st.Failed {
				t.Fatalf("%s failed: %s", p.opts.Label, st.Reason)
			}
			if st.Connected {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s: not connected: %v (state %s)", p.opts.Label, ctx.Err(), p.pc.ConnectionState())
		}
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
