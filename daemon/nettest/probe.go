package nettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// Bandwidth is the outcome of the probe through one TURN relay.
//
// What it measures: the room sends ProbeRate bits per second of UDP
// payload, for the probe's duration, through the TURN server (over the
// check's transport) to the relay's own relayed address. The server relays
// each packet out of the relay and back into it, and so back to the room:
// every packet crosses the room's link twice, up and down, and the server's
// relay once. ReceivedKbps is the payload that came back divided by the
// time from the first packet sent to the last received; it cannot much
// exceed TargetKbps (packets are paced in 5 ms bursts), so the probe shows whether the path carries a call's rate (a
// large meeting's ~4 Mbps downlink), not the link's capacity. Loss counts
// packets not back within a grace time after the last was sent.
type Bandwidth struct {
	URL             string  `json:"url"`
	Transport       string  `json:"transport"`
	TargetKbps      float64 `json:"target_kbps"`
	DurationMS      float64 `json:"duration_ms"`
	SentPackets     int     `json:"sent_packets"`
	ReceivedPackets int     `json:"received_packets"`
	LossPercent     float64 `json:"loss_percent"`
	ReceivedKbps    float64 `json:"received_kbps"`
	Error           string  `json:"error,omitempty"`
}

// probeGrace is how long the probe waits for packets still in flight.
const probeGrace = 500 * time.Millisecond

func probe(ctx context.Context, tg target, opts Options) Bandwidth {
	b := Bandwidth{URL: tg.url, Transport: tg.transport, TargetKbps: float64(opts.ProbeRate) / 1000}
	if err := runProbe(ctx, tg, opts, &b); err != nil {
		b.Error = err.Error()
		opts.Logger.Debug("nettest: bandwidth probe failed", "url", tg.url, "err", err)
	}
	return b
}

func runProbe(ctx context.Context, tg target, opts Options, b *Bandwidth) error {
	// Setting up gets a check's time; sending and the grace come on top.
	sctx, cancel := context.WithTimeout(ctx, opts.CheckTimeout)
	defer cancel()
	s, err := dialServer(sctx, tg, opts)
	if err != nil {
		return fmt.Errorf("bandwidth probe: %w", err)
	}
	defer s.close()
	var relay net.PacketConn
	if err := s.await(sctx, func() (err error) {
		relay, err = s.client.Allocate()
		return err
	}); err != nil {
		return fmt.Errorf("bandwidth probe: TURN allocation at %s: %w", s.server, err)
	}
	closeRelay := sync.OnceValue(func() error { return s.await(ctx, relay.Close) })
	defer closeRelay()
	peer := relay.LocalAddr()

	// Each packet: a per-probe random tag, so that nothing else counts,
	// then its sequence number; the permission packet's is all ones.
	var tag [16]byte
	_, _ = rand.Read(tag[:])
	pkt := make([]byte, DefaultProbePacket)
	copy(pkt, tag[:])
	// The first packet creates the permission (a round trip to the
	// server); the clock starts after it.
	if err := s.await(sctx, func() error {
		binary.BigEndian.PutUint64(pkt[16:], ^uint64(0))
		_, err := relay.WriteTo(pkt, peer)
		return err
	}); err != nil {
		return fmt.Errorf("bandwidth probe: send to the relay %s: %w", peer, err)
	}

	var (
		mu       sync.Mutex
		received int
		last     time.Time
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := relay.ReadFrom(buf)
			if err != nil {
				return
			}
			if n != len(pkt) || !bytes.Equal(buf[:16], tag[:]) || binary.BigEndian.Uint64(buf[16:]) == ^uint64(0) {
				continue
			}
			mu.Lock()
			received++
			last = opts.Now()
			mu.Unlock()
		}
	})
	defer wg.Wait()

	interval := time.Duration(float64(time.Second) * float64(len(pkt)*8) / float64(opts.ProbeRate))
	start := opts.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	var sendErr error
send:
	for {
		elapsed := opts.Now().Sub(start)
		if elapsed >= opts.ProbeDuration {
			break
		}
		for due := int(elapsed/interval) + 1; sent < due; sent++ {
			binary.BigEndian.PutUint64(pkt[16:], uint64(sent))
			if _, err := relay.WriteTo(pkt, peer); err != nil {
				sendErr = fmt.Errorf("bandwidth probe: send: %w", err)
				break send
			}
		}
		select {
		case <-ctx.Done():
			break send
		case <-tick.C:
		}
	}
	b.DurationMS = ms(opts.Now().Sub(start))
	if sendErr == nil && ctx.Err() == nil {
		deadline := time.NewTimer(probeGrace)
		defer deadline.Stop()
	wait:
		for {
			mu.Lock()
			done := received >= sent
			mu.Unlock()
			if done {
				break
			}
			select {
			case <-ctx.Done():
				break wait
			case <-deadline.C:
				break wait
			case <-tick.C:
			}
		}
	}
	_ = closeRelay() // ends the reader
	wg.Wait()

	b.SentPackets, b.ReceivedPackets = sent, received
	if sent > 0 {
		b.LossPercent = float64(sent-received) * 100 / float64(sent)
		b.LossPercent = float64(int(b.LossPercent*10+0.5)) / 10
	}
	if received > 0 {
		if span := last.Sub(start); span > 0 {
			kbps := float64(received*len(pkt)*8) / span.Seconds() / 1000
			b.ReceivedKbps = float64(int(kbps*10+0.5)) / 10
		}
	}
	if sendErr != nil {
		return sendErr
	}
	return ctx.Err()
}
