package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

// Passwords are hashed with bcrypt rather than argon2id: bcrypt's hash
// string carries its own cost and salt, so verifying needs no parameters
// kept beside it and a later cost increase reads old hashes unchanged; its
// 4 KiB working set is smaller than argon2id's memory hardness, but a
// console with a handful of accounts, rate-limited logins and a
// 12-character minimum does not need more, and argon2id at a useful memory
// cost would let a burst of logins take hundreds of MiB from fleetd.
const bcryptCost = 12

// Password rules. bcrypt reads at most 72 bytes: a longer password would
// be silently cut, so it is refused instead.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 72
)

// ErrWeakPassword: the password is shorter than MinPasswordLen characters
// or longer than MaxPasswordLen bytes.
var ErrWeakPassword = errors.New("password must be 12 to 72 bytes long")

// HashPassword returns the bcrypt hash to store for an account (fleetd
// useradd and the accounts page use it).
func HashPassword(password string) (string, error) {
	return hashPassword(password, bcryptCost)
}

func hashPassword(password string, cost int) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("hash password: %w", ErrWeakPassword)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// usernameRE keeps usernames plain: they are the actor in the audit log,
// where "device:…" names a device, so no colon.
var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Login limits: failures within loginWindow. Past them, a login is refused
// before its password is checked.
const (
	loginWindow        = 15 * time.Minute
	maxFailsPerUser    = 5
	maxFailsPerAddress = 20
	maxLimiterKeys     = 10000 // bounds the memory a spray of usernames can take
)

// limiter counts failed logins per key within loginWindow. It prunes as it
// goes, so it needs no goroutine.
type limiter struct {
	now   func() time.Time
	mu    sync.Mutex
	fails map[string][]time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fails: map[string][]time.Time{}}
}

// recent returns the key's failures still in the window.
func (l *limiter) recent(key string, now time.Time) []time.Time {
	f := l.fails[key]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= loginWindow {
		i++
	}
	if i == len(f) {
		delete(l.fails, key)
		return nil
	}
	f = f[i:]
	l.fails[key] = f
	return f
}

// blocked says whether key has max failures in the window, and when the
// oldest of them leaves it.
func (l *limiter) blocked(key string, max int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.recent(key, now)
	if len(f) < max {
		return false, 0
	}
	return true, loginWindow - now.Sub(f[len(f)-max])
}

func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) >= maxLimiterKeys {
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	for _, k := range keys {
		if len(l.fails) >= maxLimiterKeys && l.fails[k] == nil {
			// Still full of live entries: an attack in progress. Count it
			// under one shared key so it stays limited.
			k = "overflow"
		}
		l.fails[k] = append(l.recent(k, now), now)
	}
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

// limiterName is the form of a username the limiter counts under: case and
// surrounding space do not make a new name, and a name longer than any
// account's cannot make the limiter's memory grow.
func limiterName(username string) string {
	n := strings.ToLower(strings.TrimSpace(username))
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// clientAddress is the peer's IP. A forwarding header is not trusted: the
// console is served directly (or behind a proxy that then counts as one
// client).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate finds the request's session and account, answering 401
// when there is none or it has ended.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (*caller, bool) {
	unauth := func(detail string) (*caller, bool) {
		c.problem(w, http.StatusUnauthorized, "unauthorized", detail, "")
		return nil, false
	}
	cookie, err := r.Cookie(c.cookieName)
	if err != nil || cookie.Value == "" {
		return unauth("log in first")
	}
	hash := hashToken(cookie.Value)
	ctx := r.Context()
	sess, err := c.st.Session(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return unauth("your session has ended; log in again")
	} else if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	now := c.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.CreatedAt) >= MaxSessionAge {
		_ = c.st.DeleteSession(ctx, hash)
		return unauth("your session has ended; log in again")
	}
	acct, err := c.st.Account(ctx, sess.AccountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.Disabled) {
		_ = c.st.DeleteSession(ctx, hash)
		return unauth("your account is disabled")
	} else if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	// Sliding expiry, written at most once a minute per session so reads do
	// not each cost a write.
	if now.Sub(sess.LastSeen) >= time.Minute {
		expires := now.Add(c.idle)
		if hard := sess.CreatedAt.Add(MaxSessionAge); expires.After(hard) {
			expires = hard
		}
		if err := c.st.TouchSession(ctx, hash, expires); errors.Is(err, store.ErrNotFound) {
			// Ended (logout elsewhere, disabled) since it was read.
			return unauth("your session has ended; log in again")
		} else if err != nil {
			c.storeError(w, r, err)
			return nil, false
		}
		sess.LastSeen, sess.ExpiresAt = now, expires
	}
	return &caller{account: acct, session: sess}, true
}

