// Package settings is the layer of roomd's configuration that an
// administrator edits on the spot (the kiosk's admin screen, roomctl), and
// the fleet's layer over it (the profile the fleet console sets).
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
//
// The fleet's profile is a second document, fleet.json, laid over the
// local one section by section (SetFleet replaces it whole). A section the
// fleet manages cannot be changed locally (Put names it), and the local
// value stays underneath: when the fleet stops managing a section the
// room's own value applies again. Version counts the changes of both.
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
	// Timezone overrides the calendar section's time zone; only the
	// fleet's layer sets it (its profile's timezone key).
	Timezone *string `json:"timezone,omitempty"`
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
	path, fleetPath, secrets string
	base                     *config.Config
	log                      *slog.Logger

	mu    sync.Mutex
	doc   Document // the local layer, settings.json
	fleet Document // the fleet's layer, fleet.json; Version counts its changes
	eff   Effective
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
		path: filepath.Join(stateDir, "settings.json"), fleetPath: filepath.Join(stateDir, "fleet.json"),
		secrets: filepath.Join(stateDir, "secrets"),
		base:    base, log: log, doc: Document{Schema: Schema}, fleet: Document{Schema: Schema},
	}
	for _, layer := range []struct {
		path string
		doc  *Document
	}{{s.path, &s.doc}, {s.fleetPath, &s.fleet}} {
		doc, err := readDocument(layer.path)
		if err == nil && doc != nil {
			*layer.doc = *doc
			_, err = s.apply(merge(s.doc, s.fleet))
		}
		if err != nil {
			aside := layer.path + ".damaged"
			if rerr := os.Rename(layer.path, aside); rerr != nil {
				return nil, fmt.Errorf("move damaged settings aside: %w", rerr)
			}
			log.Error("settings damaged: moved aside", "file", aside, "err", err)
			*layer.doc = Document{Schema: Schema}
		}
	}
	if s.eff, err = s.apply(merge(s.doc, s.fleet)); err != nil {
		// roomd.toml alone was validated when it was loaded.
		return nil, fmt.Errorf("settings over roomd.toml: %w", err)
	}
	return s, nil
}

// readDocument reads one layer; a missing file is nil, no error.
func readDocument(path string) (*Document, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	var doc Document
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Schema != Schema {
		return nil, fmt.Errorf("schema %d is not %d", doc.Schema, Schema)
	}
	return &doc, nil
}

// merge lays the fleet's layer over the local one, section by section.
func merge(local, fleet Document) Document {
	out := local
	out.Version = local.Version + fleet.Version
	if fleet.RoomName != nil {
		out.RoomName = fleet.RoomName
	}
	if fleet.Calendar != nil {
		out.Calendar = fleet.Calendar
	}
	if fleet.ICEServers != nil {
		out.ICEServers = fleet.ICEServers
	}
	if fleet.Devices != nil {
		out.Devices = fleet.Devices
	}
	if fleet.Display != nil {
		out.Display = fleet.Display
	}
	out.Timezone = fleet.Timezone
	return out
}

// managed lists the wire sections the fleet's layer holds.
func managed(fleet Document) []string {
	var out []string
	for _, m := range []struct {
		on   bool
		name string
	}{
		{fleet.RoomName != nil, "roomName"}, {fleet.Calendar != nil, "calendar"},
		{fleet.Timezone != nil, "calendar.timezone"}, {fleet.ICEServers != nil, "iceServers"},
		{fleet.Devices != nil, "devices"}, {fleet.Display != nil, "display"},
	} {
		if m.on {
			out = append(out, m.name)
		}
	}
	return out
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
	return s.wire()
}

