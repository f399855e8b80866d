// Package settings is the layer of roomd's configuration that an
// administrator edits on the spot (the kiosk's admin screen, roomctl) and
// that the fleet's profiles will write later (issue 6).
//
// It is one versioned JSON document, settings.json in the state directory
// (mode 0600, replaced atomically), laid over roomd.toml: a section it does
// not hold is roomd.toml's. Secrets (the calendar's password or token, TURN
// credentials) are not in it: each is a file of mode 0600 under secrets/
// in the state directory, and the document names the file, as roomd.toml
// does for its own secrets. The wire form never carries a secret back.
//
// Every change is validated whole before anything is written; errors name
// the field as the wire form spells it (iceServers[1].urls[0]). A change
// bumps Version; one made against an older version is refused, so two
// administrators cannot overwrite each other unknowingly. A document that
// cannot be read at start is moved aside and logged, and roomd.toml alone
// applies.
package settings

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/display"
	"github.com/atriumroom/atrium/internal/atomicfile"
)

// Schema is the version of the document's format.
const Schema = 1

// Errors.
var (
	// ErrConflict is a change made against an older version; *ConflictError
	// carries the current one.
	ErrConflict = errors.New("the settings changed since they were read")
	// ErrInvalid is a change with invalid fields; *ValidationError lists them.
	ErrInvalid = errors.New("invalid settings")
)

// ConflictError is ErrConflict with the versions.
type ConflictError struct{ Sent, Current int }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v: version %d was sent, the current version is %d; read them again", ErrConflict, e.Sent, e.Current)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// FieldError is one invalid field.
type FieldError struct {
	Field string // as the wire form spells it: "calendar.url", "iceServers[1].urls[0]"
	Msg   string
}

// ValidationError lists every invalid field of a change.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Msg
	}
	return strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Document is settings.json. A nil section is roomd.toml's.
type Document struct {
	Schema     int                    `json:"schema"`
	Version    int                    `json:"version"`
	RoomName   *string                `json:"roomName,omitempty"`
	Calendar   *Calendar              `json:"calendar,omitempty"`
	ICEServers *[]ICEServer           `json:"iceServers,omitempty"`
	Devices    *Devices               `json:"devices,omitempty"`
	Display    *apiv1.DisplaySchedule `json:"display,omitempty"`
}

// Calendar is the calendar section; secrets are files.
type Calendar struct {
	URL          string `json:"url"`
	CalDAV       bool   `json:"caldav"`
	Username     string `json:"username"`
	PasswordFile string `json:"passwordFile,omitempty"`
	TokenFile    string `json:"tokenFile,omitempty"`
	File         string `json:"file"`
	Refresh      string `json:"refresh"`
	Timezone     string `json:"timezone"`
	AutoJoin     bool   `json:"autoJoin"`
}

// ICEServer is one STUN or TURN server; the credential is a file.
type ICEServer struct {
	URLs           []string `json:"urls"`
	Username       string   `json:"username"`
	CredentialFile string   `json:"credentialFile,omitempty"`
}

// Devices pins the meeting's devices.
type Devices struct {
	Camera     string `json:"camera"`
	Microphone string `json:"microphone"`
	Speaker    string `json:"speaker"`
}

// Effective is what applies: roomd.toml with the document laid over it.
type Effective struct {
	Version  int
	Config   *config.Config
	Display  display.Schedule
	Location *time.Location // the room's time zone
}

// DefaultDisplay is the schedule before anyone set one: sleep off, with
// office hours ready to switch on.
var DefaultDisplay = apiv1.DisplaySchedule{
	Sleep: false, Days: []string{"mon", "tue", "wed", "thu", "fri"}, AwakeFrom: "07:00", AwakeUntil: "19:00",
}

// Store holds the document.
type Store struct {
	path, secrets string
	base          *config.Config
	log           *slog.Logger

	mu  sync.Mutex
	doc Document
	eff Effective
}

