package daemon

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/admin"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/settings"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/provisioning/osconfig"
)

// This file is roomd as the fleet agent sees it: what the room reports at
// each check-in, how a profile becomes settings (and OS settings), the
// commands roomd itself carries out, and the log bundle.

// SystemOS is what the fleet changes in the operating system:
// provisioning/osconfig over the system bus on the appliance. It is nil on
// a machine without one (development), where a profile that needs it is
// refused.
type SystemOS interface {
	Hostname(ctx context.Context) (osconfig.Hostname, error)
	SetRoomName(ctx context.Context, room string) (osconfig.Hostname, error)
	SetStaticHostname(ctx context.Context, name string) error
	Time(ctx context.Context) (osconfig.TimeSettings, error)
	SetTimezone(ctx context.Context, name string) (osconfig.TimeSettings, error)
	SetNTP(ctx context.Context, on bool) (osconfig.TimeSettings, error)
	Reboot(ctx context.Context) error
	// Inhibit holds off shutdown and sleep (login1) until Release.
	Inhibit(ctx context.Context, why string) (Releaser, error)
	// The room's networks (NetworkManager).
	WiFiSettings(ctx context.Context) (*osconfig.WiFiState, error)
	SetWiFi(ctx context.Context, w *osconfig.WiFi) error
	WiredIPv4Settings(ctx context.Context) (osconfig.WiredIPv4, error)
	SetWiredIPv4(ctx context.Context, w osconfig.WiredIPv4) error
	SetProxyPAC(ctx context.Context, pacURL string) error
}

// Releaser ends an inhibitor lock.
type Releaser interface{ Release() error }

// systemBus is SystemOS on provisioning/osconfig.
type systemBus struct{ *osconfig.OS }

func (b systemBus) Inhibit(ctx context.Context, why string) (Releaser, error) {
	return b.OS.Inhibit(ctx, why)
}

// fleetReport is the room's state for a check-in.
func (s *System) fleetReport() (fleetapi.Inventory, fleetapi.Health, fleetapi.Meeting, *fleetapi.CallQuality) {
	st := s.Status()
	inv := fleetapi.Inventory{
		Versions: map[string]string{"roomd": s.Deps.Version},
		RoomName: st.Room,
		Devices:  []fleetapi.Peripheral{},
		Network:  fleetapi.Network{Addresses: []string{}},
	}
	if release, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		inv.Versions["kernel"] = strings.TrimSpace(string(release))
	}
	inv.Hostname, _ = os.Hostname()
	for _, d := range st.Devices {
		switch d.Kind {
		case apiv1.KindCamera, apiv1.KindMicrophone, apiv1.KindSpeaker:
			inv.Devices = append(inv.Devices, fleetapi.Peripheral{Kind: string(d.Kind), ID: d.ID, Name: d.Name, Simulated: d.Simulated})
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				inv.Network.Addresses = append(inv.Network.Addresses, ipn.String())
			}
		}
	}
	if nt, err := s.LastNetworkTest(); err == nil {
		inv.Network.Verdict = nt.Verdict.Level + ": " + nt.Verdict.Text
	}

	meeting := fleetapi.Meeting{State: string(st.Meeting.State), Since: st.Meeting.Since}
	if st.Meeting.State != apiv1.MeetingIdle {
		meeting.Provider = st.Meeting.Provider
	}
	return inv, s.fleetHealth(st), meeting, callQuality(st)
}

// fleetHealth is the room's own judgement: failed while roomd is not
// serving, degraded with a list of problems a person should look at.
func (s *System) fleetHealth(st apiv1.Status) fleetapi.Health {
	h := fleetapi.Health{Status: fleetapi.HealthOK, UptimeSeconds: int64(s.Deps.Now().Sub(s.startedAt) / time.Second)}
	if st.State != apiv1.DaemonReady {
		h.Status = fleetapi.HealthFailed
		h.Problems = append(h.Problems, "roomd is "+string(st.State))
	}
	h.Problems = append(h.Problems, s.profileHealthProblems()...)
	kinds := map[apiv1.DeviceKind]bool{}
	for _, d := range st.Devices {
		if !d.Simulated {
			kinds[d.Kind] = true
		}
	}
	for _, k := range []apiv1.DeviceKind{apiv1.KindCamera, apiv1.KindMicrophone, apiv1.KindSpeaker} {
		if !kinds[k] {
			h.Problems = append(h.Problems, "no real "+string(k)+" (simulated)")
		}
	}
	if st.Meeting.State == apiv1.MeetingFailed {
		h.Problems = append(h.Problems, "last meeting failed: "+st.Meeting.Reason)
	}
	if len(h.Problems) > 0 && h.Status == fleetapi.HealthOK {
		h.Status = fleetapi.HealthDegraded
	}
	return h
}

