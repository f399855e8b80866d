// Package daemon wires roomd together. System has one slot per subsystem;
// New fills them from the configuration and Run starts them under one root
// context and stops them all when it ends. Decisions belong to the
// subsystems' own packages: this one only connects them.
//
// Over-the-air updates run in daemon/updater; update.go connects it to
// meetings, readiness, reboots and the fleet agent's offers.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atriumroom/atrium/daemon/admin"
	"github.com/atriumroom/atrium/daemon/agenda"
	"github.com/atriumroom/atrium/daemon/api"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/devctl"
	"github.com/atriumroom/atrium/daemon/devsel"
	"github.com/atriumroom/atrium/daemon/display"
	"github.com/atriumroom/atrium/daemon/events"
	"github.com/atriumroom/atrium/daemon/logging"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/preview"
	"github.com/atriumroom/atrium/daemon/sdnotify"
	"github.com/atriumroom/atrium/daemon/selftest"
	"github.com/atriumroom/atrium/daemon/settings"
	"github.com/atriumroom/atrium/daemon/updater"
	"github.com/atriumroom/atrium/daemon/videofeed"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/alsa"
	"github.com/atriumroom/atrium/hal/codecsel"
	"github.com/atriumroom/atrium/hal/m2m"
	"github.com/atriumroom/atrium/hal/pulse"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/hal/swcodec"
	"github.com/atriumroom/atrium/hal/v4l2"
	"github.com/atriumroom/atrium/hal/vaapi"
	"github.com/atriumroom/atrium/provisioning/agent"
	"github.com/atriumroom/atrium/provisioning/identity"
)

// ShutdownTimeout bounds a clean stop; systemd's stop timeout is longer, so
// roomd always ends on its own terms.
const ShutdownTimeout = 4 * time.Second

// ReadyTimeout bounds the first device enumeration.
const ReadyTimeout = 10 * time.Second

// Deps are what the daemon takes from its environment.
type Deps struct {
	Logger   *slog.Logger
	Now      func() time.Time
	Notifier sdnotify.Notifier
	// WatchdogInterval is how often to ping systemd's watchdog; 0 disables.
	WatchdogInterval time.Duration
	Version          string
	// UI serves the kiosk; nil serves only the API.
	UI http.Handler
	// PINCost is scrypt's N for a new admin PIN; 0 is admin.DefaultCost.
	// Tests lower it: the default is meant to be slow.
	PINCost int
	// Recent holds the latest log records for the fleet's log collection;
	// nil leaves the bundles without a log.
	Recent *logging.Recent
	// Root is the filesystem the hardware facts and the kernel command
	// line are read from; nil is the real "/".
	Root fs.FS
	// OS changes the operating system's settings for the fleet; nil
	// connects to the system bus (provisioning/osconfig) when a fleet is
	// configured.
	OS SystemOS
	// OpenTPM opens the TPM for the device identity; nil is the kernel's
	// device. Tests give swtpm.
	OpenTPM openTPM
	// FleetSettle is how long roomd must stay healthy after a fleet
	// profile before it counts as applied; 0 is the agent's default.
	FleetSettle time.Duration
}

