package pulse

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jfreymuth/pulse/proto"
)

// fakeServer is a sound server behind the transport seam: it answers the
// requests this package makes from in-memory sinks and sources, records
// what clients send, and lets a test push server messages (stream
// requests, audio, subscription events) or drop every connection.
type fakeServer struct {
	mu       sync.Mutex
	pkg      string
	sinks    []*proto.GetSinkInfoReply
	sources  []*proto.GetSourceInfoReply
	dialErr  error
	conns    []*fakeConn
	requests []string // the type of every request, in order

	// playMissing is what a new playback stream is first asked for.
	playMissing uint32
	// sent holds the audio clients sent, by connection.
	sent map[*fakeConn][]byte
	// created holds the last stream creation requests.
	lastPlayback *proto.CreatePlaybackStream
	lastRecord   *proto.CreateRecordStream
	nextStream   uint32

	changed chan struct{} // closed and replaced on every request or send
}

func newFakeServer() *fakeServer {
	return &fakeServer{pkg: "PulseAudio (on PipeWire 0.3.65)", sent: map[*fakeConn][]byte{}, changed: make(chan struct{}), nextStream: 7}
}

// fakeConn is one client connection.
type fakeConn struct {
	s      *fakeServer
	handle func(any)

	once   sync.Once
	closed bool // under s.mu
}

func (s *fakeServer) dial(ctx context.Context, handle func(any)) (transport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialErr != nil {
		return nil, s.dialErr
	}
	if handle == nil {
		handle = func(any) {}
	}
	c := &fakeConn{s: s, handle: handle}
	s.conns = append(s.conns, c)
	return c, nil
}

func (s *fakeServer) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor blocks until cond (called under s.mu: it must not lock it)
// holds, or fails the test.
func (s *fakeServer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fake server: timed out waiting for %s", what)
		}
	}
}

// open returns the connections not closed yet.
func (s *fakeServer) open() []*fakeConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*fakeConn
	for _, c := range s.conns {
		if !c.closed {
			out = append(out, c)
		}
	}
	return out
}

// emit delivers a server message on every open connection, as the
// connection's reader would.
func (s *fakeServer) emit(msg any) {
	for _, c := range s.open() {
		c.handle(msg)
	}
}

// drop ends every connection from the server's side.
func (s *fakeServer) drop() {
	for _, c := range s.open() {
		_ = c.close()
	}
}

func (s *fakeServer) sink(name string) *proto.GetSinkInfoReply {
	for _, x := range s.sinks {
		if x.SinkName == name {
			return x
		}
	}
	return nil
}

func (s *fakeServer) source(name string) *proto.GetSourceInfoReply {
	for _, x := range s.sources {
		if x.SourceName == name {
			return x
		}
	}
	return nil
}

func (c *fakeConn) request(req proto.RequestArgs, reply proto.Reply) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return fmt.Errorf("fake: %w", proto.ErrConnectionTerminated)
	}
	s.requests = append(s.requests, fmt.Sprintf("%T", req))
	defer s.signalLocked()
	switch r := req.(type) {
	case *proto.GetServerInfo:
		*reply.(*proto.GetServerInfoReply) = proto.GetServerInfoReply{PackageName: s.pkg, PackageVersion: "15.0.0"}
	case *proto.GetSinkInfoList:
		out := reply.(*proto.GetSinkInfoListReply)
		for _, x := range s.sinks {
			cp := *x
			*out = append(*out, &cp)
		}
	case *proto.GetSourceInfoList:
		out := reply.(*proto.GetSourceInfoListReply)
		for _, x := range s.sources {
			cp := *x
			*out = append(*out, &cp)
		}
	case *proto.GetSinkInfo:
		x := s.sink(r.SinkName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		*reply.(*proto.GetSinkInfoReply) = *x
	case *proto.GetSourceInfo:
		x := s.source(r.SourceName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		*reply.(*proto.GetSourceInfoReply) = *x
	case *proto.SetSinkVolume:
		x := s.sink(r.SinkName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		if len(r.ChannelVolumes) != int(x.Channels) {
			return proto.ErrInvalidArgument
		}
		x.ChannelVolumes = slices.Clone(r.ChannelVolumes)
	case *proto.SetSourceVolume:
		x := s.source(r.SourceName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		if len(r.ChannelVolumes) != int(x.Channels) {
			return proto.ErrInvalidArgument
		}
		x.ChannelVolumes = slices.Clone(r.ChannelVolumes)
	case *proto.SetSinkMute:
		x := s.sink(r.SinkName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		x.Mute = r.Mute
	case *proto.SetSourceMute:
		x := s.source(r.SourceName)
		if x == nil {
			return proto.ErrNoSuchEntity
		}
		x.Mute = r.Mute
	case *proto.Subscribe:
	case *proto.CreatePlaybackStream:
		if s.sink(r.SinkName) == nil {
			return proto.ErrNoSuchEntity
		}
		cp := *r
		s.lastPlayback = &cp
		s.nextStream++
		*reply.(*proto.CreatePlaybackStreamReply) = proto.CreatePlaybackStreamReply{StreamIndex: s.nextStream, Missing: s.playMissing}
	case *proto.CreateRecordStream:
		if s.source(r.SourceName) == nil {
			return proto.ErrNoSuchEntity
		}
		cp := *r
		s.lastRecord = &cp
		s.nextStream++
		*reply.(*proto.CreateRecordStreamReply) = proto.CreateRecordStreamReply{StreamIndex: s.nextStream, SourceLatency: 5000}
	case *proto.DeletePlaybackStream, *proto.DeleteRecordStream:
	default:
		return proto.ErrNotSupported
	}
	return nil
}

func (c *fakeConn) send(stream uint32, data []byte) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return fmt.Errorf("fake: %w", proto.ErrConnectionTerminated)
	}
	s.sent[c] = append(s.sent[c], data...)
	s.signalLocked()
	return nil
}

func (c *fakeConn) close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.closed = true
		c.s.signalLocked()
		c.s.mu.Unlock()
		c.handle(connClosed{})
	})
	return nil
}

