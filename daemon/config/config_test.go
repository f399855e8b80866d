package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// problems returns the *Error values inside err, which may be a single
// *Error or several joined with errors.Join.
func problems(t *testing.T, err error) []*Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

func TestDefaultTOMLMatchesDefault(t *testing.T) {
	cfg, err := Parse("default.toml", DefaultTOML())
	if err != nil {
		t.Fatalf("Parse(DefaultTOML()): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("the embedded default file and Default() drifted apart:\n file: %+v\n code: %+v", cfg, want)
	}
	if errs := Default().validate(); len(errs) != 0 {
		t.Errorf("Default() does not validate: %v", errs)
	}
}

func TestDefaultTOMLIsACopy(t *testing.T) {
	b := DefaultTOML()
	b[0] = 'X'
	if DefaultTOML()[0] == 'X' {
		t.Error("DefaultTOML returns the embedded slice itself; a caller can change the default")
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "\n\n[room]\n"} {
		cfg, err := Parse("f.toml", []byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("Parse(%q) = %+v, want Default()", in, cfg)
		}
	}
}

func TestParseValues(t *testing.T) {
	in := `
[room]
name = "Boardroom"
[daemon]
state_dir = "./state"
[api]
socket = ""
listen = ["0.0.0.0:8480", "[::1]:9000"]
token_file = "/etc/atrium/token"
[log]
level = "debug"
format = "json"
[hal]
simulate = "never"
camera = "usb-046d:085e-1A2B3C4D"
microphone = "usb-0b0e:245e-A1B2-pcm0c"
speaker = "pipewire:atrium-ec-sink"
hardware_codecs = false
[hal.simulated]
camera_width = 16
camera_height = 2160
camera_fps = 60
tone_hz = 20000
beep_interval = "100ms"
[meeting]
display_name = "Boardroom (3rd floor)"
setup_timeout = "20s"
media_timeout = "5s"
leave_timeout = "1s"
relay_only = true
max_width = 1920
max_height = 1080
max_fps = 25
max_video_bitrate = 2500000
audio_bitrate = 48000
[[meeting.ice_servers]]
urls = ["turns:turn.example.com:5349", "turn:turn.example.com:3478?transport=tcp"]
username = "room-17"
credential_file = "/etc/atrium/turn-credential"
[meeting.janus.domains."meet.example.com"]
api = "wss://meet.example.com/janus"
[calendar]
url = "webcal://cal.example.com/rooms/boardroom.ics"
username = "boardroom"
password_file = "/etc/atrium/calendar-password"
refresh = "10m"
timezone = "Europe/Berlin"
auto_join = true
[fleet]
server = "https://fleet.example.com:8443"
ca_sha256 = "AB:cd:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd"
activation_code = "K7QX-2MNP"
identity = "file"
`
	cfg, err := Parse("f.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Room:   Room{Name: "Boardroom"},
		Daemon: Daemon{StateDir: "./state"},
		API:    API{Socket: "", SocketGroup: "atrium", Listen: []string{"0.0.0.0:8480", "[::1]:9000"}, TokenFile: "/etc/atrium/token"},
		Log:    Log{Level: "debug", Format: "json"},
		HAL: HAL{Simulate: "never", Camera: "usb-046d:085e-1A2B3C4D", Microphone: "usb-0b0e:245e-A1B2-pcm0c",
			Speaker: "pipewire:atrium-ec-sink", Simulated: Simulated{
				CameraWidth: 16, CameraHeight: 2160, CameraFPS: 60, ToneHz: 20000, BeepInterval: Duration{100 * time.Millisecond},
			}},
		Meeting: Meeting{
			DisplayName:  "Boardroom (3rd floor)",
			SetupTimeout: Duration{20 * time.Second}, MediaTimeout: Duration{5 * time.Second}, LeaveTimeout: Duration{time.Second},
			RelayOnly: true, MaxWidth: 1920, MaxHeight: 1080, MaxFPS: 25, MaxVideoBitrate: 2_500_000, AudioBitrate: 48_000,
			ICEServers: []ICEServer{{
				URLs:     []string{"turns:turn.example.com:5349", "turn:turn.example.com:3478?transport=tcp"},
				Username: "room-17", CredentialFile: "/etc/atrium/turn-credential",
			}},
			Janus: Janus{Domains: map[string]JanusDomain{"meet.example.com": {API: "wss://meet.example.com/janus"}}},
		},
		Calendar: Calendar{URL: "webcal://cal.example.com/rooms/boardroom.ics", Username: "boardroom",
			PasswordFile: "/etc/atrium/calendar-password", Refresh: Duration{10 * time.Minute}, Timezone: "Europe/Berlin", AutoJoin: true},
		Fleet: Fleet{Server: "https://fleet.example.com:8443",
			CASHA256:       "AB:cd:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd",
			ActivationCode: "K7QX-2MNP", Identity: "file", TPM: "/dev/tpmrm0"},
		Update: Default().Update, // no [update] section: defaults, off
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"omitted keeps the default", "[api]\nsocket = \"/run/x.sock\"\n", []string{"127.0.0.1:8480"}},
		{"replaces rather than merges", "[api]\nlisten = [\"127.0.0.1:9000\"]\n", []string{"127.0.0.1:9000"}},
		{"empty with a socket is fine", "[api]\nlisten = []\nsocket = \"/run/x.sock\"\n", []string{}},
		{"socket off, default listen", "[api]\nsocket = \"\"\n", []string{"127.0.0.1:8480"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("f.toml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.API.Listen) != len(tt.want) || (len(tt.want) > 0 && !reflect.DeepEqual(cfg.API.Listen, tt.want)) {
				t.Errorf("Listen = %q, want %q", cfg.API.Listen, tt.want)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	// Values at the edges of every range, and the development escapes.
	tests := []string{
		"[daemon]\nstate_dir = \"./dev-state\"\n",
		"[daemon]\nstate_dir = \"/abs\"\n",
		"[api]\nsocket = \"./roomd.sock\"\n",
		"[api]\nsocket = \"/" + strings.Repeat("s", 99) + "\"\n", // 100 bytes
		"[api]\nlisten = [\"localhost:80\", \"[::1]:81\", \"127.0.0.2:82\"]\n",
		"[api]\nlisten = [\"0.0.0.0:80\"]\ntoken_file = \"/t\"\n",
		"[api]\nlisten = [\":80\"]\ntoken_file = \"/t\"\n",
		"[room]\nname = \"" + strings.Repeat("r", 64) + "\"\n",
		"[log]\nlevel = \"warn\"\nformat = \"journal\"\n",
		"[log]\nlevel = \"error\"\nformat = \"text\"\n",
		"[hal]\nsimulate = \"always\"\n",
		"[hal.simulated]\ncamera_width = 3840\ncamera_height = 16\ncamera_fps = 1\ntone_hz = 20\nbeep_interval = \"1m\"\n",
		"hal.simulated.camera_fps = 25\n", // dotted key at top level
	}
	for _, in := range tests {
		if _, err := Parse("f.toml", []byte(in)); err != nil {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	// Each input has padding lines before the bad key so that Line is tested
	// against something other than 1.
	tests := []struct {
		name string
		in   string
		key  string
		line int
		msg  string // substring of Msg
	}{
		{"empty room name", "# c\n[room]\nname = \"\"\n", "room.name", 3, "must not be empty"},
		{"blank room name", "[room]\n\nname = \"   \"\n", "room.name", 3, "must not be empty"},
		{"long room name", "[room]\nname = \"" + strings.Repeat("x", 65) + "\"\n", "room.name", 2, "65 bytes long; at most 64"},
		{"relative state_dir", "[room]\nname = \"a\"\n[daemon]\nstate_dir = \"var/lib\"\n", "daemon.state_dir", 4, "absolute path"},
		{"empty state_dir", "[daemon]\nstate_dir = \"\"\n", "daemon.state_dir", 2, "absolute path"},
		{"relative socket", "[api]\n\n\nsocket = \"run/roomd.sock\"\n", "api.socket", 4, "absolute path"},
		{"long socket", "[api]\nsocket = \"/" + strings.Repeat("s", 100) + "\"\n", "api.socket", 2, "under 100"},
		{"no listener", "\n[api]\nsocket = \"\"\nlisten = []\n", "api", 2, "no listener"},
		{"listen without port", "[api]\nlisten = [\"127.0.0.1\"]\n", "api.listen", 2, "not host:port"},
		{"listen with empty port", "[api]\nlisten = [\"127.0.0.1:\"]\n", "api.listen", 2, "no port"},
		{"listen on a hostname", "[api]\nsocket = \"\"\nlisten = [\"room.example.com:80\"]\n", "api.listen", 3, "IP address or localhost"},
		{"public listen without token", "[api]\nlisten = [\"0.0.0.0:8480\"]\ntoken_file = \"\"\n", "api.token_file", 3, "not loopback"},
		{"bad level", "[log]\nformat = \"text\"\nlevel = \"verbose\"\n", "log.level", 3, `got "verbose"`},
		{"bad format", "[log]\nformat = \"xml\"\n", "log.format", 2, `got "xml"`},
		{"bad simulate", "[hal]\nsimulate = \"sometimes\"\n", "hal.simulate", 2, `got "sometimes"`},
		{"calendar url and file", "[calendar]\nurl = \"https://c.example/a.ics\"\nfile = \"/tmp/a.ics\"\n", "calendar.file", 3, "not both"},
		{"calendar zone", "[calendar]\ntimezone = \"Mars/Olympus\"\n", "calendar.timezone", 2, `got "Mars/Olympus"`},
		{"device id with a space", "[hal]\n\ncamera = \"my camera\"\n", "hal.camera", 3, `got "my camera"`},
		{"width too small", "[hal.simulated]\ncamera_width = 14\n", "hal.simulated.camera_width", 2, "got 14"},
		{"width too large", "[hal.simulated]\ncamera_width = 3842\n", "hal.simulated.camera_width", 2, "got 3842"},
		{"width odd", "[hal.simulated]\ncamera_fps = 30\ncamera_width = 641\n", "hal.simulated.camera_width", 3, "even"},
		{"height too small", "[hal.simulated]\ncamera_height = 0\n", "hal.simulated.camera_height", 2, "got 0"},
		{"height too large", "[hal.simulated]\ncamera_height = 2162\n", "hal.simulated.camera_height", 2, "got 2162"},
		{"height odd", "[hal.simulated]\ncamera_height = 719\n", "hal.simulated.camera_height", 2, "even"},
		{"fps zero", "[hal.simulated]\ncamera_fps = 0\n", "hal.simulated.camera_fps", 2, "got 0"},
		{"fps too high", "[hal.simulated]\ncamera_fps = 61\n", "hal.simulated.camera_fps", 2, "got 61"},
		{"tone too low", "[hal.simulated]\ntone_hz = 19.5\n", "hal.simulated.tone_hz", 2, "got 19.5"},
		{"tone too high", "[hal.simulated]\ntone_hz = 20001\n", "hal.simulated.tone_hz", 2, "got 20001"},
		{"beep too short", "[hal.simulated]\nbeep_interval = \"99ms\"\n", "hal.simulated.beep_interval", 2, "got 99ms"},
		{"beep too long", "[hal.simulated]\nbeep_interval = \"61s\"\n", "hal.simulated.beep_interval", 2, "got 1m1s"},
		{"beep not a duration", "[hal]\n[hal.simulated]\nbeep_interval = \"soon\"\n", "hal.simulated.beep_interval", 3, "not a duration"},
		{"dotted key at top level", "# c\nhal.simulated.camera_fps = 0\n", "hal.simulated.camera_fps", 2, "got 0"},
		{"unknown top-level key", "[room]\nname = \"a\"\n\nbogus = 1\n", "room.bogus", 4, "unknown key"},
		{"unknown key before any table", "bogus = 1\n[room]\n", "bogus", 1, "unknown key"},
		{"unknown key in a table", "[log]\nlevel = \"info\"\ncolour = true\n", "log.colour", 3, "unknown key"},
		{"unknown key in a nested table", "[hal]\n[hal.simulated]\ncamera_fps = 30\nmic_gain = 3\n", "hal.simulated.mic_gain", 4, "unknown key"},
		{"unknown table", "[room]\n[ui]\n", "ui", 2, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("room.toml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted %q: %+v", tt.in, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with error %v", err)
			}
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), err)
			}
			p := ps[0]
			if p.File != "room.toml" || p.Key != tt.key || p.Line != tt.line || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got File=%q Line=%d Key=%q Msg=%q\nwant File=%q Line=%d Key=%q Msg containing %q",
					p.File, p.Line, p.Key, p.Msg, "room.toml", tt.line, tt.key, tt.msg)
			}
		})
	}
}