// System is roomd: one slot per subsystem.
type System struct {
	Config   *config.Config
	Deps     Deps
	HAL      *hal.Registry
	Sim      *sim.Driver // the simulated devices, present whatever hal.simulate says
	Select   *devsel.Selector
	Settings *devctl.Controller // control changes and camera presets
	Audio    *selftest.Tester   // the audio self-test
	Agenda   *agenda.Agenda     // the room's calendar, for the home screen
	// Encoders and Decoders choose hardware or software codecs per stream
	// and fall back mid-call; newPeers gives them the registry's codecs.
	Encoders *codecsel.Encoders
	Decoders *codecsel.Decoders
	Events   *events.Bus
	Meeting  *meeting.Engine
	Video    *videofeed.Feed  // remote video, encoded, to the kiosk
	Preview  *preview.Preview // the admin screen's camera preview
	API      *api.Server
	// Overlay is the admin-editable settings (settings.json) laid over
	// roomd.toml; Config is the result at start. Admin guards them with a
	// PIN. Display keeps the display's sleep schedule.
	Overlay *settings.Store
	Admin   *admin.Guard
	Display *display.Display
	// Fleet is the fleet agent with the device's Identity, and OS the
	// operating system's settings it changes; all nil when no fleet server
	// is configured (OS also when there is no system bus).
	Fleet     *agent.Agent
	Identity  *identity.Identity
	OS        SystemOS
	fleetConf config.Fleet
	closeOS   func() error
	inhibit   chan bool // meeting on or off, for login1's inhibitor (runFleet)
	fleetErr  error     // why a configured fleet could not be set up
	// updates runs over-the-air updates ([update]); nil when they are
	// off, and updateOff says why.
	updates   *updater.Updater
	updateOff string

	bootID    string
	startedAt time.Time
	ice       []meeting.ICEServer // configured STUN/TURN, credentials read; under mu
	call      callTracker

	mu     sync.Mutex
	state  apiv1.DaemonState
	runCtx context.Context // set by Run: joins live as long as roomd does
	// Under mu, what a settings change replaces live (see adminwire.go):
	// room, ice, Select, Audio, Agenda and autoJoinSet. Read them through
	// roomName, currentICE, selector, audioTester, agenda and autoJoinOn.
	room        string
	autoJoinSet bool
	// agendaSwapped tells the agenda's runner that Agenda was replaced.
	agendaSwapped chan struct{}
	applyMu       sync.Mutex // one settings change applied at a time
	// stopRun ends Run early; restarting makes it return ErrRestart. Both
	// under mu.
	stopRun    context.CancelFunc
	restarting bool
}

// New builds every subsystem from cfg. It starts nothing.
func New(cfg *config.Config, deps Deps) (*System, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	overlay, guard, err := openSettings(cfg, deps)
	if err != nil {
		return nil, err
	}
	cfg = overlay.Effective().Config
	s := &System{
		Config:        cfg,
		Deps:          deps,
		bootID:        newBootID(),
		startedAt:     deps.Now().UTC(),
		state:         apiv1.DaemonStarting,
		Overlay:       overlay,
		Admin:         guard,
		room:          cfg.Room.Name,
		autoJoinSet:   cfg.Calendar.AutoJoin,
		agendaSwapped: make(chan struct{}, 1),
	}
	s.Events = events.New(deps.Logger.With("subsystem", "events"), deps.Now)

	simCfg := cfg.HAL.Simulated
	s.Sim, err = sim.New(sim.Config{
		CameraWidth:  simCfg.CameraWidth,
		CameraHeight: simCfg.CameraHeight,
		CameraFPS:    simCfg.CameraFPS,
		ToneHz:       simCfg.ToneHz,
		BeepInterval: simCfg.BeepInterval.Duration,
		Logger:       deps.Logger.With("subsystem", "hal", "driver", "sim"),
	})
	if err != nil {
		return nil, fmt.Errorf("simulated devices: %w", err)
	}
	halLog := func(driver string) *slog.Logger { return deps.Logger.With("subsystem", "hal", "driver", driver) }
	s.HAL, err = hal.NewRegistry(hal.RegistryOptions{
		Drivers: []hal.Driver{
			v4l2.New(v4l2.Options{Logger: halLog(v4l2.DriverName)}),
			// Through PipeWire (and its echo canceller) while it runs,
			// straight to ALSA otherwise.
			hal.Fallback("audio",
				pulse.NewAuto(pulse.Options{Logger: halLog(pulse.NamePipeWire)}),
				alsa.New(alsa.Options{Logger: halLog(alsa.DriverName)})),
			m2m.New(m2m.Config{Logger: halLog(m2m.DriverName)}),
			vaapi.New(vaapi.Options{Logger: halLog(vaapi.DriverName)}),
		},
		Always:    []hal.Driver{swcodec.NewDriver(halLog(swcodec.DriverName))},
		Simulated: s.Sim,
		Mode:      hal.SimulationMode(cfg.HAL.Simulate),
		Logger:    deps.Logger.With("subsystem", "hal"),
	})
	if err != nil {
		return nil, fmt.Errorf("device registry: %w", err)
	}

	s.Encoders = codecsel.NewEncoders(nil, codecsel.Options{Logger: halLog("codecsel")})
	s.Decoders = codecsel.NewDecoders(nil, codecsel.Options{Logger: halLog("codecsel")})
	s.Select = devsel.New(s.HAL, devsel.Pins{Camera: cfg.HAL.Camera, Microphone: cfg.HAL.Microphone, Speaker: cfg.HAL.Speaker},
		deps.Logger.With("subsystem", "hal"))

	presets, err := devctl.OpenStore(filepath.Join(cfg.Daemon.StateDir, "camera-presets.json"), deps.Now,
		deps.Logger.With("subsystem", "devices"))
	if err != nil {
		return nil, err
	}
	s.Settings = devctl.New(s.HAL, presets, deps.Logger.With("subsystem", "devices"))

	s.Audio = selftest.New(s.Select, s.HAL, s.inCall, deps.Logger.With("subsystem", "audio-test"))

	if s.ice, err = iceServers(cfg.Meeting.ICEServers); err != nil {
		return nil, err
	}
	providers, err := s.providers(cfg)
	if err != nil {
		return nil, err
	}
	s.Meeting = meeting.NewEngine(deps.Logger.With("subsystem", "meeting"), deps.Now, s.meetingChanged, providers...)
	if s.Agenda, err = s.newAgenda(cfg.Calendar); err != nil {
		return nil, err
	}
	s.Display = s.newDisplay(overlay.Effective())

	var token string
	if cfg.API.TokenFile != "" {
		if token, err = readToken(cfg.API.TokenFile); err != nil {
			return nil, err
		}
	}
	s.Video = videofeed.NewWithOptions(s.videoFeedOptions())
	// The preview encodes in software: a hardware session is the call's.
	if s.Preview, err = preview.New(preview.Options{
		Logger:   deps.Logger.With("subsystem", "preview"),
		Camera:   s.previewCamera,
		Encoders: swcodec.NewVideoEncoders(deps.Logger.With("subsystem", "preview")),
		InCall:   s.inCall,
	}); err != nil {
		return nil, fmt.Errorf("camera preview: %w", err)
	}
	fleetCtx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if err := s.newFleet(fleetCtx); err != nil {
		// The room works without its fleet; the status says why it has none.
		deps.Logger.Error("fleet management unavailable", "err", err)
		s.fleetErr = err
	}
	s.newUpdate()
	s.API = api.New(deps.Logger.With("subsystem", "api"), s,
		api.Mounts{UI: deps.UI, Video: s.Video.Handler(), Preview: s.Preview.Handler()}, token)
	return s, nil
}