// profileHealthProblems are the problems a new profile can cause and a
// rollback can cure: roomd not serving, or a calendar source that fails.
func (s *System) profileHealthProblems() []string {
	var out []string
	if ag := s.agenda().Agenda(); ag.Configured && ag.Error != "" {
		out = append(out, "calendar: "+ag.Error)
	}
	return out
}

// fleetHealthy is the agent's check after a profile: nil when roomd serves
// and nothing a profile touches is failing.
func (s *System) fleetHealthy(context.Context) error {
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	problems := s.profileHealthProblems()
	if state != apiv1.DaemonReady {
		problems = append([]string{"roomd is " + string(state)}, problems...)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// callQuality sums up the call in progress from its peers' stats.
func callQuality(st apiv1.Status) *fleetapi.CallQuality {
	if st.Call == nil || st.Meeting.State != apiv1.MeetingConnected {
		return nil
	}
	q := &fleetapi.CallQuality{Participants: len(st.Call.Participants)}
	if !st.Meeting.Since.IsZero() {
		q.Seconds = int64(time.Since(st.Meeting.Since) / time.Second)
	}
	var rtt float64
	var rttN int
	var lost, packets float64
	for _, p := range st.Call.Peers {
		q.SendKbps += float64(p.BitrateOut) / 1000
		q.ReceiveKbps += float64(p.BitrateIn) / 1000
		if p.RTTMs > 0 {
			rtt += p.RTTMs
			rttN++
		}
		if strings.Contains(p.Path, "relay") {
			q.Relayed = true
		}
		lost += float64(p.PacketsLost)
		for _, tr := range p.Recv {
			packets += float64(tr.PacketsReceived)
			q.FramesDropped += int64(tr.FramesDropped)
		}
		for _, tr := range p.Sent {
			if tr.Kind == "video" && tr.EncoderPath != "" {
				q.EncoderPath = tr.EncoderPath
			}
		}
	}
	if rttN > 0 {
		q.RTTMillis = rtt / float64(rttN)
	}
	if packets+lost > 0 {
		q.LossPercent = 100 * lost / (packets + lost)
	}
	return q
}

// applyProfile makes a profile the fleet's layer of the room's settings,
// all or nothing: the OS's settings first (each undone if a later step
// fails), then roomd's (validated as a whole by the settings store), then
// the PIN. A key the profile leaves out is the room's own again; the OS's
// settings and the PIN stay as the last profile set them.
func (s *System) applyProfile(ctx context.Context, p fleetapi.Profile) error {
	log := s.Deps.Logger.With("subsystem", "fleet")
	if p.AdminPIN != nil {
		if err := admin.ValidatePIN(*p.AdminPIN); err != nil {
			return fmt.Errorf("adminPin: %w", err)
		}
	}
	// roomd's part is checked whole before the OS is touched for it.
	layer := fleetLayer(p)
	if err := s.Overlay.CheckFleet(layer); err != nil {
		return err
	}
	if s.OS == nil && (p.Timezone != nil || p.NTP != nil || p.WiFi != nil || p.Wired != nil || p.ProxyPAC != nil) {
		return errors.New("timezone, ntp, wifi, wired, proxyPac: this system has no time service or network manager on a system bus to set them")
	}
	var undo []func(context.Context) error
	revert := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](context.WithoutCancel(ctx)); err != nil {
				log.Error("restore an OS setting after a refused profile", "err", err)
			}
		}
	}
	if p.Timezone != nil || p.NTP != nil {
		before, err := s.OS.Time(ctx)
		if err != nil {
			return fmt.Errorf("timezone, ntp: read the system's settings: %w", err)
		}
		if p.Timezone != nil && *p.Timezone != before.Timezone {
			if _, err := s.OS.SetTimezone(ctx, *p.Timezone); err != nil {
				return fmt.Errorf("timezone: %w", err)
			}
			undo = append(undo, func(ctx context.Context) error { _, err := s.OS.SetTimezone(ctx, before.Timezone); return err })
		}
		if p.NTP != nil && *p.NTP != before.NTP {
			if _, err := s.OS.SetNTP(ctx, *p.NTP); err != nil {
				revert()
				return fmt.Errorf("ntp: %w", err)
			}
			undo = append(undo, func(ctx context.Context) error { _, err := s.OS.SetNTP(ctx, before.NTP); return err })
		}
	}
	if p.RoomName != nil && s.OS != nil {
		before, err := s.OS.Hostname(ctx)
		if err != nil {
			revert()
			return fmt.Errorf("roomName: read the host name: %w", err)
		}
		if before.Pretty != *p.RoomName {
			if _, err := s.OS.SetRoomName(ctx, *p.RoomName); err != nil {
				revert()
				return fmt.Errorf("roomName: set the host name: %w", err)
			}
			undo = append(undo, func(ctx context.Context) error {
				if before.Pretty != "" {
					_, err := s.OS.SetRoomName(ctx, before.Pretty)
					return err
				}
				return s.OS.SetStaticHostname(ctx, before.Static)
			})
		}
	}
	if err := s.applyNetwork(ctx, p, &undo); err != nil {
		revert()
		return err
	}
	if err := s.setFleetLayer(layer); err != nil {
		revert()
		return err
	}
	if p.AdminPIN != nil {
		if err := s.Admin.SetPIN("", *p.AdminPIN, false, ""); err != nil {
			return fmt.Errorf("adminPin: %w", err)
		}
	}
	return nil
}

