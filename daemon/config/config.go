// Package config loads and validates roomd's TOML configuration.
//
// Loading is all-or-nothing: a file with an unknown key, a value of the wrong
// type or a value out of range yields an error naming the key and its line,
// and no Config. The daemon refuses to start on such an error rather than run
// half-configured.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where roomd looks for its configuration on a device.
const DefaultPath = "/etc/atrium/roomd.toml"

// Config is roomd's whole configuration.
type Config struct {
	Room     Room     `toml:"room"`
	Daemon   Daemon   `toml:"daemon"`
	API      API      `toml:"api"`
	Log      Log      `toml:"log"`
	HAL      HAL      `toml:"hal"`
	Meeting  Meeting  `toml:"meeting"`
	Calendar Calendar `toml:"calendar"`
	Fleet    Fleet    `toml:"fleet"`
	Update   Update   `toml:"update"`
}

// Update configures over-the-air updates (package ota). Updates are on
// only when roomd.toml has an [update] section (Enabled) and the trusted
// root file exists; roomd reports which is missing otherwise.
type Update struct {
	// Enabled is set by Parse when the file has an [update] section.
	Enabled bool `toml:"-"`
	// TrustedRoot is the release repository's root.json shipped in the
	// image: the first trust anchor of TUF.
	TrustedRoot string `toml:"trusted_root"`
	// Hardware is this device's hardware ID, which an image's metadata
	// must list; default "atrium-" + the Go architecture (atrium-amd64,
	// atrium-arm64).
	Hardware string `toml:"hardware"`
	// Boot is the boot loader: systemd-boot, grub, or file (a JSON file
	// that plays the firmware's part, for development and tests). With
	// systemd-boot an update also copies the kernel and initramfs inside
	// the new (squashfs) image to the ESP, where the slot's entry loads
	// them (ota/bootfiles). With grub nothing is copied: the images
	// Atrium builds boot with systemd-boot.
	Boot string `toml:"boot"`
	// BootFile is the file loader's state; empty is <state_dir>/boot.json.
	BootFile string `toml:"boot_file"`
	// ESP is where the EFI system partition is mounted (systemd-boot);
	// GRUBEnv is GRUB's environment block (grub).
	ESP     string `toml:"esp"`
	GRUBEnv string `toml:"grubenv"`
	// SlotA and SlotB are the two root-filesystem block devices (plain
	// files with boot = "file").
	SlotA string `toml:"slot_a"`
	SlotB string `toml:"slot_b"`
	// Tries is how many boots a new image gets before the loader falls
	// back.
	Tries int `toml:"tries"`
	// HealthDeadline is how long after start a new image has to prove
	// itself healthy (roomd ready, the kiosk up, a fleet check-in).
	HealthDeadline Duration `toml:"health_deadline"`
	// RequireKiosk makes the kiosk's "home screen rendered" part of the
	// health gate.
	RequireKiosk bool `toml:"require_kiosk"`
	// OSRelease is read for IMAGE_VERSION, the version the image shipped.
	OSRelease string `toml:"os_release"`
}

// Fleet configures management by a fleet server (fleetd).
type Fleet struct {
	// Server is fleetd's device API; empty leaves the room standalone.
	Server string `toml:"server"`
	// CAFile or CASHA256 say whom to trust on the first contact, before
	// the fleet's CA bundle is known; neither trusts the system's roots.
	CAFile   string `toml:"ca_file"`
	CASHA256 string `toml:"ca_sha256"`
	// ActivationCode enrolls at start (factory flows); the kiosk asks for
	// one otherwise.
	ActivationCode string `toml:"activation_code"`
	// Identity is where the device key lives: auto, tpm or file.
	Identity string `toml:"identity"`
	TPM      string `toml:"tpm"`
}