// Run starts every subsystem and blocks until ctx is done, then stops them
// all and returns once every goroutine it started has ended. It returns an
// error when a subsystem could not start or failed.
func (s *System) Run(ctx context.Context) error {
	log := s.Deps.Logger
	// The feed's goroutine started with New; it ends with Run, however Run ends.
	defer s.Video.Close()
	defer s.Preview.Close()
	s.notify("STATUS=Starting")
	if err := os.MkdirAll(s.Config.Daemon.StateDir, 0o750); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	listeners, err := s.listen()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	s.mu.Lock()
	s.runCtx, s.stopRun = gctx, cancel
	s.mu.Unlock()
	g.Go(func() error { return s.HAL.Run(gctx) })
	g.Go(func() error { return s.Meeting.Run(gctx) })
	g.Go(func() error { return s.runAgendas(gctx) })
	// Always running: the admin settings can switch auto-join on.
	g.Go(func() error { s.autoJoin(gctx); return nil })
	g.Go(func() error { s.Display.Run(gctx, DisplayPoll); return nil })
	g.Go(func() error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		s.Meeting.WatchMedia(gctx, s.call.lastMedia, s.Config.Meeting.MediaTimeout.Duration, tick.C)
		return nil
	})
	g.Go(func() error { s.reportCalls(gctx); return nil })
	g.Go(func() error { return s.runFleet(gctx) })
	if s.updates != nil {
		g.Go(func() error {
			// A broken updater must not take the room down with it.
			if err := s.updates.Run(gctx); err != nil {
				log.Error("updates stopped", "err", err)
			}
			return nil
		})
	}
	g.Go(func() error { s.followNetwork(gctx); return nil })
	// Subscribed here, before READY, so no change after READY goes unseen.
	changes := s.HAL.Subscribe(gctx)
	g.Go(func() error { s.forwardDeviceChanges(changes); return nil })

	var servers []*http.Server
	for _, l := range listeners {
		srv := &http.Server{
			Handler:           s.API.Handler(l.access),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			// Event streams end with the root context, so Shutdown need not
			// wait for them.
			BaseContext: func(net.Listener) context.Context { return gctx },
		}
		servers = append(servers, srv)
		g.Go(func() error {
			if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", l.name, err)
			}
			return nil
		})
		log.Info("API listening", "addr", l.name, "access", l.accessName())
	}
	g.Go(func() error {
		<-gctx.Done()
		s.setState(apiv1.DaemonStopping)
		s.notify("STOPPING=1")
		// Video sockets are hijacked connections that Shutdown does not wait
		// for: end them first.
		_ = s.Video.Close()
		_ = s.Preview.Close()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), ShutdownTimeout)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			if err := srv.Shutdown(shutCtx); err != nil {
				errs = append(errs, fmt.Errorf("shut down API: %w", err))
				_ = srv.Close()
			}
		}
		return errors.Join(errs...)
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-s.HAL.Ready():
		case <-time.After(ReadyTimeout):
			return fmt.Errorf("devices not enumerated within %s", ReadyTimeout)
		}
		s.setState(apiv1.DaemonReady)
		s.notify("READY=1\nSTATUS=" + s.statusLine())
		log.Info("ready", "devices", len(s.HAL.Devices()), "startup", s.Deps.Now().Sub(s.startedAt).Round(time.Millisecond))
		sdnotify.Watchdog(gctx, s.Deps.Notifier, s.Deps.WatchdogInterval, s.healthy, log)
		return nil
	})
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	s.mu.Lock()
	restarting := s.restarting
	s.mu.Unlock()
	if restarting {
		log.Info("stopped for a restart")
		return ErrRestart
	}
	log.Info("stopped")
	return nil
}

