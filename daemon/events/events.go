// Package events is roomd's in-process event bus: subsystems publish typed
// events, and API streams subscribe to them.
//
// Ordering: every subscriber sees events in publish order, numbered by a
// single sequence. Delivery never blocks a publisher: a subscriber that falls
// a full buffer behind is cut off (its channel closes), so that a stalled
// client cannot hold up the daemon. A cut-off client reconnects and starts
// again from a fresh status snapshot, which is consistent by construction.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// SubscriberBuffer is how many events a subscriber may lag before it is cut off.
const SubscriberBuffer = 256

// Bus fans events out to subscribers.
type Bus struct {
	logger *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	seq  uint64
	subs map[chan apiv1.Event]struct{}
}

// New returns an empty bus. now is the clock that stamps events.
func New(logger *slog.Logger, now func() time.Time) *Bus {
	return &Bus{logger: logger, now: now, subs: map[chan apiv1.Event]struct{}{}}
}

// Publish sends an event of type typ whose data is data marshalled to JSON.
func (b *Bus) Publish(typ apiv1.EventType, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev := apiv1.Event{Seq: b.seq, Type: typ, Time: b.now().UTC(), Data: raw}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			b.logger.Warn("event subscriber fell behind; disconnecting it", "buffer", SubscriberBuffer, "seq", ev.Seq)
			delete(b.subs, ch)
			close(ch)
		}
	}
	return nil
}

// Seq returns the sequence number of the last published event.
func (b *Bus) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Subscribe returns a channel of every event published from now on. The
// channel closes when ctx is done or when the subscriber falls behind.
// The goroutine that watches ctx ends with it.
func (b *Bus) Subscribe(ctx context.Context) <-chan apiv1.Event {
	ch := make(chan apiv1.Event, SubscriberBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	})
	return ch
}