// Open reads stateDir/settings.json and lays it over base, which it does
// not modify. A document that does not parse or no longer applies (a
// secret file gone, roomd.toml changed under it) is moved aside and logged.
func Open(stateDir string, base *config.Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Secret files are named by absolute path, as roomd.toml requires.
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("settings: state directory: %w", err)
	}
	s := &Store{
		path: filepath.Join(stateDir, "settings.json"), secrets: filepath.Join(stateDir, "secrets"),
		base: base, log: log, doc: Document{Schema: Schema},
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read settings: %w", err)
	default:
		var doc Document
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		err := dec.Decode(&doc)
		if err == nil && doc.Schema != Schema {
			err = fmt.Errorf("schema %d is not %d", doc.Schema, Schema)
		}
		var eff Effective
		if err == nil {
			eff, err = s.apply(doc)
		}
		if err != nil {
			aside := s.path + ".damaged"
			if rerr := os.Rename(s.path, aside); rerr != nil {
				return nil, fmt.Errorf("move damaged settings aside: %w", rerr)
			}
			log.Error("settings damaged: moved aside; roomd.toml alone applies", "file", aside, "err", err)
			break
		}
		s.doc = doc
		s.eff = eff
		return s, nil
	}
	if s.eff, err = s.apply(s.doc); err != nil {
		// roomd.toml alone was validated when it was loaded.
		return nil, fmt.Errorf("settings over roomd.toml: %w", err)
	}
	return s, nil
}

// Effective returns what applies now.
func (s *Store) Effective() Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eff
}

// Get returns the settings' wire form, without secrets.
func (s *Store) Get() apiv1.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return wire(s.eff)
}

func wire(eff Effective) apiv1.Settings {
	c := eff.Config
	out := apiv1.Settings{
		Version:  eff.Version,
		RoomName: c.Room.Name,
		Calendar: apiv1.CalendarSettings{
			URL: c.Calendar.URL, CalDAV: c.Calendar.CalDAV, Username: c.Calendar.Username,
			HasPassword: c.Calendar.PasswordFile != "", HasToken: c.Calendar.TokenFile != "",
			File: c.Calendar.File, Refresh: c.Calendar.Refresh.String(), Timezone: c.Calendar.Timezone,
			AutoJoin: c.Calendar.AutoJoin,
		},
		ICEServers: []apiv1.ICEServerConfig{},
		Devices:    apiv1.DeviceChoice{Camera: c.HAL.Camera, Microphone: c.HAL.Microphone, Speaker: c.HAL.Speaker},
		Display:    eff.Display.Wire(),
	}
	for _, srv := range c.Meeting.ICEServers {
		out.ICEServers = append(out.ICEServers, apiv1.ICEServerConfig{
			URLs: append([]string{}, srv.URLs...), Username: srv.Username, HasCredential: srv.CredentialFile != "",
		})
	}
	return out
}

