package hal

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// fallbackRetry is how often Fallback's Watch retries a primary that cannot
// watch (a sound server not running yet), so one started later is picked up.
const fallbackRetry = 5 * time.Second

// Fallback returns a driver that lists primary's devices whenever primary
// can enumerate, and secondary's when it cannot: audio goes through the
// sound server (PipeWire, with its echo canceller) while one runs, and to
// ALSA directly otherwise. Both are never listed at once, because the
// server holds the very ALSA devices it exposes.
func Fallback(name string, primary, secondary Driver) Driver {
	return &fallback{name: name, primary: primary, secondary: secondary, retry: fallbackRetry}
}

type fallback struct {
	name               string
	primary, secondary Driver
	retry              time.Duration
}

func (f *fallback) Name() string { return f.name }

func (f *fallback) Enumerate(ctx context.Context) ([]Device, error) {
	devs, perr := f.primary.Enumerate(ctx)
	if perr == nil {
		return devs, nil
	}
	devs, serr := f.secondary.Enumerate(ctx)
	if serr != nil {
		return nil, fmt.Errorf("%s: %s: %v; %s: %w", f.name, f.primary.Name(), perr, f.secondary.Name(), serr)
	}
	return devs, nil
}

// Watch runs both drivers' watchers. A primary whose Watch fails (its
// server is not running) is retried, and changed is called when it starts,
// since its arrival switches the listing over.
func (f *fallback) Watch(ctx context.Context, changed func()) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	if w, ok := f.secondary.(Watcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Watch(ctx, changed); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: watch %s: %w", f.name, f.secondary.Name(), err)
				cancel()
			}
		}()
	}
	if w, ok := f.primary.(Watcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(0)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				// Watch calls changed as soon as it watches, which makes
				// the registry enumerate again and switch to primary.
				var started atomic.Bool
				_ = w.Watch(ctx, func() { started.Store(true); changed() })
				if ctx.Err() != nil {
					return
				}
				if started.Load() {
					changed() // primary went away: back to secondary
				}
				t.Reset(f.retry)
			}
		}()
	} else {
		changed()
	}
	<-ctx.Done() // ours, or cancelled by a failed secondary
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}
