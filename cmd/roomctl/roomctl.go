package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/client"
)

const usageText = `usage: roomctl [flags] COMMAND

Commands:
  status      show the room, roomd and meeting state
  devices     list cameras, microphones, speakers and codecs
  device ID   show one device: modes, formats, codecs, controls
  set ID CONTROL VALUE
              set a control (brightness, exposure, zoom, volume, mute…)
  nudge ID CONTROL STEPS
              move a control by STEPS of its step (negative: back),
              stopping at the ends of its range
  level ID    meter a microphone for half a second (dBFS)
  network-test
              test the configured STUN and TURN servers over UDP, TCP and
              TLS and a short bandwidth probe; print the verdict
  calendar check FILE|URL
              the meetings an invite or calendar holds in the next 7 days,
              as roomd reads them: one JSON object per occurrence (start,
              end, title, url, provider, joinable, reason); what could not
              be read goes to stderr
  audio-test [SPEAKER MICROPHONE]
              play a noise burst and measure the echo, without and with
              the echo canceller (not during a meeting)
  preset ID [save|recall|delete NAME]
              list a camera's presets, or save, recall or delete one
  join URL    join the meeting at URL (leaves the current one first)
  leave       leave the current meeting (succeeds when there is none)
  mute on|off mute or unmute the room's microphone in the meeting
  camera on|off
              switch the room's camera on or off in the meeting
  events      follow roomd's events until interrupted
  admin [status|set-pin|unlock|settings]
              the PIN that guards the kiosk's settings: whether it is set
              or locked; set it (read from the terminal without echo, or
              one line of standard input); clear a lock after wrong PINs;
              print the settings (JSON, secrets left out)
  fleet [status|enroll [-room NAME] CODE]
              whether a fleet server manages the room and how its
              check-ins go; enroll with an activation code from the
              fleet console (-room for a code that covers a whole site)
  update [status]
              software updates: the running version and slot, an update
              under way or waiting (maintenance window, meeting), why the
              last one failed, the versions never retried

Exit codes: 0 success, 1 roomd refused or failed the request,
2 usage error, 3 roomd not reachable.

Flags:
`

type app struct {
	in          io.Reader
	out, errOut io.Writer
	json        bool
	client      *client.Client
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr, getenv)
}

// runIO is run with standard input given (admin set-pin reads the PIN).
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("roomctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	socket := fs.String("socket", envOr(getenv, "ATRIUM_SOCKET", "/run/atrium/roomd.sock"), "roomd's unix socket ($ATRIUM_SOCKET)")
	baseURL := fs.String("url", getenv("ATRIUM_URL"), "reach roomd over HTTP at this base URL instead of the socket ($ATRIUM_URL)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token, for -url on a non-loopback listener")
	asJSON := fs.Bool("json", false, "print JSON (one object per line for events)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up on a request after this long (not for events)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}

	a := &app{in: stdin, out: stdout, errOut: stderr, json: *asJSON}
	if *baseURL != "" {
		token := ""
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				fmt.Fprintln(stderr, "roomctl:", err)
				return exitUsage
			}
			token = strings.TrimSpace(string(b))
		}
		a.client = client.NewHTTP(*baseURL, token)
	} else {
		a.client = client.NewUnix(*socket)
	}
	defer a.client.Close()

	cmd, cmdArgs := rest[0], rest[1:]
	if cmd != "events" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	var err error
	switch cmd {
	case "status":
		err = a.status(ctx, cmdArgs)
	case "devices":
		err = a.devices(ctx, cmdArgs)
	case "device":
		err = a.device(ctx, cmdArgs)
	case "set", "nudge":
		err = a.control(ctx, cmd, cmdArgs)
	case "preset":
		err = a.preset(ctx, cmdArgs)
	case "level":
		err = a.level(ctx, cmdArgs)
	case "audio-test":
		err = a.audioTest(ctx, cmdArgs)
	case "calendar":
		err = a.calendar(ctx, cmdArgs)
	case "network-test":
		err = a.networkTest(ctx, cmdArgs)
	case "join":
		err = a.join(ctx, cmdArgs)
	case "leave":
		err = a.leave(ctx, cmdArgs)
	case "mute", "camera":
		err = a.media(ctx, cmd, cmdArgs)
	case "events":
		err = a.events(ctx, cmdArgs)
	case "admin":
		err = a.admin(ctx, cmdArgs)
	case "fleet":
		err = a.fleet(ctx, cmdArgs)
	case "update":
		err = a.update(ctx, cmdArgs)
	default:
		fmt.Fprintf(stderr, "roomctl: unknown command %q\n", cmd)
		fs.Usage()
		return exitUsage
	}
	return a.exitCode(err)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func (a *app) exitCode(err error) int {
	var p *apiv1.Problem
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(a.errOut, "roomctl:", err)
		return exitUsage
	case errors.As(err, &p):
		if a.json {
			_ = json.NewEncoder(a.out).Encode(p)
		}
		fmt.Fprintf(a.errOut, "roomctl: %s\n", p.Error())
		return exitRefused
	case errors.Is(err, client.ErrUnreachable):
		fmt.Fprintf(a.errOut, "roomctl: %v\n(is roomd running? use -socket or -url to point elsewhere)\n", err)
		return exitUnreachable
	case errors.Is(err, context.Canceled):
		return exitOK // interrupted by the user while following events
	}
	fmt.Fprintln(a.errOut, "roomctl:", err)
	return exitRefused
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	return nil
}