// fleetLayer is a profile as the settings' fleet layer: the keys the
// profile leaves out are the room's own.
// applyNetwork gives NetworkManager the profile's networks: wired, then
// Wi-Fi, then the proxy, each added to undo. NetworkManager never hands a
// Wi-Fi passphrase back, so undoing a Wi-Fi change restores the network's
// name but not its passphrase; the proxy has no reading to restore from.
// Both are last, so only a failure to store roomd's own settings after
// them needs the undo. (An unhealthy profile's rollback gives the whole
// previous profile again, passphrase included.)
func (s *System) applyNetwork(ctx context.Context, p fleetapi.Profile, undo *[]func(context.Context) error) error {
	if w := p.Wired; w != nil {
		before, err := s.OS.WiredIPv4Settings(ctx)
		if err != nil {
			return fmt.Errorf("wired: read the current settings: %w", err)
		}
		if err := s.OS.SetWiredIPv4(ctx, osconfig.WiredIPv4{Method: w.Method, Address: w.Address, Gateway: w.Gateway, DNS: w.DNS}); err != nil {
			return fmt.Errorf("wired: %w", err)
		}
		*undo = append(*undo, func(ctx context.Context) error {
			if before.Method == "" {
				// There was no atrium-wired profile: DHCP, as before.
				before = osconfig.WiredIPv4{Method: osconfig.IPv4Auto}
			}
			return s.OS.SetWiredIPv4(ctx, before)
		})
	}
	if w := p.WiFi; w != nil {
		before, err := s.OS.WiFiSettings(ctx)
		if err != nil {
			return fmt.Errorf("wifi: read the current settings: %w", err)
		}
		if err := s.OS.SetWiFi(ctx, &osconfig.WiFi{SSID: w.SSID, PSK: w.PSK, Hidden: w.Hidden}); err != nil {
			return fmt.Errorf("wifi: %w", err)
		}
		*undo = append(*undo, func(ctx context.Context) error {
			if before == nil {
				return s.OS.SetWiFi(ctx, nil)
			}
			return errors.New("the previous Wi-Fi passphrase cannot be restored; the fleet's previous profile brings it back")
		})
	}
	if p.ProxyPAC != nil {
		if err := s.OS.SetProxyPAC(ctx, *p.ProxyPAC); err != nil {
			return fmt.Errorf("proxyPac: %w", err)
		}
	}
	return nil
}