// Put validates in and, if it is valid and made against the current
// version, makes it the settings: secrets to their files, the document to
// disk, then the new Effective. Errors: *ConflictError, *ValidationError,
// or an I/O error; on any of them nothing changed.
func (s *Store) Put(in apiv1.Settings) (apiv1.Settings, Effective, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.Version != s.doc.Version {
		return apiv1.Settings{}, Effective{}, &ConflictError{Sent: in.Version, Current: s.doc.Version}
	}
	cur := s.eff.Config
	v := &validator{}
	doc := Document{Schema: Schema, Version: s.doc.Version + 1}
	var newSecrets []pendingSecret

	// Room name.
	name := strings.TrimSpace(in.RoomName)
	switch {
	case name == "":
		v.bad("roomName", "must not be empty")
	case len(name) > 64:
		v.bad("roomName", "is %d bytes long; at most 64", len(name))
	case strings.ContainsFunc(name, unicode.IsControl):
		v.bad("roomName", "must not contain control characters")
	}
	doc.RoomName = &name

	// Calendar.
	ic := in.Calendar
	cal := Calendar{
		URL: strings.TrimSpace(ic.URL), CalDAV: ic.CalDAV, Username: ic.Username, File: strings.TrimSpace(ic.File),
		Refresh: ic.Refresh, Timezone: ic.Timezone, AutoJoin: ic.AutoJoin,
		PasswordFile: cur.Calendar.PasswordFile, TokenFile: cur.Calendar.TokenFile,
	}
	secret := func(field string, val *string, file *string, kind string) {
		switch {
		case val == nil: // kept
		case *val == "":
			*file = ""
		default:
			if strings.TrimSpace(*val) != *val || strings.ContainsFunc(*val, unicode.IsControl) {
				v.bad(field, "must not start or end with spaces or contain control characters")
				return
			}
			p := pendingSecret{path: filepath.Join(s.secrets, kind+"-"+randomSuffix()), value: *val}
			newSecrets = append(newSecrets, p)
			*file = p.path
		}
	}
	secret("calendar.password", ic.Password, &cal.PasswordFile, "calendar-password")
	secret("calendar.token", ic.Token, &cal.TokenFile, "calendar-token")
	v.calendar(cal)
	doc.Calendar = &cal

	// ICE servers.
	servers := []ICEServer{}
	for i, is := range in.ICEServers {
		field := fmt.Sprintf("iceServers[%d]", i)
		srv := ICEServer{URLs: append([]string{}, is.URLs...), Username: is.Username}
		// A server sent without its credential keeps the one it had: the
		// configured server with the same URLs.
		for _, old := range cur.Meeting.ICEServers {
			if slices.Equal(old.URLs, is.URLs) {
				srv.CredentialFile = old.CredentialFile
				break
			}
		}
		secret(field+".credential", is.Credential, &srv.CredentialFile, fmt.Sprintf("ice-%d-credential", i))
		v.iceServer(field, srv)
		servers = append(servers, srv)
	}
	doc.ICEServers = &servers

	// Devices.
	devs := Devices{Camera: in.Devices.Camera, Microphone: in.Devices.Microphone, Speaker: in.Devices.Speaker}
	for _, d := range []struct{ field, id string }{{"devices.camera", devs.Camera}, {"devices.microphone", devs.Microphone}, {"devices.speaker", devs.Speaker}} {
		if len(d.id) > 256 || strings.ContainsFunc(d.id, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
			v.bad(d.field, "must be a device ID as GET /devices lists it (printable, no spaces, at most 256 bytes); got %q", d.id)
		}
	}
	doc.Devices = &devs

	// Display.
	disp := in.Display
	if disp.Days == nil {
		disp.Days = []string{}
	}
	if _, err := display.ParseSchedule(disp); err != nil {
		for _, e := range flatten(err) {
			var fe *display.FieldError
			if errors.As(e, &fe) {
				v.bad("display."+fe.Field, "%s", fe.Msg)
			} else {
				v.bad("display", "%v", e)
			}
		}
	}
	doc.Display = &disp

	if len(v.errs) > 0 {
		return apiv1.Settings{}, Effective{}, &ValidationError{Fields: v.errs}
	}
	// The secrets are not written yet, so the whole check runs with
	// stand-ins for the new files.
	eff, err := s.applyWith(doc, newSecrets)
	if err != nil {
		return apiv1.Settings{}, Effective{}, &ValidationError{Fields: []FieldError{{Field: "", Msg: err.Error()}}}
	}
	for _, p := range newSecrets {
		if err := atomicfile.Write(p.path, []byte(p.value+"\n"), 0o600); err != nil {
			removeSecrets(newSecrets)
			return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: secret: %w", err)
		}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		removeSecrets(newSecrets)
		return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: %w", err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		removeSecrets(newSecrets)
		return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: %w", err)
	}
	s.doc, s.eff = doc, eff
	s.collectSecrets()
	s.log.Info("settings changed", "version", doc.Version)
	return wire(eff), eff, nil
}