func (a *app) status(ctx context.Context, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	st, err := a.client.Status(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(st)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Room:\t%s\n", st.Room)
	fmt.Fprintf(tw, "roomd:\t%s, version %s, up %s\n", st.State, st.Version, time.Since(st.StartedAt).Round(time.Second))
	fmt.Fprintf(tw, "Meeting:\t%s\n", describeMeeting(st.Meeting))
	fmt.Fprintf(tw, "Devices:\t%s\n", summarizeDevices(st.Devices))
	return tw.Flush()
}

func describeMeeting(m apiv1.Meeting) string {
	s := string(m.State)
	if m.URL != "" {
		s += " " + m.URL
	}
	if m.Provider != "" {
		s += " via " + m.Provider
	}
	if m.Reason != "" {
		s += " (" + m.Reason + ")"
	}
	return s
}

func summarizeDevices(devs []apiv1.Device) string {
	if len(devs) == 0 {
		return "none"
	}
	byKind := map[apiv1.DeviceKind][]string{}
	for _, d := range devs {
		name := d.Name
		if d.Simulated {
			name += " (simulated)"
		}
		byKind[d.Kind] = append(byKind[d.Kind], name)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, k+": "+strings.Join(byKind[apiv1.DeviceKind(k)], ", "))
	}
	return strings.Join(parts, "; ")
}

