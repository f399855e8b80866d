package osconfig

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// systemd-hostnamed's bus name, object and interface.
const (
	hostnameService = "org.freedesktop.hostname1"
	hostnamePath    = "/org/freedesktop/hostname1"
	hostnameIface   = "org.freedesktop.hostname1"
)

// restoreTimeout bounds putting back the static host name when the pretty
// one is refused: it runs even when the caller's context has ended, since
// leaving half a rename would be worse.
const restoreTimeout = 5 * time.Second

// maxHostname is Linux's HOST_NAME_MAX; hostnamed refuses longer names.
const maxHostname = 64

// Hostname is the system's host names as systemd-hostnamed reports them.
type Hostname struct {
	Static    string // the configured name (/etc/hostname)
	Pretty    string // the free-form name people see (the room name)
	Transient string // the kernel's current name
}

// HostLabel derives a host name from a room name: one RFC 1123 label of
// lowercase a-z, 0-9 and '-', at most 63 bytes, not starting or ending with
// '-'. Letters with accents lose them (é → e, ß → ss, æ → ae); apostrophes
// vanish; every other run of characters that are not letters or digits
// becomes one '-'. "Boardroom 3 (North)" becomes "boardroom-3-north".
// It fails with ErrInvalidRoomName when the room name is not valid (see
// SetRoomName) or has no letter or digit left (a name in another script):
// such a room needs its host name set with SetStaticHostname.
func HostLabel(room string) (string, error) {
	room, err := checkRoomName(room)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(room) {
		if r == '\'' || r == '\u2019' {
			continue
		}
		s := fold(r)
		if s == "" {
			dash = b.Len() > 0
			continue
		}
		if dash {
			b.WriteByte('-')
			dash = false
		}
		b.WriteString(s)
	}
	label := b.String()
	if len(label) > 63 {
		label = strings.TrimRight(label[:63], "-")
	}
	if label == "" {
		return "", fmt.Errorf("%w: %q has no letter or digit usable in a host name", ErrInvalidRoomName, room)
	}
	return label, nil
}

// checkRoomName returns the room name without surrounding white space, or
// ErrInvalidRoomName if it is empty, not UTF-8 or holds control characters
// (hostnamed refuses those in a pretty name).
func checkRoomName(room string) (string, error) {
	room = strings.TrimSpace(room)
	switch {
	case room == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidRoomName)
	case !utf8.ValidString(room):
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidRoomName)
	case strings.IndexFunc(room, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: %q has control characters", ErrInvalidRoomName, room)
	}
	return room, nil
}

// fold returns r as lowercase ASCII letters or digits, or "" when r is
// neither a letter nor a digit that has an ASCII form. It covers the Latin
// letters of European room names; other scripts have none.
func fold(r rune) string {
	if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
		return string(r)
	}
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā', 'ă', 'ą':
		return "a"
	case 'æ':
		return "ae"
	case 'ç', 'ć', 'ĉ', 'ċ', 'č':
		return "c"
	case 'ď', 'đ', 'ð':
		return "d"
	case 'è', 'é', 'ê', 'ë', 'ē', 'ĕ', 'ė', 'ę', 'ě':
		return "e"
	case 'ĝ', 'ğ', 'ġ', 'ģ':
		return "g"
	case 'ĥ', 'ħ':
		return "h"
	case 'ì', 'í', 'î', 'ï', 'ĩ', 'ī', 'ĭ', 'į', 'ı':
		return "i"
	case 'ĵ':
		return "j"
	case 'ķ':
		return "k"
	case 'ĺ', 'ļ', 'ľ', 'ŀ', 'ł':
		return "l"
	case 'ñ', 'ń', 'ņ', 'ň':
		return "n"
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō', 'ŏ', 'ő':
		return "o"
	case 'œ':
		return "oe"
	case 'ŕ', 'ŗ', 'ř':
		return "r"
	case 'ś', 'ŝ', 'ş', 'š', 'ș':
		return "s"
	case 'ß':
		return "ss"
	case 'ţ', 'ť', 'ŧ', 'ț':
		return "t"
	case 'þ':
		return "th"
	case 'ù', 'ú', 'û', 'ü', 'ũ', 'ū', 'ŭ', 'ů', 'ű', 'ų':
		return "u"
	case 'ŵ':
		return "w"
	case 'ý', 'ÿ', 'ŷ':
		return "y"
	case 'ź', 'ż', 'ž':
		return "z"
	}
	return ""
}

