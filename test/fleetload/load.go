package fleetload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// MaxRunTime bounds one Run (warm-up plus window): a load generator left
// running by a broken loop must end on its own.
const MaxRunTime = 10 * time.Minute

// Options configure [New].
type Options struct {
	// BaseURL is fleetd's device API, "https://HOST:PORT". The host must be
	// a loopback name or address: the generator never loads anything else.
	BaseURL string
	// ServerName is the name checked in fleetd's certificate (default: the
	// host of BaseURL).
	ServerName string
	// Roots verify fleetd's certificate: the fleet CA's bundle.
	Roots *x509.CertPool
	// Devices are the simulated devices, 1 to MaxDevices.
	Devices []Device
	// Logger receives a line per run; nil discards.
	Logger *slog.Logger
	// Now stamps the check-in bodies (Sent, event times); default time.Now.
	// Schedules and latencies always use the real monotonic clock: they
	// are what is measured.
	Now func() time.Time
	// RequestTimeout bounds one check-in (default 10 s); a check-in that
	// takes longer is an error.
	RequestTimeout time.Duration
	// EventEvery makes every EventEvery-th check-in of a device queue two
	// outbox events (default 5); a negative value queues none.
	EventEvery int
}

// Generator runs check-ins for a set of simulated devices. Each device has
// its own HTTP transport holding at most one keep-alive TLS connection
// with its own client certificate, as a real device does, and keeps it
// across runs.
type Generator struct {
	opts    Options
	log     *slog.Logger
	devices []*simDevice
	running sync.Mutex
}

// simDevice is one device's client and agent state. Only the goroutine of
// the current run touches it.
type simDevice struct {
	Device
	index     int
	tr        *http.Transport
	client    *http.Client
	url       string
	seq       int
	bootedAt  time.Time
	pending   []fleetapi.Record
	generated []string // every outbox key made, in order
	acked     int      // records the server acknowledged
	answered  map[string]bool
	applied   string
	last      fleetapi.ProfileOutcome
	inCall    bool
	callSince time.Time
}

// New prepares the devices' clients; nothing connects until Run.
func New(opts Options) (*Generator, error) {
	if len(opts.Devices) < 1 || len(opts.Devices) > MaxDevices {
		return nil, fmt.Errorf("fleetload: new generator: %d devices: %w", len(opts.Devices), ErrTooMany)
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("fleetload: new generator: base URL %q is not https://HOST:PORT", opts.BaseURL)
	}
	if !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("fleetload: new generator: %q is not a loopback host: the generator loads loopback only", u.Hostname())
	}
	if opts.Roots == nil {
		return nil, errors.New("fleetload: new generator: Roots is required (the fleet CA's bundle)")
	}
	if opts.ServerName == "" {
		opts.ServerName = u.Hostname()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.EventEvery == 0 {
		opts.EventEvery = 5
	}
	g := &Generator{opts: opts, log: opts.Logger}
	for i, d := range opts.Devices {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion:   tls.VersionTLS13,
				RootCAs:      opts.Roots,
				ServerName:   opts.ServerName,
				Certificates: []tls.Certificate{d.Cert},
			},
			// One connection per device, kept between check-ins like the
			// agent's; idle longer than any interval a run uses so that
			// only the server decides when it closes.
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			IdleConnTimeout:     MaxRunTime,
			TLSHandshakeTimeout: opts.RequestTimeout,
		}
		g.devices = append(g.devices, &simDevice{
			Device: d, index: i, tr: tr,
			client:   &http.Client{Transport: tr, Timeout: opts.RequestTimeout},
			url:      opts.BaseURL + fleetapi.PathCheckIn,
			bootedAt: opts.Now(), answered: map[string]bool{},
		})
	}
	return g, nil
}