func fleetLayer(p fleetapi.Profile) settings.FleetLayer {
	l := settings.FleetLayer{RoomName: p.RoomName, Timezone: p.Timezone}
	if c := p.Calendar; c != nil {
		password, token := c.Password, c.Token
		refresh := c.Refresh
		if refresh == "" {
			refresh = config.Default().Calendar.Refresh.String()
		}
		l.Calendar = &apiv1.CalendarSettings{
			URL: c.URL, CalDAV: c.CalDAV, Username: c.Username, Password: &password, Token: &token,
			Refresh: refresh, AutoJoin: c.AutoJoin,
		}
	}
	if p.ICEServers != nil {
		servers := make([]apiv1.ICEServerConfig, len(*p.ICEServers))
		for i, srv := range *p.ICEServers {
			credential := srv.Credential
			servers[i] = apiv1.ICEServerConfig{URLs: srv.URLs, Username: srv.Username, Credential: &credential}
		}
		l.ICEServers = &servers
	}
	if d := p.Devices; d != nil {
		l.Devices = &apiv1.DeviceChoice{Camera: d.Camera, Microphone: d.Microphone, Speaker: d.Speaker}
	}
	if d := p.Display; d != nil {
		sched := apiv1.DisplaySchedule{Sleep: d.Sleep, Days: d.Days, AwakeFrom: d.AwakeFrom, AwakeUntil: d.AwakeUntil}
		if !d.Sleep && len(d.Days) == 0 {
			// Sleep off: keep office hours ready for whoever switches it on.
			def := settings.DefaultDisplay
			sched.Days, sched.AwakeFrom, sched.AwakeUntil = def.Days, def.AwakeFrom, def.AwakeUntil
		}
		l.Display = &sched
	}
	return l
}

// fleetExecute runs the commands that are roomd's own actions.
func (s *System) fleetExecute(ctx context.Context, cmd fleetapi.Command) (json.RawMessage, error) {
	switch cmd.Kind {
	case fleetapi.CommandLeaveMeeting:
		m, err := s.Leave(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(m)
	case fleetapi.CommandJoin:
		var args fleetapi.JoinArgs
		if err := strictJSON(cmd.Args, &args); err != nil {
			return nil, fmt.Errorf("join: arguments: %w", err)
		}
		m, err := s.Join(ctx, args.URL)
		if err != nil {
			return nil, err
		}
		return json.Marshal(m)
	case fleetapi.CommandNetworkTest:
		nt, err := s.RunNetworkTest(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(nt.Verdict)
	}
	return nil, fmt.Errorf("roomd does not carry out %q commands", cmd.Kind)
}

func strictJSON(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// collectLogs bundles what a support person needs as a gzip'd tar: roomd's
// recent log, its status, settings (secrets are never in them), fleet
// status and the last network test. The log is cut from its old end until
// the bundle fits maxBytes.
func (s *System) collectLogs(_ context.Context, since time.Time, maxBytes int64) ([]byte, error) {
	files := map[string]any{"status.json": s.Status(), "settings.json": s.Overlay.Get(), "fleet.json": s.FleetStatus()}
	if nt, err := s.LastNetworkTest(); err == nil {
		files["network-test.json"] = nt
	}
	budget := int(maxBytes) * 4 // text compresses well; shrink until it fits
	for budget >= 0 {
		var log []byte
		if s.Deps.Recent != nil && budget > 0 {
			log = s.Deps.Recent.Since(since, budget)
		}
		bundle, err := tarGz(log, files, s.Deps.Now())
		if err != nil {
			return nil, fmt.Errorf("collect logs: %w", err)
		}
		if int64(len(bundle)) <= maxBytes {
			return bundle, nil
		}
		if budget == 0 {
			return nil, fmt.Errorf("collect logs: even without the log the bundle is %d bytes, over the %d allowed", len(bundle), maxBytes)
		}
		budget /= 2
	}
	return nil, errors.New("collect logs: unreachable")
}

func tarGz(log []byte, files map[string]any, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: filepath.Join("atrium-logs", name), Mode: 0o644, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("roomd.log", log); err != nil {
		return nil, err
	}
	for _, name := range []string{"status.json", "settings.json", "fleet.json", "network-test.json"} {
		v, ok := files[name]
		if !ok {
			continue
		}
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := add(name, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rebootRoom restarts the device through login1, never in a meeting.
func (s *System) rebootRoom(ctx context.Context) error {
	if s.inCall() {
		return errors.New("the room is in a meeting; reboot refused")
	}
	if s.OS == nil {
		return errors.New("this system has no login manager on a system bus to reboot it")
	}
	return s.OS.Reboot(ctx)
}