func TestTokenFileReason(t *testing.T) {
	// token_file absent from the file: the problem has no line of its own.
	_, err := Parse("f.toml", []byte("[api]\nlisten = [\"127.0.0.1:1\", \"192.0.2.1:8480\"]\n"))
	ps := problems(t, err)
	if len(ps) != 1 {
		t.Fatalf("got %v, want one problem", err)
	}
	p := ps[0]
	if p.Key != "api.token_file" || p.Line != 0 {
		t.Errorf("got Key=%q Line=%d, want api.token_file, 0", p.Key, p.Line)
	}
	for _, why := range []string{"required", "not loopback", "anyone on the network"} {
		if !strings.Contains(p.Msg, why) {
			t.Errorf("message %q does not say why (missing %q)", p.Msg, why)
		}
	}
}

func TestParseSeveralProblems(t *testing.T) {
	in := `[room]
name = ""
colour = "blue"
[log]
level = "loud"
[hal.simulated]
camera_fps = 0
tone_hz = 5
`
	_, err := Parse("f.toml", []byte(in))
	if err == nil {
		t.Fatal("Parse accepted a file with four problems")
	}
	type kl struct {
		Key  string
		Line int
	}
	var got []kl
	for _, p := range problems(t, err) {
		got = append(got, kl{p.Key, p.Line})
	}
	// Unknown keys come first, then the validation rules in their order.
	want := []kl{{"room.colour", 3}, {"room.name", 2}, {"log.level", 5}, {"hal.simulated.camera_fps", 7}, {"hal.simulated.tone_hz", 8}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %v, want %v", got, want)
	}
	// Every problem is in the message an operator reads.
	for _, w := range want {
		if !strings.Contains(err.Error(), w.Key) {
			t.Errorf("error text lacks %s:\n%v", w.Key, err)
		}
	}
}