type pendingSecret struct{ path, value string }

func removeSecrets(ps []pendingSecret) {
	for _, p := range ps {
		_ = os.Remove(p.path)
	}
}

// collectSecrets removes secret files no setting names any more, so a
// cleared or replaced password does not linger on disk.
func (s *Store) collectSecrets() {
	used := map[string]bool{s.eff.Config.Calendar.PasswordFile: true, s.eff.Config.Calendar.TokenFile: true}
	for _, srv := range s.eff.Config.Meeting.ICEServers {
		used[srv.CredentialFile] = true
	}
	entries, err := os.ReadDir(s.secrets)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(s.secrets, e.Name())
		if !used[p] {
			if err := os.Remove(p); err != nil {
				s.log.Warn("remove an unused secret", "file", p, "err", err)
			}
		}
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (s *Store) apply(doc Document) (Effective, error) { return s.applyWith(doc, nil) }

// applyWith lays doc over the base configuration and checks the result as
// roomd.toml is checked, plus that every secret file it names is there
// (or is one of pending, about to be written).
func (s *Store) applyWith(doc Document, pending []pendingSecret) (Effective, error) {
	c := *s.base
	c.Meeting.ICEServers = append([]config.ICEServer(nil), s.base.Meeting.ICEServers...)
	if doc.RoomName != nil {
		c.Room.Name = *doc.RoomName
	}
	if cal := doc.Calendar; cal != nil {
		refresh, err := time.ParseDuration(cal.Refresh)
		if err != nil {
			return Effective{}, fmt.Errorf("calendar.refresh: %q is not a duration", cal.Refresh)
		}
		c.Calendar = config.Calendar{
			URL: cal.URL, CalDAV: cal.CalDAV, Username: cal.Username, PasswordFile: cal.PasswordFile,
			TokenFile: cal.TokenFile, File: cal.File, Refresh: config.Duration{Duration: refresh},
			Timezone: cal.Timezone, AutoJoin: cal.AutoJoin,
		}
	}
	if doc.ICEServers != nil {
		c.Meeting.ICEServers = nil
		for _, srv := range *doc.ICEServers {
			c.Meeting.ICEServers = append(c.Meeting.ICEServers, config.ICEServer{
				URLs: append([]string(nil), srv.URLs...), Username: srv.Username, CredentialFile: srv.CredentialFile,
			})
		}
	}
	if d := doc.Devices; d != nil {
		c.HAL.Camera, c.HAL.Microphone, c.HAL.Speaker = d.Camera, d.Microphone, d.Speaker
	}
	dispWire := DefaultDisplay
	if doc.Display != nil {
		dispWire = *doc.Display
	}
	sched, err := display.ParseSchedule(dispWire)
	if err != nil {
		return Effective{}, fmt.Errorf("display: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Effective{}, err
	}
	isPending := map[string]bool{}
	for _, p := range pending {
		isPending[p.path] = true
	}
	files := []string{c.Calendar.PasswordFile, c.Calendar.TokenFile}
	for _, srv := range c.Meeting.ICEServers {
		files = append(files, srv.CredentialFile)
	}
	for _, f := range files {
		if f == "" || isPending[f] {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return Effective{}, fmt.Errorf("secret file: %w", err)
		}
	}
	loc := time.Local
	if c.Calendar.Timezone != "" {
		if loc, err = time.LoadLocation(c.Calendar.Timezone); err != nil {
			return Effective{}, fmt.Errorf("calendar.timezone: %w", err)
		}
	}
	return Effective{Version: doc.Version, Config: &c, Display: sched, Location: loc}, nil
}

type validator struct{ errs []FieldError }

func (v *validator) bad(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) calendar(c Calendar) {
	if c.URL != "" && c.File != "" {
		v.bad("calendar.file", "set either calendar.url or calendar.file, not both")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			v.bad("calendar.url", "%q is not a URL", c.URL)
		case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "webcal" && u.Scheme != "webcals":
			v.bad("calendar.url", "%q: must be an https, http or webcal URL", c.URL)
		case u.Host == "":
			v.bad("calendar.url", "%q has no host", c.URL)
		case u.User != nil:
			v.bad("calendar.url", "put credentials in calendar.username and calendar.password, not in the URL")
		case u.Scheme == "http" && (c.Username != "" || c.TokenFile != ""):
			v.bad("calendar.url", "credentials over plain http to %s would travel in clear text; use https", u.Hostname())
		}
	}
	if c.File != "" && !filepath.IsAbs(c.File) {
		v.bad("calendar.file", "must be an absolute path; got %q", c.File)
	}
	if c.CalDAV && c.URL == "" {
		v.bad("calendar.caldav", "needs calendar.url, the CalDAV collection's URL")
	}
	if c.PasswordFile != "" && c.Username == "" {
		v.bad("calendar.password", "needs calendar.username")
	}
	if c.TokenFile != "" && c.Username != "" {
		v.bad("calendar.token", "use either a bearer token or a username and password, not both")
	}
	if c.TokenFile != "" && c.PasswordFile != "" {
		v.bad("calendar.token", "use either a bearer token or a password, not both")
	}
	if d, err := time.ParseDuration(c.Refresh); err != nil {
		v.bad("calendar.refresh", "%q is not a duration such as \"5m\"", c.Refresh)
	} else if d < time.Second || d > 24*time.Hour {
		v.bad("calendar.refresh", "must be from 1s to 24h; got %s", d)
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			v.bad("calendar.timezone", "%q is not an IANA time zone such as Europe/Berlin", c.Timezone)
		}
	}
}