// Status implements api.Backend.
func (s *System) Status() apiv1.Status {
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	m := s.Meeting.State()
	return apiv1.Status{
		Room:      s.roomName(),
		Version:   s.Deps.Version,
		BootID:    s.bootID,
		StartedAt: s.startedAt,
		State:     state,
		Meeting:   m,
		Devices:   api.ConvertDevices(s.HAL.Devices()),
		Call:      s.callStatus(m),
	}
}

// Devices implements api.Backend.
func (s *System) Devices() []hal.Device { return s.HAL.Devices() }

// Join implements api.Backend.
func (s *System) Join(ctx context.Context, rawURL string) (apiv1.Meeting, error) {
	return s.joinScheduled(ctx, rawURL, "")
}

// joinScheduled joins under roomd's own context with the setup timeout, not
// the request's: the meeting outlives the API call. calendarID names the
// agenda meeting, if the link came from the calendar.
func (s *System) joinScheduled(_ context.Context, rawURL, calendarID string) (apiv1.Meeting, error) {
	ctx, cancel := s.joinContext()
	defer cancel()
	return s.Meeting.JoinScheduled(ctx, rawURL, calendarID)
}

// Leave implements api.Backend.
func (s *System) Leave(ctx context.Context) (apiv1.Meeting, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Config.Meeting.LeaveTimeout.Duration)
	defer cancel()
	return s.Meeting.Leave(ctx)
}

// Subscribe implements api.Backend.
func (s *System) Subscribe(ctx context.Context) <-chan apiv1.Event { return s.Events.Subscribe(ctx) }

func (s *System) meetingChanged(m apiv1.Meeting) {
	if err := s.Events.Publish(apiv1.EventMeetingState, m); err != nil {
		s.Deps.Logger.Error("publish meeting state", "err", err)
	}
	inMeeting := m.State != apiv1.MeetingIdle && m.State != apiv1.MeetingLeft && m.State != apiv1.MeetingFailed
	s.wantInhibit(inMeeting)
	if s.updates != nil {
		s.updates.MeetingChanged(inMeeting)
	}
	switch m.State {
	case apiv1.MeetingConnected, apiv1.MeetingLeft, apiv1.MeetingFailed:
		// The fleet's history gets the meeting's milestones, without its
		// link (which may carry a passcode).
		msg := "meeting " + string(m.State)
		if m.Reason != "" {
			msg += ": " + m.Reason
		}
		s.recordFleetEvent("meeting."+string(m.State), msg, map[string]string{"provider": m.Provider})
	}
	s.checkDisplayFacts()
	s.notify("STATUS=" + s.statusLine())
}

