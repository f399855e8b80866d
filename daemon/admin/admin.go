// Package admin guards the kiosk's admin settings with a PIN.
//
// The PIN (4 to 12 digits) is kept only as a scrypt hash with a random salt
// and its cost parameters, in admin.json in the state directory (mode 0600,
// replaced atomically). Wrong PINs are counted in rounds of MaxAttempts: a
// failed round locks the PIN for LockBase, doubling with every further
// failed round up to LockMax. The counters are on disk with the hash, so a
// reboot does not give anyone fresh attempts; only the right PIN (or an
// administrator through Unlock) resets them.
//
// A right PIN opens a session: a random token, valid for SessionIdle after
// its last use, held in memory only (a restart of roomd ends every session).
// At most MaxSessions live at once; a new one evicts the one closest to
// expiry.
//
// Nothing here ever logs or returns a PIN.
package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// Policy constants.
const (
	MinPINDigits = 4
	MaxPINDigits = 12
	// MaxAttempts is how many wrong PINs one round allows before a lock.
	MaxAttempts = 5
	// LockBase is the first lock; each further failed round doubles it.
	LockBase = time.Minute
	// LockMax caps the lock.
	LockMax = time.Hour
	// SessionIdle is how long a session lives after its last use.
	SessionIdle = 10 * time.Minute
	// MaxSessions bounds the live sessions.
	MaxSessions = 4
)

// Errors, matched with errors.Is (and errors.As for the typed ones).
var (
	// ErrNoPIN means no PIN is set: the settings stay locked until an
	// administrator sets one with `roomctl admin set-pin`.
	ErrNoPIN = errors.New("no admin PIN is set; set one with `roomctl admin set-pin` on the device")
	// ErrWrongPIN is a PIN that does not match; *WrongPINError carries the
	// attempts left in this round.
	ErrWrongPIN = errors.New("wrong PIN")
	// ErrLocked means too many wrong PINs; *LockedError says until when.
	ErrLocked = errors.New("too many wrong PINs")
	// ErrInvalidPIN is a new PIN that is not 4 to 12 digits.
	ErrInvalidPIN = errors.New("the PIN must be 4 to 12 digits")
	// ErrNoSession is a missing, unknown or expired session token.
	ErrNoSession = errors.New("admin session required")
)

// WrongPINError is ErrWrongPIN with the attempts left before a lock.
type WrongPINError struct{ AttemptsLeft int }

func (e *WrongPINError) Error() string {
	return fmt.Sprintf("%v; %d attempts left before a lock", ErrWrongPIN, e.AttemptsLeft)
}

// Unwrap makes errors.Is(err, ErrWrongPIN) hold.
func (e *WrongPINError) Unwrap() error { return ErrWrongPIN }