// iceServer checks one server's URLs (RFC 7064/7065: scheme:host[:port]
// [?transport=udp|tcp]) and that a TURN server has its credentials.
func (v *validator) iceServer(field string, s ICEServer) {
	if len(s.URLs) == 0 {
		v.bad(field+".urls", "must list at least one stun:, stuns:, turn: or turns: URL")
	}
	turn := false
	for j, raw := range s.URLs {
		f := fmt.Sprintf("%s.urls[%d]", field, j)
		scheme, rest, ok := strings.Cut(raw, ":")
		if !ok {
			v.bad(f, "%q is not a stun:, stuns:, turn: or turns: URL", raw)
			continue
		}
		switch scheme {
		case "stun", "stuns":
		case "turn", "turns":
			turn = true
		default:
			v.bad(f, "%q: the scheme must be stun, stuns, turn or turns", raw)
			continue
		}
		hostport, query, hasQuery := strings.Cut(rest, "?")
		if hasQuery {
			if scheme == "stun" || scheme == "stuns" {
				v.bad(f, "%q: a STUN URL takes no query", raw)
			} else if query != "transport=udp" && query != "transport=tcp" {
				v.bad(f, "%q: the only query is transport=udp or transport=tcp", raw)
			}
		}
		if strings.HasPrefix(hostport, "//") {
			v.bad(f, "%q: write %s:host:port, without //", raw, scheme)
			continue
		}
		host, port := hostport, ""
		if h, p, err := net.SplitHostPort(hostport); err == nil {
			host, port = h, p
		} else if strings.Count(hostport, ":") > 1 && !strings.HasPrefix(hostport, "[") {
			v.bad(f, "%q: put an IPv6 address in brackets", raw)
			continue
		}
		host = strings.Trim(host, "[]")
		switch {
		case host == "":
			v.bad(f, "%q has no host", raw)
		case strings.ContainsAny(host, "/@ "):
			v.bad(f, "%q: %q is not a host name", raw, host)
		}
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.bad(f, "%q: the port must be from 1 to 65535", raw)
			}
		}
	}
	if turn {
		if s.Username == "" {
			v.bad(field+".username", "a TURN server needs a username")
		}
		if s.CredentialFile == "" {
			v.bad(field+".credential", "a TURN server needs a credential")
		}
	}
}