// Calendar configures the room's agenda.
type Calendar struct {
	URL          string   `toml:"url"`
	CalDAV       bool     `toml:"caldav"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	TokenFile    string   `toml:"token_file"`
	File         string   `toml:"file"`
	Refresh      Duration `toml:"refresh"`
	Timezone     string   `toml:"timezone"`
	AutoJoin     bool     `toml:"auto_join"`
}

// Room describes the room itself.
type Room struct {
	Name string `toml:"name"`
}

// Daemon holds process-level settings.
type Daemon struct {
	StateDir string `toml:"state_dir"`
}

// API configures the local API listeners.
type API struct {
	Socket      string   `toml:"socket"`
	SocketGroup string   `toml:"socket_group"`
	Listen      []string `toml:"listen"`
	TokenFile   string   `toml:"token_file"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// HAL configures device selection.
type HAL struct {
	Simulate       string    `toml:"simulate"`
	Camera         string    `toml:"camera"`
	Microphone     string    `toml:"microphone"`
	Speaker        string    `toml:"speaker"`
	HardwareCodecs bool      `toml:"hardware_codecs"`
	Simulated      Simulated `toml:"simulated"`
}

// Simulated configures the simulated devices.
type Simulated struct {
	CameraWidth  int      `toml:"camera_width"`
	CameraHeight int      `toml:"camera_height"`
	CameraFPS    int      `toml:"camera_fps"`
	ToneHz       float64  `toml:"tone_hz"`
	BeepInterval Duration `toml:"beep_interval"`
}

// Meeting configures how the room joins meetings.
type Meeting struct {
	DisplayName     string      `toml:"display_name"`
	SetupTimeout    Duration    `toml:"setup_timeout"`
	MediaTimeout    Duration    `toml:"media_timeout"`
	LeaveTimeout    Duration    `toml:"leave_timeout"`
	RelayOnly       bool        `toml:"relay_only"`
	MaxWidth        int         `toml:"max_width"`
	MaxHeight       int         `toml:"max_height"`
	MaxFPS          int         `toml:"max_fps"`
	MaxVideoBitrate int         `toml:"max_video_bitrate"`
	AudioBitrate    int         `toml:"audio_bitrate"`
	ICEServers      []ICEServer `toml:"ice_servers"`
	Janus           Janus       `toml:"janus"`
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	URLs           []string `toml:"urls"`
	Username       string   `toml:"username"`
	CredentialFile string   `toml:"credential_file"`
}

// Janus configures the Janus VideoRoom provider.
type Janus struct {
	// Domains maps the host of a web meeting link to its Janus API, so a
	// link a person opens in a browser also joins natively.
	Domains map[string]JanusDomain `toml:"domains"`
}

// JanusDomain is one Janus deployment.
type JanusDomain struct {
	API string `toml:"api"`
}

// Duration is a time.Duration written as a Go duration string ("1s", "250ms").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. \"500ms\", \"2s\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the commented default configuration file.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Default returns the built-in configuration, the one DefaultTOML spells out.
func Default() *Config {
	return &Config{
		Room:   Room{Name: "Meeting Room"},
		Daemon: Daemon{StateDir: "/var/lib/atrium"},
		API: API{
			Socket:      "/run/atrium/roomd.sock",
			SocketGroup: "atrium",
			Listen:      []string{"127.0.0.1:8480"},
		},
		Log: Log{Level: "info", Format: "auto"},
		HAL: HAL{
			Simulate:       "auto",
			HardwareCodecs: true,
			Simulated: Simulated{
				CameraWidth: 1280, CameraHeight: 720, CameraFPS: 30,
				ToneHz: 440, BeepInterval: Duration{time.Second},
			},
		},
		Meeting: Meeting{
			SetupTimeout: Duration{15 * time.Second},
			MediaTimeout: Duration{10 * time.Second},
			LeaveTimeout: Duration{3 * time.Second},
			MaxWidth:     1280, MaxHeight: 720, MaxFPS: 30,
			MaxVideoBitrate: 1_500_000,
			AudioBitrate:    32_000,
		},
		Calendar: Calendar{Refresh: Duration{5 * time.Minute}},
		Fleet:    Fleet{Identity: "auto", TPM: "/dev/tpmrm0"},
		Update: Update{
			TrustedRoot: "/usr/share/atrium/update-root.json",
			Hardware:    "atrium-" + runtime.GOARCH,
			Boot:        "systemd-boot",
			ESP:         "/boot/efi",
			GRUBEnv:     "/boot/efi/EFI/atrium/grubenv",
			SlotA:       "/dev/disk/by-partlabel/root-a",
			SlotB:       "/dev/disk/by-partlabel/root-b",
			Tries:       3, HealthDeadline: Duration{5 * time.Minute}, RequireKiosk: true,
			OSRelease: "/etc/os-release",
		},
	}
}

// Error is one problem found in a configuration file.
type Error struct {
	File string
	Line int    // 0 when the problem has no single line (e.g. a missing key)
	Key  string // dotted path, e.g. "api.listen"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Load reads and validates the file at path. It returns every problem it
// finds, joined, so an operator can fix a file in one pass.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as if read from the file named name.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	// Lists replace the default rather than merge with it.
	cfg.API.Listen = nil
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, decodeError(name, data, err)
	}
	if !md.IsDefined("api", "listen") {
		cfg.API.Listen = Default().API.Listen
	}
	cfg.Update.Enabled = md.IsDefined("update")
	loc := newLocator(data)
	var errs []error
	for _, k := range md.Undecoded() {
		key := k.String()
		errs = append(errs, &Error{File: name, Line: loc.line(key), Key: key, Msg: "unknown key"})
	}
	for _, fe := range cfg.validate() {
		errs = append(errs, &Error{File: name, Line: loc.line(fe.key), Key: fe.key, Msg: fe.msg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func decodeError(name string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	// Type mismatches come as plain errors that already carry the line and
	// key in their text ("toml: line 3 (last key ...)"); keep that text.
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	return fmt.Errorf("%s: %s", name, msg)
}

// Validate checks a configuration built in code (such as roomd.toml with
// the admin settings laid over it) by the rules Parse applies to a file.
// Each problem names its key; they are joined.
func (c *Config) Validate() error {
	var errs []error
	for _, fe := range c.validate() {
		errs = append(errs, fmt.Errorf("%s: %s", fe.key, fe.msg))
	}
	return errors.Join(errs...)
}

type fieldError struct{ key, msg string }

func (c *Config) validate() []fieldError {
	var errs []fieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.Room.Name) == "" {
		bad("room.name", "must not be empty")
	} else if len(c.Room.Name) > 64 {
		bad("room.name", "is %d bytes long; at most 64", len(c.Room.Name))
	}
	if c.Daemon.StateDir == "" || !filepath.IsAbs(c.Daemon.StateDir) && !strings.HasPrefix(c.Daemon.StateDir, ".") {
		bad("daemon.state_dir", "must be an absolute path (or start with . for development), got %q", c.Daemon.StateDir)
	}
	if c.API.Socket != "" && !filepath.IsAbs(c.API.Socket) && !strings.HasPrefix(c.API.Socket, ".") {
		bad("api.socket", "must be an absolute path (or start with . for development), got %q", c.API.Socket)
	}
	if len(c.API.Socket) > 100 {
		// sun_path holds 108 bytes; leave room for the terminator.
		bad("api.socket", "path is %d bytes long; a unix socket path must be under 100", len(c.API.Socket))
	}
	if c.API.Socket == "" && len(c.API.Listen) == 0 {
		bad("api", "no listener: set api.socket or api.listen")
	}
	public := false
	for _, addr := range c.API.Listen {
		loopback, err := IsLoopbackAddr(addr)
		if err != nil {
			bad("api.listen", "%v", err)
			continue
		}
		if !loopback {
			public = true
		}
	}
	if public && c.API.TokenFile == "" {
		bad("api.token_file", "required because api.listen has an address that is not loopback: without a token anyone on the network could control the room")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "journal", "text", "json":
	default:
		bad("log.format", "must be one of auto, journal, text, json; got %q", c.Log.Format)
	}
	switch c.HAL.Simulate {
	case "auto", "always", "never":
	default:
		bad("hal.simulate", "must be one of auto, always, never; got %q", c.HAL.Simulate)
	}
	for _, pin := range []struct{ key, id string }{{"hal.camera", c.HAL.Camera}, {"hal.microphone", c.HAL.Microphone}, {"hal.speaker", c.HAL.Speaker}} {
		if key, id := pin.key, pin.id; len(id) > 256 || strings.ContainsFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
			bad(key, "must be a device ID as `roomctl devices` lists it (printable, no spaces, at most 256 bytes); got %q", id)
		}
	}
	errs = append(errs, c.Fleet.validate()...)
	if c.Update.Enabled {
		errs = append(errs, c.Update.validate()...)
	}
	cal := c.Calendar
	if cal.URL != "" && cal.File != "" {
		bad("calendar.file", "set either calendar.url or calendar.file, not both")
	}
	if cal.URL != "" {
		if u, err := url.Parse(cal.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "webcal" && u.Scheme != "webcals") {
			bad("calendar.url", "must be an https, http or webcal URL; got %q", cal.URL)
		}
	}
	if cal.CalDAV && cal.URL == "" {
		bad("calendar.caldav", "needs calendar.url, the CalDAV collection's URL")
	}
	if cal.PasswordFile != "" && cal.Username == "" {
		bad("calendar.password_file", "needs calendar.username")
	}
	if cal.TokenFile != "" && cal.Username != "" {
		bad("calendar.token_file", "use either a bearer token or a username and password, not both")
	}
	if d := cal.Refresh.Duration; d < time.Second || d > 24*time.Hour {
		bad("calendar.refresh", "must be from 1s to 24h; got %s", cal.Refresh)
	}
	if cal.Timezone != "" {
		if _, err := time.LoadLocation(cal.Timezone); err != nil {
			bad("calendar.timezone", "must be an IANA time zone such as Europe/Berlin; got %q", cal.Timezone)
		}
	}
	s := c.HAL.Simulated
	if s.CameraWidth < 16 || s.CameraWidth > 3840 || s.CameraWidth%2 != 0 {
		bad("hal.simulated.camera_width", "must be an even number from 16 to 3840; got %d", s.CameraWidth)
	}
	if s.CameraHeight < 16 || s.CameraHeight > 2160 || s.CameraHeight%2 != 0 {
		bad("hal.simulated.camera_height", "must be an even number from 16 to 2160; got %d", s.CameraHeight)
	}
	if s.CameraFPS < 1 || s.CameraFPS > 60 {
		bad("hal.simulated.camera_fps", "must be from 1 to 60; got %d", s.CameraFPS)
	}
	if s.ToneHz < 20 || s.ToneHz > 20000 {
		bad("hal.simulated.tone_hz", "must be from 20 to 20000; got %g", s.ToneHz)
	}
	if s.BeepInterval.Duration < 100*time.Millisecond || s.BeepInterval.Duration > time.Minute {
		bad("hal.simulated.beep_interval", "must be from 100ms to 1m; got %s", s.BeepInterval)
	}
	errs = append(errs, c.Meeting.validate()...)
	return errs
}

func (m *Meeting) validate() []fieldError {
	var errs []fieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, fieldError{"meeting." + key, fmt.Sprintf(format, args...)})
	}
	if len(m.DisplayName) > 64 {
		bad("display_name", "is %d bytes long; at most 64", len(m.DisplayName))
	}
	durations := []struct {
		key      string
		d        time.Duration
		min, max time.Duration
	}{
		{"setup_timeout", m.SetupTimeout.Duration, time.Second, 5 * time.Minute},
		{"media_timeout", m.MediaTimeout.Duration, time.Second, 5 * time.Minute},
		{"leave_timeout", m.LeaveTimeout.Duration, 100 * time.Millisecond, time.Minute},
	}
	for _, d := range durations {
		if d.d < d.min || d.d > d.max {
			bad(d.key, "must be from %s to %s; got %s", d.min, d.max, d.d)
		}
	}
	if m.MaxWidth < 160 || m.MaxWidth > 3840 || m.MaxWidth%2 != 0 {
		bad("max_width", "must be an even number from 160 to 3840; got %d", m.MaxWidth)
	}
	if m.MaxHeight < 90 || m.MaxHeight > 2160 || m.MaxHeight%2 != 0 {
		bad("max_height", "must be an even number from 90 to 2160; got %d", m.MaxHeight)
	}
	if m.MaxFPS < 1 || m.MaxFPS > 60 {
		bad("max_fps", "must be from 1 to 60; got %d", m.MaxFPS)
	}
	if m.MaxVideoBitrate < 100_000 || m.MaxVideoBitrate > 20_000_000 {
		bad("max_video_bitrate", "must be from 100000 to 20000000 bits/s; got %d", m.MaxVideoBitrate)
	}
	if m.AudioBitrate < 6_000 || m.AudioBitrate > 510_000 {
		bad("audio_bitrate", "must be from 6000 to 510000 bits/s (Opus); got %d", m.AudioBitrate)
	}
	relays := 0
	for i, s := range m.ICEServers {
		key := fmt.Sprintf("ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			bad(key+".urls", "must list at least one stun:, turn: or turns: URL")
		}
		turn := false
		for _, raw := range s.URLs {
			scheme, _, _ := strings.Cut(raw, ":")
			switch scheme {
			case "stun", "stuns":
			case "turn", "turns":
				turn = true
			default:
				bad(key+".urls", "%q: scheme must be stun, stuns, turn or turns", raw)
			}
		}
		if turn {
			relays++
			if s.Username == "" || s.CredentialFile == "" {
				bad(key, "a TURN server needs username and credential_file")
			}
		}
		if s.CredentialFile != "" && !filepath.IsAbs(s.CredentialFile) {
			bad(key+".credential_file", "must be an absolute path; got %q", s.CredentialFile)
		}
	}
	if m.RelayOnly && relays == 0 {
		bad("relay_only", "needs at least one TURN server in meeting.ice_servers: without one no call can connect")
	}
	for host, d := range m.Janus.Domains {
		key := fmt.Sprintf("janus.domains.%s.api", host)
		u, err := url.Parse(d.API)
		if err != nil || u.Host == "" {
			bad(key, "must be an absolute URL such as wss://%s/janus; got %q", host, d.API)
			continue
		}
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			bad(key, "scheme must be wss, ws, https or http; got %q", u.Scheme)
		}
	}
	return errs
}