func (s *Store) wire() apiv1.Settings {
	out := wire(s.eff)
	out.Managed = managed(s.fleet)
	return out
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
// disk, then the new Effective. Sections the fleet manages must come back
// as they are (the fleet console changes them). Errors: *ConflictError,
// *ValidationError, or an I/O error; on any of them nothing changed.
func (s *Store) Put(in apiv1.Settings) (apiv1.Settings, Effective, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.Version != s.eff.Version {
		return apiv1.Settings{}, Effective{}, &ConflictError{Sent: in.Version, Current: s.eff.Version}
	}
	v := &validator{}
	s.checkManaged(v, in)
	doc, newSecrets := s.build(v, in, "")
	if len(v.errs) > 0 {
		return apiv1.Settings{}, Effective{}, &ValidationError{Fields: v.errs}
	}
	// The fleet's sections stay the local layer's own underneath, for the
	// day the fleet stops managing them.
	if s.fleet.RoomName != nil {
		doc.RoomName = s.doc.RoomName
	}
	if s.fleet.Calendar != nil {
		doc.Calendar = s.doc.Calendar
	}
	if s.fleet.ICEServers != nil {
		doc.ICEServers = s.doc.ICEServers
	}
	if s.fleet.Devices != nil {
		doc.Devices = s.doc.Devices
	}
	if s.fleet.Display != nil {
		doc.Display = s.doc.Display
	}
	if s.fleet.Timezone != nil && doc.Calendar != nil && s.doc.Calendar != nil {
		doc.Calendar.Timezone = s.doc.Calendar.Timezone
	}
	doc.Version = s.doc.Version + 1
	return s.commit(s.path, doc, s.fleet, newSecrets, &s.doc)
}

// checkManaged refuses a change to a section the fleet manages.
func (s *Store) checkManaged(v *validator, in apiv1.Settings) {
	cur := wire(s.eff)
	same := func(a, b any) bool {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return string(ja) == string(jb)
	}
	const msg = "is managed by the fleet; change it in the fleet console"
	if s.fleet.RoomName != nil && strings.TrimSpace(in.RoomName) != cur.RoomName {
		v.bad("roomName", msg)
	}
	if s.fleet.Calendar != nil {
		c := in.Calendar
		c.Timezone = cur.Calendar.Timezone
		c.HasPassword, c.HasToken = cur.Calendar.HasPassword, cur.Calendar.HasToken
		setsSecret := func(v *string, has bool) bool { return v != nil && (*v != "" || has) }
		if setsSecret(c.Password, cur.Calendar.HasPassword) || setsSecret(c.Token, cur.Calendar.HasToken) {
			v.bad("calendar", msg)
		} else if c.Password, c.Token = nil, nil; !same(c, cur.Calendar) {
			v.bad("calendar", msg)
		}
	}
	if s.fleet.Timezone != nil && in.Calendar.Timezone != cur.Calendar.Timezone {
		v.bad("calendar.timezone", msg)
	}
	if s.fleet.ICEServers != nil {
		changed := len(in.ICEServers) != len(cur.ICEServers)
		for i := 0; !changed && i < len(in.ICEServers); i++ {
			a := in.ICEServers[i]
			has := cur.ICEServers[i].HasCredential
			if a.Credential != nil && (*a.Credential != "" || has) {
				changed = true
				break
			}
			a.Credential, a.HasCredential = nil, has
			changed = !same(a, cur.ICEServers[i])
		}
		if changed {
			v.bad("iceServers", msg)
		}
	}
	if s.fleet.Devices != nil && in.Devices != cur.Devices {
		v.bad("devices", msg)
	}
	if s.fleet.Display != nil {
		d := in.Display
		if d.Days == nil {
			d.Days = []string{}
		}
		if !same(d, cur.Display) {
			v.bad("display", msg)
		}
	}
}

// FleetLayer is what the fleet's profile sets: each non-nil section is
// managed by the fleet and laid over the local settings; a nil one is the
// room's own. Secrets come in full (a profile always carries them).
type FleetLayer struct {
	RoomName   *string
	Timezone   *string
	Calendar   *apiv1.CalendarSettings
	ICEServers *[]apiv1.ICEServerConfig
	Devices    *apiv1.DeviceChoice
	Display    *apiv1.DisplaySchedule
}

// SetFleet replaces the fleet's layer as a whole: validated like Put
// (errors name the field), written to fleet.json, laid over the local
// settings. A section the new layer leaves out goes back to the room's
// own value. On an error nothing changed.
func (s *Store) SetFleet(layer FleetLayer) (apiv1.Settings, Effective, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fleet, secrets, err := s.prepareFleet(layer)
	if err != nil {
		return apiv1.Settings{}, Effective{}, err
	}
	return s.commit(s.fleetPath, fleet, s.doc, secrets, &s.fleet)
}

// CheckFleet says what SetFleet would say of layer, changing nothing: the
// fleet checks a profile whole before it touches the OS for it.
func (s *Store) CheckFleet(layer FleetLayer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fleet, secrets, err := s.prepareFleet(layer)
	if err != nil {
		return err
	}
	if _, err := s.applyWith(merge(s.doc, fleet), secrets); err != nil {
		return &ValidationError{Fields: []FieldError{{Field: "", Msg: err.Error()}}}
	}
	return nil
}

// prepareFleet validates a fleet layer into its document and the secret
// files it would write.
func (s *Store) prepareFleet(layer FleetLayer) (Document, []pendingSecret, error) {
	// Validate the sections as a whole settings change would be: the
	// current settings with the fleet's sections in place.
	in := wire(s.eff)
	if layer.RoomName != nil {
		in.RoomName = *layer.RoomName
	}
	if layer.Calendar != nil {
		in.Calendar = *layer.Calendar
	}
	if layer.Timezone != nil {
		in.Calendar.Timezone = *layer.Timezone
	}
	if layer.ICEServers != nil {
		in.ICEServers = *layer.ICEServers
	}
	if layer.Devices != nil {
		in.Devices = *layer.Devices
	}
	if layer.Display != nil {
		in.Display = *layer.Display
	}
	v := &validator{}
	built, newSecrets := s.build(v, in, "fleet-")
	if len(v.errs) > 0 {
		return Document{}, nil, &ValidationError{Fields: v.errs}
	}
	fleet := Document{Schema: Schema, Version: s.fleet.Version + 1}
	if layer.RoomName != nil {
		fleet.RoomName = built.RoomName
	}
	if layer.Calendar != nil {
		fleet.Calendar = built.Calendar
	}
	if layer.Timezone != nil {
		tz := *layer.Timezone
		fleet.Timezone = &tz
	}
	if layer.ICEServers != nil {
		fleet.ICEServers = built.ICEServers
	}
	if layer.Devices != nil {
		fleet.Devices = built.Devices
	}
	if layer.Display != nil {
		fleet.Display = built.Display
	}
	// Secrets written for sections the layer does not hold are not kept.
	var kept []pendingSecret
	for _, p := range newSecrets {
		if namedBy(fleet, p.path) {
			kept = append(kept, p)
		}
	}
	return fleet, kept, nil
}

// commit checks the merged result of a new layer, writes its secrets and
// its file, and makes it current. other is the layer that stays.
func (s *Store) commit(path string, layer, other Document, newSecrets []pendingSecret, slot *Document) (apiv1.Settings, Effective, error) {
	local, fleet := layer, other
	if path == s.fleetPath {
		local, fleet = other, layer
	}
	// The secrets are not written yet, so the whole check runs with
	// stand-ins for the new files.
	eff, err := s.applyWith(merge(local, fleet), newSecrets)
	if err != nil {
		return apiv1.Settings{}, Effective{}, &ValidationError{Fields: []FieldError{{Field: "", Msg: err.Error()}}}
	}
	for _, p := range newSecrets {
		if err := atomicfile.Write(p.path, []byte(p.value+"\n"), 0o600); err != nil {
			removeSecrets(newSecrets)
			return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: secret: %w", err)
		}
	}
	data, err := json.MarshalIndent(layer, "", "  ")
	if err != nil {
		removeSecrets(newSecrets)
		return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		removeSecrets(newSecrets)
		return apiv1.Settings{}, Effective{}, fmt.Errorf("save settings: %w", err)
	}
	*slot, s.eff = layer, eff
	s.collectSecrets()
	s.log.Info("settings changed", "file", filepath.Base(path), "version", eff.Version, "managed", managed(s.fleet))
	return s.wire(), eff, nil
}

// build validates a whole settings change into a document, with new
// secrets to write (named with prefix). Problems go to v.
func (s *Store) build(v *validator, in apiv1.Settings, prefix string) (Document, []pendingSecret) {
	cur := s.eff.Config
	doc := Document{Schema: Schema}
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
			p := pendingSecret{path: filepath.Join(s.secrets, prefix+kind+"-"+randomSuffix()), value: *val}
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
	return doc, newSecrets
}

// namedBy says whether a layer names the secret file.
func namedBy(doc Document, path string) bool {
	if c := doc.Calendar; c != nil && (c.PasswordFile == path || c.TokenFile == path) {
		return true
	}
	if doc.ICEServers != nil {
		for _, srv := range *doc.ICEServers {
			if srv.CredentialFile == path {
				return true
			}
		}
	}
	return false
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
	entries, err := os.ReadDir(s.secrets)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(s.secrets, e.Name())
		// A local secret under a section the fleet manages stays: it is
		// the room's own again when the fleet lets go.
		if !namedBy(s.doc, p) && !namedBy(s.fleet, p) {
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
	if doc.Timezone != nil {
		c.Calendar.Timezone = *doc.Timezone
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