func loopbackHost(h string) bool {
	switch h {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// Close drops the devices' idle connections. The generator must not be
// running.
func (g *Generator) Close() {
	for _, d := range g.devices {
		d.tr.CloseIdleConnections()
	}
}

// RunOptions describe one run.
type RunOptions struct {
	// Devices is how many of the generator's devices take part (the first
	// ones); 0 means all.
	Devices int
	// Interval is each device's check-in interval. The devices' first
	// check-ins are spread evenly over one interval, so the offered rate is
	// Devices/Interval check-ins per second.
	Interval time.Duration
	// Warmup runs the schedule without recording (connections open, caches
	// fill); Window is the recorded part after it.
	Warmup, Window time.Duration
}

// Result is one run's measurement over its window.
type Result struct {
	Devices  int
	Interval time.Duration
	Window   time.Duration // from the window's start to the last recorded answer
	// OK and Errors count the check-ins scheduled inside the window.
	OK, Errors int
	// ErrorSamples are up to 10 distinct error messages.
	ErrorSamples []string
	// Latencies are the successful check-ins' times from sending the
	// request to having read the answer, sorted.
	Latencies []time.Duration
	// Lag is how late the generator sent requests against their schedule,
	// sorted: a large lag means the generator, not the server, fell behind.
	Lag []time.Duration
	// EventsSent counts outbox records carried (resends included); Acked
	// the new acknowledgements.
	EventsSent, EventsAcked int
}

// Offered is the scheduled check-in rate per second.
func (r Result) Offered() float64 { return float64(r.Devices) / r.Interval.Seconds() }

// Rate is the sustained rate of successful check-ins per second.
func (r Result) Rate() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.OK) / r.Window.Seconds()
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of
// the latencies, 0 without any.
func (r Result) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// Percentile returns the p-th percentile by nearest rank of sorted ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(p/100*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// recorder gathers one run's samples from the devices' goroutines.
type recorder struct {
	mu         sync.Mutex
	latencies  []time.Duration
	lag        []time.Duration
	ok, errs   int
	samples    []string
	lastAnswer time.Time
	sent       int
	acked      int
}

func (r *recorder) record(lag, latency time.Duration, end time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lag = append(r.lag, lag)
	if end.After(r.lastAnswer) {
		r.lastAnswer = end
	}
	if err != nil {
		r.errs++
		if msg := err.Error(); len(r.samples) < 10 && !slices.Contains(r.samples, msg) {
			r.samples = append(r.samples, msg)
		}
		return
	}
	r.ok++
	r.latencies = append(r.latencies, latency)
}

func (r *recorder) events(sent, acked int) {
	r.mu.Lock()
	r.sent += sent
	r.acked += acked
	r.mu.Unlock()
}

// Run checks in with the first ro.Devices devices every ro.Interval for
// ro.Warmup plus ro.Window, and returns what the window measured. Every
// goroutine it starts has ended when it returns. A cancelled ctx ends the
// run early with ctx's error.
func (g *Generator) Run(ctx context.Context, ro RunOptions) (Result, error) {
	if !g.running.TryLock() {
		return Result{}, ErrBusy
	}
	defer g.running.Unlock()
	if ro.Devices == 0 {
		ro.Devices = len(g.devices)
	}
	if ro.Devices < 0 || ro.Devices > len(g.devices) {
		return Result{}, fmt.Errorf("fleetload: run with %d of %d devices: %w", ro.Devices, len(g.devices), ErrTooMany)
	}
	if ro.Interval <= 0 || ro.Window <= 0 || ro.Warmup < 0 || ro.Warmup+ro.Window > MaxRunTime {
		return Result{}, fmt.Errorf("fleetload: run: interval %v, warm-up %v, window %v: %w", ro.Interval, ro.Warmup, ro.Window, ErrTooLong)
	}
	start := time.Now()
	windowStart := start.Add(ro.Warmup)
	end := windowStart.Add(ro.Window)
	rec := &recorder{}
	var wg sync.WaitGroup
	for i, d := range g.devices[:ro.Devices] {
		first := start.Add(time.Duration(int64(ro.Interval) * int64(i) / int64(ro.Devices)))
		wg.Go(func() { g.loop(ctx, d, first, ro.Interval, windowStart, end, rec) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("fleetload: run: %w", err)
	}
	res := Result{
		Devices: ro.Devices, Interval: ro.Interval, Window: max(rec.lastAnswer.Sub(windowStart), ro.Window),
		OK: rec.ok, Errors: rec.errs, ErrorSamples: rec.samples,
		Latencies: rec.latencies, Lag: rec.lag, EventsSent: rec.sent, EventsAcked: rec.acked,
	}
	slices.Sort(res.Latencies)
	slices.Sort(res.Lag)
	g.log.Info("fleetload run", "devices", res.Devices, "interval", res.Interval, "ok", res.OK, "errors", res.Errors,
		"rate", fmt.Sprintf("%.1f/s", res.Rate()), "p50", res.Percentile(50), "p99", res.Percentile(99))
	return res, nil
}

// loop is one device's schedule: a check-in at first, first+interval, …
// while before end. A late check-in goes out at once (the schedule is not
// stretched), so an overloaded server shows as latency, not as a lower
// offered rate.
func (g *Generator) loop(ctx context.Context, d *simDevice, first time.Time, interval time.Duration, windowStart, end time.Time, rec *recorder) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for at := first; at.Before(end); at = at.Add(interval) {
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sent := time.Now()
		events, acked, err := g.checkIn(ctx, d)
		done := time.Now()
		if at.Before(windowStart) {
			continue
		}
		rec.record(sent.Sub(at), done.Sub(sent), done, err)
		rec.events(events, acked)
	}
}

// checkIn sends one check-in and applies the answer to the device's
// state: acknowledged records leave the outbox, the profile version is
// taken as applied, commands are answered as rejected (a simulated device
// runs none). It returns the records carried and newly acknowledged.
func (g *Generator) checkIn(ctx context.Context, d *simDevice) (int, int, error) {
	d.seq++
	now := g.opts.Now()
	if g.opts.EventEvery > 0 && (d.seq+d.index)%g.opts.EventEvery == 0 {
		for _, suffix := range []string{"a", "b"} {
			key := fmt.Sprintf("%s-%d-%s", d.ID, d.seq, suffix)
			d.pending = append(d.pending, fleetapi.Record{Key: key, At: now, Event: &fleetapi.Event{
				Type: "fleetload.tick", Message: fmt.Sprintf("simulated event %d%s", d.seq, suffix),
			}})
			d.generated = append(d.generated, key)
		}
	}
	// A simulated call every tenth check-in or so, for two check-ins.
	if (d.seq+d.index)%10 == 0 {
		d.inCall, d.callSince = true, now
	} else if (d.seq+d.index)%10 == 2 {
		d.inCall = false
	}
	body, err := json.Marshal(d.body(now))
	if err != nil {
		return 0, 0, fmt.Errorf("encode check-in of %s: %w", d.ID, err)
	}
	carried := len(d.pending[:min(len(d.pending), fleetapi.MaxOutbox)])
	var resp fleetapi.CheckInResponse
	if err := postJSON(ctx, d.client, d.url, body, &resp); err != nil {
		return carried, 0, fmt.Errorf("check-in: %w", err)
	}
	acked := 0
	for _, k := range resp.Acked {
		if i := slices.IndexFunc(d.pending, func(r fleetapi.Record) bool { return r.Key == k }); i >= 0 {
			d.pending = slices.Delete(d.pending, i, i+1)
			acked++
		}
	}
	d.acked += acked
	if v := resp.Profile.Version; v != "" && v != d.applied {
		d.applied = v
		d.last = fleetapi.ProfileOutcome{Version: v, Status: fleetapi.ProfileApplied}
	}
	for _, c := range resp.Commands {
		key := "result-" + c.ID
		if d.answered[key] {
			continue
		}
		d.answered[key] = true
		d.pending = append(d.pending, fleetapi.Record{Key: key, At: now, Result: &fleetapi.Result{
			CommandID: c.ID, Status: fleetapi.ResultRejected, Detail: "simulated device runs no commands",
		}})
	}
	return carried, acked, nil
}

// body is the check-in a room appliance would send now.
func (d *simDevice) body(now time.Time) fleetapi.CheckIn {
	c := fleetapi.CheckIn{
		Sent: now,
		Inventory: fleetapi.Inventory{
			Versions: map[string]string{"roomd": "0.6.0-sim", "image": "2026.11.1", "kernel": "6.1.0-28-amd64"},
			Hostname: "room-" + d.Serial,
			RoomName: d.RoomName,
			Devices: []fleetapi.Peripheral{
				{Kind: "camera", ID: "usb:046d:0893:" + d.Serial, Name: "Logitech Rally Bar"},
				{Kind: "microphone", ID: "pulse:atrium-ec-source", Name: "Echo-cancelled microphone"},
				{Kind: "speaker", ID: "pulse:atrium-ec-sink", Name: "Echo-cancelled speaker"},
			},
			Network: fleetapi.Network{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d/16", 20+d.index>>16&0xff, d.index>>8&0xff, d.index&0xff), "fe80::2/64"},
				Verdict:   "Good: calls will work with video.",
			},
		},
		Health:  fleetapi.Health{Status: fleetapi.HealthOK, UptimeSeconds: int64(now.Sub(d.bootedAt).Seconds())},
		Meeting: fleetapi.Meeting{State: "idle"},
		Profile: fleetapi.ProfileState{Applied: d.applied, Last: d.last},
		Outbox:  d.pending[:min(len(d.pending), fleetapi.MaxOutbox)],
	}
	if d.inCall {
		c.Meeting = fleetapi.Meeting{State: "connected", Provider: "janus", Since: d.callSince}
		c.CallQuality = &fleetapi.CallQuality{
			Seconds: int64(now.Sub(d.callSince).Seconds()), Participants: 4, RTTMillis: 23.5, LossPercent: 0.4,
			SendKbps: 1450, ReceiveKbps: 2900, EncoderPath: "hardware", FramesDropped: 3,
		}
	}
	if c.Outbox == nil {
		c.Outbox = []fleetapi.Record{}
	}
	return c
}

// DeviceIDs returns the IDs of the generator's devices, in order.
func (g *Generator) DeviceIDs() []string {
	ids := make([]string, len(g.devices))
	for i, d := range g.devices {
		ids[i] = d.ID
	}
	return ids
}

// Outbox reports, per device ID, every outbox key the devices generated
// and how many records still wait for an acknowledgement. Call it between
// runs.
func (g *Generator) Outbox() (generated map[string][]string, pending int) {
	generated = map[string][]string{}
	for _, d := range g.devices {
		if len(d.generated) > 0 {
			generated[d.ID] = slices.Clone(d.generated)
		}
		pending += len(d.pending)
	}
	return generated, pending
}