// IsLoopbackAddr reports whether a host:port listen address binds only to
// loopback. An empty host or an unspecified address binds everywhere.
func IsLoopbackAddr(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if port == "" {
		return false, fmt.Errorf("%q has no port", addr)
	}
	if host == "localhost" {
		return true, nil
	}
	if host == "" {
		return false, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false, fmt.Errorf("%q: host must be an IP address or localhost, so the bound interface is unambiguous", addr)
	}
	return ip.IsLoopback(), nil
}

// LoopbackURL returns an http URL for reaching a listen address locally.
func LoopbackURL(addr string) string {
	return (&url.URL{Scheme: "http", Host: addr, Path: "/"}).String()
}

func (f Fleet) validate() []fieldError {
	var errs []fieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Sprintf(format, args...)})
	}
	if f.Server != "" {
		u, err := url.Parse(f.Server)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("fleet.server", "must be an https URL with a host and nothing after it, such as \"https://fleet.example.com:8443\"; got %q", f.Server)
		}
	}
	if f.CAFile != "" && f.CASHA256 != "" {
		bad("fleet.ca_sha256", "set ca_file or ca_sha256, not both")
	}
	if f.CAFile != "" && !filepath.IsAbs(f.CAFile) && !strings.HasPrefix(f.CAFile, ".") {
		bad("fleet.ca_file", "must be an absolute path, got %q", f.CAFile)
	}
	if f.CASHA256 != "" {
		if _, err := NormaliseFingerprint(f.CASHA256); err != nil {
			bad("fleet.ca_sha256", "%v", err)
		}
	}
	if (f.CAFile != "" || f.CASHA256 != "" || f.ActivationCode != "") && f.Server == "" {
		bad("fleet.server", "is needed with ca_file, ca_sha256 or activation_code")
	}
	switch f.Identity {
	case "auto", "tpm", "file":
	default:
		bad("fleet.identity", "must be auto, tpm or file, got %q", f.Identity)
	}
	if f.TPM == "" || !filepath.IsAbs(f.TPM) {
		bad("fleet.tpm", "must be an absolute path, got %q", f.TPM)
	}
	return errs
}