// AccountView is an account as the API shows it (never its hash).
type AccountView struct {
	ID        string     `json:"id"`
	Username  string     `json:"username"`
	Role      store.Role `json:"role"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"createdAt"`
	LastLogin *time.Time `json:"lastLogin,omitempty"`
}

func accountView(a store.Account) AccountView {
	v := AccountView{ID: a.ID, Username: a.Username, Role: a.Role, Disabled: a.Disabled, CreatedAt: a.CreatedAt}
	if !a.LastLogin.IsZero() {
		t := a.LastLogin
		v.LastLogin = &t
	}
	return v
}

// SessionView answers login and GET /session: who is logged in, the token
// for X-CSRF-Token, and what the pages need to build their forms.
type SessionView struct {
	Account      AccountView `json:"account"`
	CSRFToken    string      `json:"csrfToken"`
	ExpiresAt    time.Time   `json:"expiresAt"`
	CommandKinds []string    `json:"commandKinds"`
	ProfileKeys  []string    `json:"profileKeys"`
	SecretPaths  []string    `json:"secretPaths"`
	Mask         string      `json:"mask"`
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c *Console) login(w http.ResponseWriter, r *http.Request, _ *caller) {
	var req loginRequest
	if !c.decode(w, r, &req) {
		return
	}
	addr := clientAddress(r)
	userKey, addrKey := "user:"+limiterName(req.Username), "addr:"+addr
	for _, k := range []struct {
		key string
		max int
	}{{userKey, maxFailsPerUser}, {addrKey, maxFailsPerAddress}} {
		if blocked, wait := c.limiter.blocked(k.key, k.max); blocked {
			secs := int(wait/time.Second) + 1
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			c.log.Warn("console login rate-limited", "username", req.Username, "address", addr)
			c.problem(w, http.StatusTooManyRequests, "rate-limited",
				fmt.Sprintf("too many failed logins; try again in %d seconds", secs), "")
			return
		}
	}
	ctx := r.Context()
	acct, err := c.st.AccountByUsername(ctx, req.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeError(w, r, err)
		return
	}
	hash := []byte(acct.PasswordHash)
	if err != nil {
		// Same work for an unknown name as for a wrong password, so the
		// answer's timing does not tell which names exist.
		hash = c.dummy()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) != nil || err != nil {
		c.limiter.fail(userKey, addrKey)
		c.log.Warn("console login failed", "username", req.Username, "address", addr)
		c.problem(w, http.StatusUnauthorized, "bad-credentials", "wrong username or password", "")
		return
	}
	if acct.Disabled {
		// Said only to someone who knows the password.
		c.problem(w, http.StatusForbidden, "account-disabled", "this account is disabled; ask an admin", "")
		return
	}
	c.limiter.reset(userKey)
	token := randomToken(32)
	now := c.now()
	sess := store.Session{
		TokenHash: hashToken(token), AccountID: acct.ID, CSRFToken: randomToken(32),
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(c.idle),
	}
	if err := c.st.CreateSession(ctx, sess); err != nil {
		c.storeError(w, r, err)
		return
	}
	if err := c.st.RecordLogin(ctx, acct.ID); err != nil {
		c.storeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName, Value: token, Path: "/", HttpOnly: true, Secure: c.secure,
		SameSite: http.SameSiteStrictMode,
	})
	c.log.Info("console login", "username", acct.Username, "address", addr)
	writeJSON(w, http.StatusOK, c.sessionView(acct, sess))
}