func (a *app) devices(ctx context.Context, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	devs, err := a.client.Devices(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(apiv1.DeviceList{Devices: devs})
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tNAME\tDRIVER\tCAPABILITIES")
	for _, d := range devs {
		driver := d.Driver
		if d.Simulated {
			driver += " (simulated)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Kind, d.ID, d.Name, driver, capabilities(d))
	}
	return tw.Flush()
}

func capabilities(d apiv1.Device) string {
	var parts []string
	if n := len(d.VideoModes); n > 0 {
		m := d.VideoModes[0]
		s := fmt.Sprintf("%dx%d@%d %s", m.Width, m.Height, m.FPS, m.PixelFormat)
		if n > 1 {
			s += fmt.Sprintf(" +%d modes", n-1)
		}
		parts = append(parts, s)
	}
	if n := len(d.AudioFormats); n > 0 {
		var fs []string
		for _, f := range d.AudioFormats {
			fs = append(fs, fmt.Sprintf("%d Hz/%dch", f.SampleRate, f.Channels))
		}
		parts = append(parts, strings.Join(fs, ", "))
	}
	for _, c := range d.Codecs {
		s := c.Codec
		if c.Hardware {
			s += " (hw)"
		}
		parts = append(parts, s)
	}
	if n := len(d.Controls); n > 0 {
		parts = append(parts, fmt.Sprintf("%d controls", n))
	}
	return strings.Join(parts, "; ")
}

func (a *app) device(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: device takes exactly one device ID", errUsage)
	}
	d, err := a.client.Device(ctx, args[0])
	if err != nil {
		return err
	}
	return a.printDevice(d)
}

// printDevice shows everything a device offers, controls as a table an
// admin can act on (the id column is what set and nudge take).
func (a *app) printDevice(d apiv1.Device) error {
	if a.json {
		return json.NewEncoder(a.out).Encode(d)
	}
	driver := d.Driver
	if d.Simulated {
		driver += " (simulated)"
	}
	fmt.Fprintf(a.out, "%s %s\n  name: %s\n  driver: %s\n", d.Kind, d.ID, d.Name, driver)
	if len(d.VideoModes) > 0 {
		var ms []string
		for _, m := range d.VideoModes {
			ms = append(ms, fmt.Sprintf("%dx%d@%d %s", m.Width, m.Height, m.FPS, m.PixelFormat))
		}
		fmt.Fprintf(a.out, "  modes: %s\n", strings.Join(ms, ", "))
	}
	if len(d.AudioFormats) > 0 || len(d.Codecs) > 0 {
		fmt.Fprintf(a.out, "  capabilities: %s\n", capabilities(apiv1.Device{AudioFormats: d.AudioFormats, Codecs: d.Codecs}))
	}
	if len(d.Controls) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONTROL\tVALUE\tRANGE\tDEFAULT\tNAME")
	for _, c := range d.Controls {
		rng := fmt.Sprintf("%d..%d", c.Min, c.Max)
		if c.Step > 1 {
			rng += fmt.Sprintf(" step %d", c.Step)
		}
		if c.Type == "bool" {
			rng = "0/1"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\n", c.ID, c.Value, rng, c.Default, c.Name)
	}
	return tw.Flush()
}

func (a *app) control(ctx context.Context, cmd string, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("%w: %s takes a device ID, a control and a number", errUsage, cmd)
	}
	n, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a whole number", errUsage, args[2])
	}
	var change apiv1.ControlChange
	if cmd == "set" {
		change.Value = &n
	} else {
		change.Delta = &n
	}
	d, err := a.client.SetControl(ctx, args[0], args[1], change)
	if err != nil {
		return err
	}
	return a.printDevice(d)
}

func (a *app) media(ctx context.Context, cmd string, args []string) error {
	if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
		return fmt.Errorf("%w: %s takes on or off", errUsage, cmd)
	}
	on := args[0] == "on"
	var change apiv1.MediaChange
	if cmd == "mute" {
		change.MicrophoneMuted = &on
	} else {
		off := !on
		change.CameraOff = &off
	}
	st, err := a.client.SetMedia(ctx, change)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(st)
	}
	mic, cam := "on", "on"
	if st.MicrophoneMuted {
		mic = "MUTED"
	}
	if st.CameraOff {
		cam = "OFF"
	}
	fmt.Fprintf(a.out, "microphone %s, camera %s\n", mic, cam)
	return nil
}

func (a *app) level(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: level takes exactly one microphone ID", errUsage)
	}
	l, err := a.client.Level(ctx, args[0], 0)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(l)
	}
	fmt.Fprintf(a.out, "%s: RMS %.1f dBFS, peak %.1f dBFS over %d ms\n", args[0], l.RMSdBFS, l.PeakdBFS, l.WindowMs)
	return nil
}