func TestParseSyntaxError(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
	}{
		{"missing value", "[room]\n\nname = \n", 3},
		{"unterminated string", "[room]\nname = \"abc\n", 2},
		{"duplicate key", "[room]\nname = \"a\"\nname = \"b\"\n", 3},
		{"garbage", "# ok\n# ok\n!!!\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tt.in))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want a *config.Error", err, err)
			}
			if ce.Line != tt.line || ce.File != "f.toml" || ce.Msg == "" {
				t.Errorf("got %+v, want line %d of f.toml with a message", ce, tt.line)
			}
		})
	}
}

func TestParseTypeMismatch(t *testing.T) {
	tests := []struct {
		in, line, key string
	}{
		{"[hal.simulated]\n\ncamera_fps = \"thirty\"\n", "line 3", "hal.simulated.camera_fps"},
		{"[api]\nlisten = \"127.0.0.1:80\"\n", "line 2", "api.listen"},
		{"[room]\nname = 7\n", "line 2", "room.name"},
	}
	for _, tt := range tests {
		_, err := Parse("room.toml", []byte(tt.in))
		if err == nil {
			t.Errorf("Parse(%q) accepted a type mismatch", tt.in)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"room.toml", tt.line, tt.key} {
			if !strings.Contains(msg, want) {
				t.Errorf("Parse(%q) error %q does not name %q", tt.in, msg, want)
			}
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f.toml", Line: 3, Key: "room.name", Msg: "must not be empty"}, "f.toml:3: room.name: must not be empty"},
		{Error{File: "f.toml", Key: "api.token_file", Msg: "required"}, "f.toml: api.token_file: required"},
		{Error{File: "f.toml", Line: 2, Msg: "bad syntax"}, "f.toml:2: bad syntax"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	tests := []struct {
		addr    string
		want    bool
		wantErr bool
	}{
		{"127.0.0.1:8480", true, false},
		{"127.1.2.3:80", true, false},
		{"[::1]:8480", true, false},
		{"localhost:8480", true, false},
		{"0.0.0.0:8480", false, false},
		{"[::]:8480", false, false},
		{":8480", false, false},
		{"192.0.2.10:8480", false, false},
		{"[2001:db8::1]:80", false, false},
		{"room.example.com:8480", false, true},
		{"localhost.example.com:80", false, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"127.0.0.1:", false, true},
		{"", false, true},
	}
	for _, tt := range tests {
		got, err := IsLoopbackAddr(tt.addr)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("IsLoopbackAddr(%q) = %v, %v; want %v, error %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLoopbackURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8480": "http://127.0.0.1:8480/",
		"[::1]:80":       "http://[::1]:80/",
		"localhost:1":    "http://localhost:1/",
	} {
		if got := LoopbackURL(addr); got != want {
			t.Errorf("LoopbackURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.toml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load of a missing file: %v, want it to wrap fs.ErrNotExist", err)
		}
	})
	t.Run("good", func(t *testing.T) {
		path := filepath.Join(dir, "good.toml")
		if err := os.WriteFile(path, []byte("[room]\nname = \"Lab\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Room.Name != "Lab" {
			t.Errorf("room.name = %q, want Lab", cfg.Room.Name)
		}
	})
	t.Run("bad names the file", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(path, []byte("[room]\nname = \"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		ps := problems(t, err)
		if len(ps) != 1 || ps[0].File != path || ps[0].Line != 2 {
			t.Errorf("Load(%s) = %v, want one problem at %s:2", path, err, path)
		}
	})
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("250ms")); err != nil || d.Duration != 250*time.Millisecond {
		t.Errorf("UnmarshalText(250ms) = %v, %v", d.Duration, err)
	}
	if err := d.UnmarshalText([]byte("250")); err == nil {
		t.Error("UnmarshalText accepted a number without a unit")
	}
	b, err := Duration{1500 * time.Millisecond}.MarshalText()
	if err != nil || string(b) != "1.5s" {
		t.Errorf("MarshalText = %q, %v; want 1.5s", b, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML())
	f.Add([]byte(""))
	f.Add([]byte("[api]\nlisten = []\nsocket = \"\"\n"))
	f.Add([]byte("[hal.simulated]\ncamera_fps = \"thirty\"\n"))
	f.Add([]byte("hal.simulated.beep_interval = \"1ms\"\n[x]\ny = 1\n"))
	f.Add([]byte("[api]\nlisten = [\"0.0.0.0:1\", \"[::1]:2\", \"h:3\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned both a config and %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither config nor error")
		}
		if errs := cfg.validate(); len(errs) != 0 {
			t.Fatalf("Parse accepted a config that does not validate: %v", errs)
		}
	})
}

func TestMeetingValidation(t *testing.T) {
	cases := []struct {
		in, key, want string
	}{
		{"[meeting]\nsetup_timeout = \"10ms\"\n", "meeting.setup_timeout", "from 1s"},
		{"[meeting]\nmax_fps = 0\n", "meeting.max_fps", "from 1 to 60"},
		{"[meeting]\nmax_width = 1281\n", "meeting.max_width", "even"},
		{"[meeting]\nmax_video_bitrate = 10\n", "meeting.max_video_bitrate", "from 100000"},
		{"[meeting]\naudio_bitrate = 1\n", "meeting.audio_bitrate", "Opus"},
		{"[meeting]\nrelay_only = true\n", "meeting.relay_only", "TURN server"},
		{"[[meeting.ice_servers]]\nurls = []\n", "meeting.ice_servers[0].urls", "at least one"},
		{"[[meeting.ice_servers]]\nurls = [\"http://x\"]\n", "meeting.ice_servers[0].urls", "scheme"},
		{"[[meeting.ice_servers]]\nurls = [\"turn:t.example:3478\"]\n", "meeting.ice_servers[0]", "username and credential_file"},
		{"[[meeting.ice_servers]]\nurls = [\"turn:t.example:3478\"]\nusername = \"u\"\ncredential_file = \"rel\"\n", "meeting.ice_servers[0].credential_file", "absolute"},
		{"[meeting.janus.domains.\"m.example\"]\napi = \"ftp://m.example/j\"\n", "meeting.janus.domains.m.example.api", "scheme"},
		{"[meeting.janus.domains.\"m.example\"]\napi = \"janus\"\n", "meeting.janus.domains.m.example.api", "absolute URL"},
	}
	for _, c := range cases {
		_, err := Parse("f.toml", []byte(c.in))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.want) {
			t.Errorf("%q: %v; want key %s with %q", c.in, err, c.key, c.want)
		}
	}
	// A STUN-only server needs no credentials.
	if _, err := Parse("f.toml", []byte("[[meeting.ice_servers]]\nurls = [\"stun:stun.example.com:3478\"]\n")); err != nil {
		t.Errorf("STUN server: %v", err)
	}
}

func TestFleetValidation(t *testing.T) {
	cases := []struct {
		in, key, want string
	}{
		{"[fleet]\nserver = \"http://fleet.example\"\n", "fleet.server", "https URL"},
		{"[fleet]\nserver = \"https://\"\n", "fleet.server", "https URL"},
		{"[fleet]\nserver = \"https://f.example/api?x=1\"\n", "fleet.server", "nothing after it"},
		{"[fleet]\nactivation_code = \"ABCD\"\n", "fleet.server", "is needed"},
		{"[fleet]\nserver = \"https://f.example\"\nca_sha256 = \"abc\"\n", "fleet.ca_sha256", "64 hex digits"},
		{"[fleet]\nserver = \"https://f.example\"\nca_file = \"/ca.pem\"\nca_sha256 = \"" + strings.Repeat("a", 64) + "\"\n", "fleet.ca_sha256", "not both"},
		{"[fleet]\nserver = \"https://f.example\"\nca_file = \"ca.pem\"\n", "fleet.ca_file", "absolute"},
		{"[fleet]\nidentity = \"cloud\"\n", "fleet.identity", "auto, tpm or file"},
		{"[fleet]\ntpm = \"\"\n", "fleet.tpm", "absolute"},
	}
	for _, c := range cases {
		_, err := Parse("f.toml", []byte(c.in))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.want) {
			t.Errorf("%q: %v; want key %s with %q", c.in, err, c.key, c.want)
		}
	}
	h, err := NormaliseFingerprint("SHA256:" + strings.Repeat("AB:", 31) + "AB")
	if err != nil || h != strings.Repeat("ab", 32) {
		t.Fatalf("NormaliseFingerprint: %q %v", h, err)
	}
}

func TestUpdateSection(t *testing.T) {
	cfg, err := Parse("f.toml", nil)
	if err != nil || cfg.Update.Enabled {
		t.Fatalf("no [update]: enabled %v, %v", cfg.Update.Enabled, err)
	}
	in := "[update]\nboot = \"file\"\nslot_a = \"./a.img\"\nslot_b = \"./b.img\"\ntrusted_root = \"./root.json\"\nhealth_deadline = \"30s\"\nrequire_kiosk = false\nhardware = \"qemu-x86-64\"\n"
	cfg, err = Parse("f.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Default().Update
	want.Enabled, want.Boot, want.SlotA, want.SlotB, want.TrustedRoot = true, "file", "./a.img", "./b.img", "./root.json"
	want.HealthDeadline, want.RequireKiosk, want.Hardware = Duration{30 * time.Second}, false, "qemu-x86-64"
	if cfg.Update != want {
		t.Fatalf("got  %+v\nwant %+v", cfg.Update, want)
	}
	// An empty section turns updates on with the defaults.
	if cfg, err = Parse("f.toml", []byte("[update]\n")); err != nil || !cfg.Update.Enabled || cfg.Update.Tries != 3 {
		t.Fatalf("empty [update]: %+v, %v", cfg.Update, err)
	}
	cases := []struct {
		in, key, want string
	}{
		{"[update]\nboot = \"uboot\"\n", "update.boot", "systemd-boot, grub or file"},
		{"[update]\ntries = 0\n", "update.tries", "from 1 to 9"},
		{"[update]\ntries = 10\n", "update.tries", "from 1 to 9"},
		{"[update]\nhealth_deadline = \"500ms\"\n", "update.health_deadline", "from 1s to 1h"},
		{"[update]\nhealth_deadline = \"2h\"\n", "update.health_deadline", "from 1s to 1h"},
		{"[update]\ntrusted_root = \"\"\n", "update.trusted_root", "must be set"},
		{"[update]\ntrusted_root = \"root.json\"\n", "update.trusted_root", "absolute"},
		{"[update]\nslot_b = \"/dev/disk/by-partlabel/root-a\"\n", "update.slot_b", "same as slot_a"},
		{"[update]\nhardware = \"two words\"\n", "update.hardware", "without spaces"},
		{"[update]\nboot = \"grub\"\ngrubenv = \"\"\n", "update.grubenv", "must be set"},
		{"[update]\nboot = \"file\"\nboot_file = \"boot.json\"\n", "update.boot_file", "absolute"},
		{"[update]\nslots = 2\n", "update.slots", "unknown key"},
	}
	for _, c := range cases {
		_, err := Parse("f.toml", []byte(c.in))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.want) || ce.Line < 1 {
			t.Errorf("%q: %v; want key %s with %q and a line", c.in, err, c.key, c.want)
		}
	}
}

func TestValidateBuiltConfig(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Default: %v", err)
	}
	cfg.Room.Name = ""
	cfg.Calendar.URL = "ftp://x"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "room.name: must not be empty") || !strings.Contains(err.Error(), `calendar.url: must be an https, http or webcal URL; got "ftp://x"`) {
		t.Fatalf("Validate: %v", err)
	}
}