// checkHostname returns ErrInvalidHostname unless name is a valid RFC 1123
// host name of at most 64 bytes: dot-separated labels of letters, digits and
// '-', none empty, longer than 63 or starting or ending with '-'.
func checkHostname(name string) error {
	if name == "" || len(name) > maxHostname {
		return fmt.Errorf("%w: %q must have 1 to %d bytes", ErrInvalidHostname, name, maxHostname)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: %q has an empty, too long or dash-edged label", ErrInvalidHostname, name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%w: %q has %q", ErrInvalidHostname, name, c)
			}
		}
	}
	return nil
}

// Hostname reads the host names from systemd-hostnamed.
func (o *OS) Hostname(ctx context.Context) (Hostname, error) {
	props, err := o.properties(ctx, hostnameService, hostnamePath, hostnameIface)
	if err != nil {
		return Hostname{}, fmt.Errorf("hostname1: read: %w", err)
	}
	var h Hostname
	var errs [3]error
	h.Static, errs[0] = property[string](props, "StaticHostname")
	h.Pretty, errs[1] = property[string](props, "PrettyHostname")
	h.Transient, errs[2] = property[string](props, "Hostname")
	if err := errors.Join(errs[:]...); err != nil {
		return Hostname{}, fmt.Errorf("hostname1: read: %w", err)
	}
	return h, nil
}

// SetStaticHostname sets the static host name, after checking that it is a
// valid one (ErrInvalidHostname, with no call made).
func (o *OS) SetStaticHostname(ctx context.Context, name string) error {
	if err := checkHostname(name); err != nil {
		return fmt.Errorf("hostname1: set static hostname: %w", err)
	}
	return o.setStatic(ctx, name)
}

func (o *OS) setStatic(ctx context.Context, name string) error {
	if err := o.call(ctx, hostnameService, hostnamePath, hostnameIface+".SetStaticHostname", nil, name, false); err != nil {
		return fmt.Errorf("hostname1: set static hostname %q: %w", name, err)
	}
	o.log.Info("static hostname set", "hostname", name)
	return nil
}

func (o *OS) setPretty(ctx context.Context, name string) error {
	if err := o.call(ctx, hostnameService, hostnamePath, hostnameIface+".SetPrettyHostname", nil, name, false); err != nil {
		return fmt.Errorf("hostname1: set pretty hostname %q: %w", name, err)
	}
	o.log.Info("pretty hostname set", "pretty", name)
	return nil
}

// SetRoomName names the device after its room: the static host name becomes
// HostLabel(room) and the pretty host name the room name itself (without
// surrounding white space). It returns the names read back afterwards.
//
// A room name that is empty, not UTF-8, holds control characters or gives no
// host label fails with ErrInvalidRoomName before any call. When hostnamed
// refuses the static name nothing has changed; when it refuses the pretty
// name after taking the static one, the previous static name is put back
// (the error then also says whether that worked), so a rename is all or
// nothing as far as the service lets it be. A read-back that differs from
// what was set fails with ErrNotApplied.
func (o *OS) SetRoomName(ctx context.Context, room string) (Hostname, error) {
	label, err := HostLabel(room)
	if err != nil {
		return Hostname{}, fmt.Errorf("hostname1: set room name: %w", err)
	}
	pretty, _ := checkRoomName(room) // checked by HostLabel
	before, err := o.Hostname(ctx)
	if err != nil {
		return Hostname{}, err
	}
	if err := o.setStatic(ctx, label); err != nil {
		return Hostname{}, err
	}
	if err := o.setPretty(ctx, pretty); err != nil {
		if before.Static == label {
			return Hostname{}, err
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
		defer cancel()
		if rerr := o.setStatic(rctx, before.Static); rerr != nil {
			return Hostname{}, errors.Join(err, fmt.Errorf("restore previous: %w", rerr))
		}
		return Hostname{}, err
	}
	after, err := o.Hostname(ctx)
	if err != nil {
		return Hostname{}, err
	}
	if after.Static != label || after.Pretty != pretty {
		return after, fmt.Errorf("hostname1: set room name %q: %w: reads back static %q, pretty %q",
			pretty, ErrNotApplied, after.Static, after.Pretty)
	}
	return after, nil
}