func (a *app) networkTest(ctx context.Context, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	r, err := a.client.NetworkTest(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(r)
	}
	fmt.Fprintf(a.out, "%s: %s\n", strings.ToUpper(r.Verdict.Level), r.Verdict.Text)
	for _, c := range r.Checks {
		state := fmt.Sprintf("ok, %.0f ms", c.RTTMs)
		if !c.OK {
			state = c.Failure
			if c.Error != "" {
				state += ": " + c.Error
			}
		}
		fmt.Fprintf(a.out, "  %s %s (%s): %s\n", c.Kind, c.URL, c.Transport, state)
	}
	if b := r.Bandwidth; b != nil {
		fmt.Fprintf(a.out, "  bandwidth through %s: %.0f of %.0f kbit/s, %.1f%% lost\n", b.URL, b.ReceivedKbps, b.TargetKbps, b.LossPercent)
	}
	return nil
}

// maxCalendar bounds what roomctl reads or downloads for a check: the same
// limit roomd applies.
const maxCalendar = 8 << 20

func (a *app) calendar(ctx context.Context, args []string) error {
	if len(args) != 2 || args[0] != "check" {
		return fmt.Errorf("%w: calendar check FILE|URL", errUsage)
	}
	ics, err := readCalendar(ctx, args[1])
	if err != nil {
		return err
	}
	res, err := a.client.CheckCalendar(ctx, ics)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(a.out)
	for _, m := range res.Meetings {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	for _, p := range res.Problems {
		fmt.Fprintln(a.errOut, "roomctl: skipped:", p)
	}
	return nil
}

// readCalendar reads a file, or downloads an http(s) or webcal URL.
func readCalendar(ctx context.Context, src string) ([]byte, error) {
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "webcal") {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		return data, nil
	}
	if u.Scheme == "webcal" {
		u.Scheme = "https" // webcal is https by convention
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	req.Header.Set("Accept", "text/calendar")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", u.Redacted(), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCalendar+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	if len(data) > maxCalendar {
		return nil, fmt.Errorf("download %s: more than %d bytes", u.Redacted(), maxCalendar)
	}
	return data, nil
}

func (a *app) audioTest(ctx context.Context, args []string) error {
	var req apiv1.AudioTestRequest
	switch len(args) {
	case 0:
	case 2:
		req.Speaker, req.Microphone = args[0], args[1]
	default:
		return fmt.Errorf("%w: audio-test takes no arguments, or a speaker and a microphone ID", errUsage)
	}
	r, err := a.client.AudioSelfTest(ctx, req)
	if err != nil {
		return err
	}
	if a.json {
		return json.NewEncoder(a.out).Encode(r)
	}
	for _, run := range []struct {
		what string
		r    *apiv1.AudioTestRun
	}{{"without echo canceller", r.Raw}, {"with echo canceller", r.Cancelled}} {
		if run.r == nil {
			fmt.Fprintf(a.out, "%s: no such devices\n", run.what)
			continue
		}
		erl := fmt.Sprintf("%.1f dB", run.r.ERLdB)
		if run.r.BelowNoise {
			erl = "at least " + erl + " (echo below the room's noise)"
		}
		delay := "echo not found"
		if run.r.EchoFound {
			delay = fmt.Sprintf("echo after %.1f ms", run.r.DelayMs)
		}
		fmt.Fprintf(a.out, "%s (%s → %s): echo return loss %s, %s\n", run.what, run.r.Speaker, run.r.Microphone, erl, delay)
	}
	if r.Raw != nil && r.Cancelled != nil {
		fmt.Fprintf(a.out, "the echo canceller removes %.1f dB\n", r.ImprovementDB)
	}
	return nil
}