// sentBytes is everything sent on all connections.
func (s *fakeServer) sentBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentLocked()
}

func (s *fakeServer) sentLocked() []byte {
	var out []byte
	for _, c := range s.conns {
		out = append(out, s.sent[c]...)
	}
	return out
}

func props(kv ...string) proto.PropList {
	pl := proto.PropList{}
	for i := 0; i+1 < len(kv); i += 2 {
		pl[kv[i]] = proto.PropListString(kv[i+1])
	}
	return pl
}

func mono48k() proto.SampleSpec {
	return proto.SampleSpec{Format: proto.FormatFloat32LE, Channels: 1, Rate: 48000}
}

// room is a server with what a device has: a USB speakerphone (a sink and
// a source, with a serial), HDMI audio (a sink on a PCI bus path), the
// echo canceller's pair, a virtual null sink, and the monitors.
func room() *fakeServer {
	s := newFakeServer()
	stereo := proto.SampleSpec{Format: proto.FormatInt16LE, Channels: 2, Rate: 44100}
	norm := uint32(proto.VolumeNorm)
	s.sinks = []*proto.GetSinkInfoReply{
		{SinkIndex: 40, SinkName: "alsa_output.usb-Jabra_SPEAK_510-00.analog-stereo", Device: "Jabra SPEAK 510 Analog Stereo",
			SampleSpec: stereo, ChannelVolumes: []uint32{norm, norm}, MonitorSourceName: "alsa_output.usb-Jabra_SPEAK_510-00.analog-stereo.monitor", Driver: "PipeWire",
			Properties: props("device.serial", "Jabra_SPEAK_510_745C4B", "device.vendor.id", "0x0b0e", "device.product.id", "0x0422",
				"device.bus-path", "pci-0000:00:14.0-usb-0:2:1.0", "device.profile.name", "analog-stereo", "node.name", "alsa_output.usb-Jabra_SPEAK_510-00.analog-stereo")},
		{SinkIndex: 41, SinkName: "alsa_output.pci-0000_00_1f.3.hdmi-stereo", Device: "Built-in Audio Digital Stereo (HDMI)",
			SampleSpec: stereo, ChannelVolumes: []uint32{norm / 2, norm / 2}, Mute: true, MonitorSourceName: "alsa_output.pci-0000_00_1f.3.hdmi-stereo.monitor", Driver: "PipeWire",
			Properties: props("device.bus-path", "pci-0000:00:1f.3", "device.profile.name", "hdmi-stereo")},
		{SinkIndex: 50, SinkName: ECSinkName, Device: "Room speaker (echo-cancelled)", SampleSpec: mono48k(), ChannelVolumes: []uint32{norm},
			MonitorSourceName: ECSinkName + ".monitor", Driver: "PipeWire",
			Properties: props("node.link-group", "echo-cancel-1234-25", PropEchoCancel, "true", "node.virtual", "true")},
		// PulseAudio's placeholder when it has no sink: no speaker.
		{SinkIndex: 99, SinkName: "auto_null", Device: "Dummy Output", SampleSpec: mono48k(), MonitorSourceName: "auto_null.monitor",
			Driver: "module-null-sink.c"},
		{SinkIndex: 60, SinkName: "scratch", Device: "Scratch", SampleSpec: mono48k(), ChannelVolumes: []uint32{norm},
			MonitorSourceName: "scratch.monitor", Driver: "PipeWire", Properties: props("factory.name", "support.null-audio-sink")},
	}
	s.sources = []*proto.GetSourceInfoReply{
		{SourceIndex: 40, SourceName: "alsa_output.usb-Jabra_SPEAK_510-00.analog-stereo.monitor", Device: "Monitor of Jabra", SampleSpec: stereo,
			ChannelVolumes: []uint32{norm, norm}, MonitorSourceIndex: 40, Properties: props("device.class", "monitor")},
		{SourceIndex: 42, SourceName: "alsa_input.usb-Jabra_SPEAK_510-00.mono-fallback", Device: "Jabra SPEAK 510 Mono",
			SampleSpec: proto.SampleSpec{Format: proto.FormatInt16LE, Channels: 1, Rate: 16000}, ChannelVolumes: []uint32{norm}, MonitorSourceIndex: proto.Undefined,
			Properties: props("device.serial", "Jabra_SPEAK_510_745C4B", "device.vendor.id", "0x0b0e", "device.product.id", "0x0422",
				"device.bus-path", "pci-0000:00:14.0-usb-0:2:1.0", "device.profile.name", "mono-fallback")},
		{SourceIndex: 51, SourceName: ECSourceName, Device: "Room microphone (echo-cancelled)", SampleSpec: mono48k(), ChannelVolumes: []uint32{norm},
			MonitorSourceIndex: proto.Undefined, Properties: props("node.link-group", "echo-cancel-1234-25", PropEchoCancel, "true")},
		// A monitor PipeWire marks only by device.class.
		{SourceIndex: 50, SourceName: ECSinkName + ".monitor", Device: "Monitor of Room speaker", SampleSpec: mono48k(), ChannelVolumes: []uint32{norm},
			MonitorSourceIndex: proto.Undefined, Properties: props("device.class", "monitor", "node.link-group", "echo-cancel-1234-25", PropEchoCancel, "true")},
	}
	return s
}

func newTestDriver(t *testing.T, s *fakeServer, opts Options) *Driver {
	t.Helper()
	opts.dial = s.dial
	d, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