func (c *Console) dummy() []byte {
	c.dummyOnce.Do(func() {
		c.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(randomToken(16)), c.cost)
	})
	return c.dummyHash
}

func (c *Console) sessionView(a store.Account, s store.Session) SessionView {
	return SessionView{
		Account: accountView(a), CSRFToken: s.CSRFToken, ExpiresAt: s.ExpiresAt,
		CommandKinds: commandKinds(), ProfileKeys: profileKeys(), SecretPaths: secretPaths(), Mask: Mask,
	}
}

func (c *Console) getSession(w http.ResponseWriter, r *http.Request, who *caller) {
	writeJSON(w, http.StatusOK, c.sessionView(who.account, who.session))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, who *caller) {
	if err := c.st.DeleteSession(r.Context(), who.session.TokenHash); err != nil {
		c.storeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName, Value: "", Path: "/", HttpOnly: true, Secure: c.secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1,
	})
	w.WriteHeader(http.StatusNoContent)
}

// Accounts (admins only).

func (c *Console) listAccounts(w http.ResponseWriter, r *http.Request, _ *caller) {
	accts, err := c.st.Accounts(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]AccountView, 0, len(accts))
	for _, a := range accts {
		out = append(out, accountView(a))
	}
	writeJSON(w, http.StatusOK, out)
}

type createAccountRequest struct {
	Username string     `json:"username"`
	Role     store.Role `json:"role"`
	Password string     `json:"password"`
}

func validRole(r store.Role) bool { return r == store.RoleAdmin || r == store.RoleViewer }

func (c *Console) createAccount(w http.ResponseWriter, r *http.Request, who *caller) {
	var req createAccountRequest
	if !c.decode(w, r, &req) {
		return
	}
	if !usernameRE.MatchString(req.Username) {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", "a username is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", "username")
		return
	}
	if !validRole(req.Role) {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", `role must be "admin" or "viewer"`, "role")
		return
	}
	hash, err := hashPassword(req.Password, c.cost)
	if err != nil {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", ErrWeakPassword.Error(), "password")
		return
	}
	a, err := c.st.CreateAccount(r.Context(), who.account.Username, req.Username, req.Role, hash)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, accountView(a))
}

type updateAccountRequest struct {
	Role     *store.Role `json:"role"`
	Disabled *bool       `json:"disabled"`
}

func (c *Console) updateAccount(w http.ResponseWriter, r *http.Request, who *caller) {
	var req updateAccountRequest
	if !c.decode(w, r, &req) {
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	cur, err := c.st.Account(ctx, id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	role, disabled := cur.Role, cur.Disabled
	if req.Role != nil {
		if !validRole(*req.Role) {
			c.problem(w, http.StatusUnprocessableEntity, "invalid", `role must be "admin" or "viewer"`, "role")
			return
		}
		role = *req.Role
	}
	if req.Disabled != nil {
		disabled = *req.Disabled
	}
	if id == who.account.ID && (disabled || role != store.RoleAdmin) {
		// Otherwise the last admin could lock everyone out.
		c.problem(w, http.StatusUnprocessableEntity, "invalid", "you cannot disable or demote your own account", "role")
		return
	}
	a, err := c.st.UpdateAccount(ctx, who.account.Username, id, role, disabled)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, accountView(a))
}

type passwordRequest struct {
	Password string `json:"password"`
}

func (c *Console) resetPassword(w http.ResponseWriter, r *http.Request, who *caller) {
	var req passwordRequest
	if !c.decode(w, r, &req) {
		return
	}
	hash, err := hashPassword(req.Password, c.cost)
	if err != nil {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", ErrWeakPassword.Error(), "password")
		return
	}
	if err := c.st.SetAccountPassword(r.Context(), who.account.Username, r.PathValue("id"), hash); err != nil {
		c.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