func (a *app) preset(ctx context.Context, args []string) error {
	switch {
	case len(args) == 1:
		ps, err := a.client.Presets(ctx, args[0])
		if err != nil {
			return err
		}
		if a.json {
			return json.NewEncoder(a.out).Encode(apiv1.PresetList{Presets: ps})
		}
		if len(ps) == 0 {
			fmt.Fprintln(a.out, "no presets")
		}
		for _, p := range ps {
			keys := make([]string, 0, len(p.Values))
			for k := range p.Values {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var vs []string
			for _, k := range keys {
				vs = append(vs, fmt.Sprintf("%s=%d", k, p.Values[k]))
			}
			fmt.Fprintf(a.out, "%s: %s\n", p.Name, strings.Join(vs, " "))
		}
		return nil
	case len(args) == 3 && args[1] == "save":
		p, err := a.client.SavePreset(ctx, args[0], args[2])
		if err != nil {
			return err
		}
		if a.json {
			return json.NewEncoder(a.out).Encode(p)
		}
		fmt.Fprintf(a.out, "saved %q\n", p.Name)
		return nil
	case len(args) == 3 && args[1] == "recall":
		d, err := a.client.RecallPreset(ctx, args[0], args[2])
		if err != nil {
			return err
		}
		return a.printDevice(d)
	case len(args) == 3 && args[1] == "delete":
		if err := a.client.DeletePreset(ctx, args[0], args[2]); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.out, "deleted %q\n", args[2])
		}
		return nil
	}
	return fmt.Errorf("%w: preset ID [save|recall|delete NAME]", errUsage)
}

func (a *app) join(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: join takes exactly one URL", errUsage)
	}
	m, err := a.client.Join(ctx, args[0])
	if err != nil {
		return err
	}
	return a.printMeeting(m)
}

func (a *app) leave(ctx context.Context, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	m, err := a.client.Leave(ctx)
	if err != nil {
		return err
	}
	return a.printMeeting(m)
}

func (a *app) printMeeting(m apiv1.Meeting) error {
	if a.json {
		return json.NewEncoder(a.out).Encode(m)
	}
	_, err := fmt.Fprintf(a.out, "Meeting: %s\n", describeMeeting(m))
	return err
}

func (a *app) events(ctx context.Context, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	err := a.client.Events(ctx, func(ev apiv1.Event) error {
		if a.json {
			return json.NewEncoder(a.out).Encode(ev)
		}
		_, err := fmt.Fprintf(a.out, "%s  %-15s %s\n", ev.Time.Local().Format("15:04:05.000"), ev.Type, describeEvent(ev))
		return err
	})
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the event stream ended (roomd stopped?)", client.ErrUnreachable)
	}
	return err
}

func describeEvent(ev apiv1.Event) string {
	switch ev.Type {
	case apiv1.EventStatus:
		var st apiv1.Status
		if json.Unmarshal(ev.Data, &st) == nil {
			return fmt.Sprintf("room %q, roomd %s, meeting %s, %d devices", st.Room, st.State, describeMeeting(st.Meeting), len(st.Devices))
		}
	case apiv1.EventMeetingState:
		var m apiv1.Meeting
		if json.Unmarshal(ev.Data, &m) == nil {
			return describeMeeting(m)
		}
	case apiv1.EventCallStats:
		var c apiv1.Call
		if json.Unmarshal(ev.Data, &c) == nil {
			parts := []string{fmt.Sprintf("%d participants", len(c.Participants))}
			for _, p := range c.Peers {
				parts = append(parts, fmt.Sprintf("%s %s via %s: in %d kbit/s, out %d kbit/s, lost %d, rtt %.0f ms",
					p.Label, p.State, p.Path, p.BitrateIn/1000, p.BitrateOut/1000, p.PacketsLost, p.RTTMs))
			}
			return strings.Join(parts, "; ")
		}
	case apiv1.EventDeviceAdded, apiv1.EventDeviceRemoved, apiv1.EventDeviceChanged:
		var d apiv1.Device
		if json.Unmarshal(ev.Data, &d) == nil {
			return fmt.Sprintf("%s %s (%s)", d.Kind, d.ID, d.Name)
		}
	}
	return string(ev.Data)
}