func (u Update) validate() []fieldError {
	var errs []fieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Sprintf(format, args...)})
	}
	path := func(key, p string, required bool) {
		switch {
		case p == "" && required:
			bad(key, "must be set")
		case p != "" && !filepath.IsAbs(p) && !strings.HasPrefix(p, "."):
			bad(key, "must be an absolute path (or start with . for development), got %q", p)
		}
	}
	path("update.trusted_root", u.TrustedRoot, true)
	path("update.os_release", u.OSRelease, true)
	path("update.slot_a", u.SlotA, true)
	path("update.slot_b", u.SlotB, true)
	if u.SlotA != "" && filepath.Clean(u.SlotA) == filepath.Clean(u.SlotB) {
		bad("update.slot_b", "is the same as slot_a (%q): the two slots must be different devices", u.SlotB)
	}
	if u.Hardware == "" || len(u.Hardware) > 64 || strings.ContainsFunc(u.Hardware, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		bad("update.hardware", "must be a hardware ID of 1 to 64 printable characters without spaces, got %q", u.Hardware)
	}
	switch u.Boot {
	case "systemd-boot":
		path("update.esp", u.ESP, true)
	case "grub":
		path("update.grubenv", u.GRUBEnv, true)
	case "file":
		path("update.boot_file", u.BootFile, false)
	default:
		bad("update.boot", "must be systemd-boot, grub or file, got %q", u.Boot)
	}
	if u.Tries < 1 || u.Tries > 9 {
		bad("update.tries", "must be from 1 to 9, got %d", u.Tries)
	}
	if d := u.HealthDeadline.Duration; d < time.Second || d > time.Hour {
		bad("update.health_deadline", "must be from 1s to 1h, got %s", u.HealthDeadline)
	}
	return errs
}

// NormaliseFingerprint turns a SHA-256 fingerprint as people copy it
// ("AB:CD:…", "sha256:abcd…", with or without colons) into 64 lower-case
// hex digits.
func NormaliseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:"))
	h = strings.ReplaceAll(h, ":", "")
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return h, nil
}