func (s *System) forwardDeviceChanges(changes <-chan hal.Change) {
	for ch := range changes {
		typ := map[hal.ChangeType]apiv1.EventType{
			hal.ChangeAdded:   apiv1.EventDeviceAdded,
			hal.ChangeRemoved: apiv1.EventDeviceRemoved,
			hal.ChangeChanged: apiv1.EventDeviceChanged,
		}[ch.Type]
		info := ch.Device.Info()
		s.Deps.Logger.Info("device "+string(ch.Type), "id", info.ID, "kind", info.Kind, "name", info.Name)
		if err := s.Events.Publish(typ, api.ConvertDevice(ch.Device)); err != nil {
			s.Deps.Logger.Error("publish device change", "err", err)
		}
		s.notify("STATUS=" + s.statusLine())
	}
}

// statusLine is what `systemctl status roomd` shows.
func (s *System) statusLine() string {
	m := s.Meeting.State()
	devs := s.HAL.Devices()
	sim := 0
	for _, d := range devs {
		if d.Info().Simulated {
			sim++
		}
	}
	meetingPart := "idle"
	switch m.State {
	case apiv1.MeetingIdle:
	case apiv1.MeetingFailed:
		meetingPart = "last meeting failed: " + m.Reason
	default:
		meetingPart = fmt.Sprintf("meeting %s (%s)", m.State, m.URL)
	}
	return fmt.Sprintf("%s; %d devices (%d simulated)", meetingPart, len(devs), sim)
}

// healthy takes the locks every request path takes: if one is wedged it
// blocks, the watchdog stops pinging, and systemd restarts roomd.
func (s *System) healthy() bool {
	_ = s.Status()
	return true
}

func (s *System) setState(st apiv1.DaemonState) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

func (s *System) notify(state string) {
	if s.Deps.Notifier == nil {
		return
	}
	if err := s.Deps.Notifier.Notify(state); err != nil {
		s.Deps.Logger.Warn("notify systemd", "err", err)
	}
}

type listener struct {
	ln     net.Listener
	name   string
	access api.Access
}

func (l listener) accessName() string {
	return [...]string{api.AccessLocal: "unix socket", api.AccessLoopback: "loopback", api.AccessToken: "token"}[l.access]
}

// listen opens every configured listener, or none: a daemon that cannot
// take all its addresses does not start with some.
func (s *System) listen() (_ []listener, err error) {
	var out []listener
	defer func() {
		if err != nil {
			for _, l := range out {
				_ = l.ln.Close()
			}
		}
	}()
	if path := s.Config.API.Socket; path != "" {
		ln, err := listenUnix(path, s.Config.API.SocketGroup, s.Deps.Logger)
		if err != nil {
			return nil, err
		}
		out = append(out, listener{ln: ln, name: "unix:" + path, access: api.AccessLocal})
	}
	for _, addr := range s.Config.API.Listen {
		loopback, err := config.IsLoopbackAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("api.listen: %w", err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		access := api.AccessToken
		if loopback {
			access = api.AccessLoopback
		}
		out = append(out, listener{ln: ln, name: ln.Addr().String(), access: access})
	}
	return out, nil
}

func listenUnix(path, group string, log *slog.Logger) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	// A socket file left by a roomd that crashed blocks the bind; anything
	// that is not a socket is someone else's file and stays.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: the path exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen on %s: another roomd is serving it", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if group != "" {
		if g, err := user.LookupGroup(group); err != nil {
			log.Warn("socket group not found; only the owner can use the socket", "group", group, "socket", path)
		} else if gid, err := strconv.Atoi(g.Gid); err == nil {
			if err := giveToGroup(path, gid, os.Chown); err != nil {
				log.Warn("could not give the socket to its group", "group", group, "err", err)
			}
		}
	}
	return ln, nil
}

// giveToGroup makes gid the group of the file at path. A socket made by a
// process whose group is gid (roomd.service: Group=atrium, and the default
// socket_group "atrium") has that group already: then nothing is called,
// which matters because roomd.service's system call filter (~@privileged)
// forbids chown, so calling it fails with EPERM even for one's own group.
func giveToGroup(path string, gid int, chown func(path string, uid, gid int) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) == gid {
		return nil
	}
	return chown(path, -1, gid)
}

// readToken reads the API token, refusing a file others can read: a leaked
// token gives control of the room.
func readToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("api.token_file %s: mode %04o lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if len(token) < 16 {
		return "", fmt.Errorf("api.token_file %s: the token must be at least 16 characters", path)
	}
	return token, nil
}

func newBootID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