// LockedError is ErrLocked with the end of the lock and how long that is
// from the moment of the error (for a Retry-After header).
type LockedError struct {
	Until      time.Time
	RetryAfter time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v; try again after %s", ErrLocked, e.Until.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Status is what anyone may know about the PIN.
type Status struct {
	PINSet       bool
	Locked       bool
	LockedUntil  time.Time // zero when not locked
	AttemptsLeft int
}

// Session is an open admin session.
type Session struct {
	Token   string
	Expires time.Time
}

// Options configure a Guard.
type Options struct {
	// Path is the admin.json file.
	Path   string
	Now    func() time.Time
	Logger *slog.Logger
	// Cost is scrypt's N for new hashes (a power of two); 0 uses
	// DefaultCost. Stored hashes carry their own.
	Cost int
	// Rand supplies salts and tokens; nil uses crypto/rand.
	Rand func([]byte) error
}

// DefaultCost is scrypt's N: about 50 ms per check on a small ARM board, so
// guessing offline is slow and a check online is not noticed.
const DefaultCost = 1 << 15

// Guard holds the PIN, the lockout counters and the sessions.
type Guard struct {
	opts Options

	mu       sync.Mutex
	st       fileState
	sessions map[[32]byte]time.Time // SHA-256 of the token → expiry
}

// fileState is admin.json.
type fileState struct {
	Schema int   `json:"schema"`
	PIN    *hash `json:"pin,omitempty"`
	// Failures counts wrong PINs in the current round; Rounds the failed
	// rounds since the last right PIN.
	Failures    int       `json:"failures"`
	Rounds      int       `json:"rounds"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
}

type hash struct {
	Alg  string `json:"alg"` // "scrypt"
	N    int    `json:"n"`
	R    int    `json:"r"`
	P    int    `json:"p"`
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
}

const schema = 1

// Open reads the guard's state from opts.Path. A missing file means no PIN.
// A file that cannot be read as admin.json is moved aside and logged: the
// room then has no PIN (settings locked) rather than failing to start.
func Open(opts Options) (*Guard, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Cost == 0 {
		opts.Cost = DefaultCost
	}
	if opts.Rand == nil {
		opts.Rand = func(b []byte) error { _, err := rand.Read(b); return err }
	}
	g := &Guard{opts: opts, sessions: map[[32]byte]time.Time{}}
	data, err := os.ReadFile(opts.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("read admin state: %w", err)
	}
	var st fileState
	if err := json.Unmarshal(data, &st); err != nil || st.Schema != schema || (st.PIN != nil && !st.PIN.valid()) {
		if err == nil {
			err = fmt.Errorf("schema %d or PIN record not understood", st.Schema)
		}
		aside := opts.Path + ".damaged"
		if rerr := os.Rename(opts.Path, aside); rerr != nil {
			return nil, fmt.Errorf("move damaged admin state aside: %w", rerr)
		}
		opts.Logger.Error("admin state damaged: moved aside; no PIN is set until one is", "file", aside, "err", err)
		return g, nil
	}
	g.st = st
	return g, nil
}

func (h *hash) valid() bool {
	return h.Alg == "scrypt" && h.N > 1 && h.N&(h.N-1) == 0 && h.R > 0 && h.P > 0 && len(h.Salt) >= 16 && len(h.Hash) == 32
}

// Status reports the PIN's state now.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statusLocked(g.opts.Now())
}

func (g *Guard) statusLocked(now time.Time) Status {
	st := Status{PINSet: g.st.PIN != nil, AttemptsLeft: MaxAttempts - g.st.Failures}
	if now.Before(g.st.LockedUntil) {
		st.Locked, st.LockedUntil, st.AttemptsLeft = true, g.st.LockedUntil, 0
	}
	return st
}

// Login checks pin and opens a session. Errors: ErrNoPIN, *LockedError,
// *WrongPINError (or *LockedError when this attempt ends the round).
func (g *Guard) Login(pin string) (Session, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkLocked(pin); err != nil {
		return Session{}, err
	}
	return g.newSessionLocked()
}

// checkLocked verifies pin, counting a failure; g.mu is held.
func (g *Guard) checkLocked(pin string) error {
	now := g.opts.Now()
	if g.st.PIN == nil {
		return ErrNoPIN
	}
	if now.Before(g.st.LockedUntil) {
		return &LockedError{Until: g.st.LockedUntil, RetryAfter: g.st.LockedUntil.Sub(now)}
	}
	if g.st.PIN.matches(pin) {
		if g.st.Failures != 0 || g.st.Rounds != 0 || !g.st.LockedUntil.IsZero() {
			g.st.Failures, g.st.Rounds, g.st.LockedUntil = 0, 0, time.Time{}
			if err := g.saveLocked(); err != nil {
				return err
			}
		}
		return nil
	}
	g.st.Failures++
	var result error = &WrongPINError{AttemptsLeft: MaxAttempts - g.st.Failures}
	if g.st.Failures >= MaxAttempts {
		lock := LockBase << min(g.st.Rounds, 16)
		lock = min(lock, LockMax)
		g.st.Rounds++
		g.st.Failures = 0
		g.st.LockedUntil = now.Add(lock)
		result = &LockedError{Until: g.st.LockedUntil, RetryAfter: lock}
		g.opts.Logger.Warn("admin PIN locked after repeated wrong PINs", "for", lock, "rounds", g.st.Rounds)
	}
	// The counter must survive a restart, or a reboot would reset the
	// lock: a failure that cannot be recorded is refused as an error.
	if err := g.saveLocked(); err != nil {
		return err
	}
	return result
}

// SetPIN sets a new PIN. With requireCurrent, current must be the present
// PIN (and counts as an attempt); without it (the unix socket: an
// administrator on the device) the PIN is replaced outright. Every session
// but keepToken's ends: whoever knew the old PIN is out.
func (g *Guard) SetPIN(current, newPIN string, requireCurrent bool, keepToken string) error {
	if err := ValidatePIN(newPIN); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if requireCurrent {
		if err := g.checkLocked(current); err != nil {
			return err
		}
	}
	salt := make([]byte, 16)
	if err := g.opts.Rand(salt); err != nil {
		return fmt.Errorf("set PIN: salt: %w", err)
	}
	h := &hash{Alg: "scrypt", N: g.opts.Cost, R: 8, P: 1, Salt: salt}
	var err error
	if h.Hash, err = h.derive(newPIN); err != nil {
		return fmt.Errorf("set PIN: %w", err)
	}
	prev := g.st
	g.st.PIN, g.st.Failures, g.st.Rounds, g.st.LockedUntil = h, 0, 0, time.Time{}
	if err := g.saveLocked(); err != nil {
		g.st = prev
		return err
	}
	keep := sha256.Sum256([]byte(keepToken))
	for k := range g.sessions {
		if keepToken == "" || k != keep {
			delete(g.sessions, k)
		}
	}
	g.opts.Logger.Info("admin PIN set")
	return nil
}

// Unlock clears a lock and the failure counters (an administrator on the
// device, e.g. `roomctl admin unlock`).
func (g *Guard) Unlock() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.st
	g.st.Failures, g.st.Rounds, g.st.LockedUntil = 0, 0, time.Time{}
	if err := g.saveLocked(); err != nil {
		g.st = prev
		return err
	}
	g.opts.Logger.Info("admin PIN lock cleared")
	return nil
}

// ValidatePIN checks a PIN's form: 4 to 12 ASCII digits.
func ValidatePIN(pin string) error {
	if len(pin) < MinPINDigits || len(pin) > MaxPINDigits {
		return ErrInvalidPIN
	}
	for _, c := range []byte(pin) {
		if c < '0' || c > '9' {
			return ErrInvalidPIN
		}
	}
	return nil
}

func (h *hash) derive(pin string) ([]byte, error) {
	return scrypt.Key([]byte(pin), h.Salt, h.N, h.R, h.P, 32)
}

func (h *hash) matches(pin string) bool {
	got, err := h.derive(pin)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// Check extends and validates a session token. Errors: ErrNoSession.
func (g *Guard) Check(token string) (Session, error) {
	if token == "" {
		return Session{}, ErrNoSession
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Now()
	g.expireLocked(now)
	k := sha256.Sum256([]byte(token))
	if _, ok := g.sessions[k]; !ok {
		return Session{}, ErrNoSession
	}
	exp := now.Add(SessionIdle)
	g.sessions[k] = exp
	return Session{Token: token, Expires: exp}, nil
}

// Logout ends a session; an unknown token is no error.
func (g *Guard) Logout(token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.sessions, sha256.Sum256([]byte(token)))
}

func (g *Guard) newSessionLocked() (Session, error) {
	now := g.opts.Now()
	g.expireLocked(now)
	for len(g.sessions) >= MaxSessions {
		var oldest [32]byte
		var at time.Time
		for k, exp := range g.sessions {
			if at.IsZero() || exp.Before(at) {
				oldest, at = k, exp
			}
		}
		delete(g.sessions, oldest)
	}
	b := make([]byte, 32)
	if err := g.opts.Rand(b); err != nil {
		return Session{}, fmt.Errorf("new session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	exp := now.Add(SessionIdle)
	// Only the token's hash is kept: a memory dump does not yield a live
	// token, and lookups by hash leak nothing about the token's bytes.
	g.sessions[sha256.Sum256([]byte(token))] = exp
	return Session{Token: token, Expires: exp}, nil
}

func (g *Guard) expireLocked(now time.Time) {
	for k, exp := range g.sessions {
		if !now.Before(exp) {
			delete(g.sessions, k)
		}
	}
}

// saveLocked writes admin.json atomically: a crash leaves the old file or
// the new one, never half of either.
func (g *Guard) saveLocked() error {
	g.st.Schema = schema
	data, err := json.MarshalIndent(g.st, "", "  ")
	if err != nil {
		return fmt.Errorf("save admin state: %w", err)
	}
	if err := atomicfile.Write(g.opts.Path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save admin state: %w", err)
	}
	return nil
}
