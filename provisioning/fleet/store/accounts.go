package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Role is what a console account may do.
type Role string

// The console's roles: an admin changes the fleet, a viewer only looks.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
)

func (r Role) valid() bool { return r == RoleAdmin || r == RoleViewer }

// Account is a person's console login. PasswordHash is whatever the console
// made of the password (an argon2id or bcrypt string); the store never sees
// the password and never writes the hash to the audit log.
type Account struct {
	ID           string
	Username     string
	Role         Role
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
	LastLogin    time.Time // zero before the first login
}

// auditAccount is what the audit log keeps of an account: no hash.
type auditAccount struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Role     Role   `json:"role"`
	Disabled bool   `json:"disabled"`
}

func (a Account) audited() auditAccount {
	return auditAccount{ID: a.ID, Username: a.Username, Role: a.Role, Disabled: a.Disabled}
}

// maxUsername bounds a username; it is shown in every audit entry.
const maxUsername = 64

const accountColumns = `id, username, role, password_hash, disabled, created_at, last_login`

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var role string
	var disabled, created int64
	var login sql.NullInt64
	if err := sc.Scan(&a.ID, &a.Username, &role, &a.PasswordHash, &disabled, &created, &login); err != nil {
		return Account{}, err
	}
	a.Role, a.Disabled, a.CreatedAt = Role(role), disabled != 0, fromMicro(created)
	if login.Valid {
		a.LastLogin = fromMicro(login.Int64)
	}
	return a, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// CreateAccount adds a console account. The username is trimmed and
// compared exactly; a taken one is [ErrConflict]. An empty username or
// hash, a username with control characters or longer than 64 bytes, or an
// unknown role is [ErrInvalid].
func (s *Store) CreateAccount(ctx context.Context, actor, username string, role Role, passwordHash string) (Account, error) {
	a := Account{ID: newID(), Username: strings.TrimSpace(username), Role: role, PasswordHash: passwordHash,
		CreatedAt: fromMicro(s.nowMicro())}
	switch {
	case a.Username == "" || len(a.Username) > maxUsername || strings.IndexFunc(a.Username, unicode.IsControl) >= 0:
		return Account{}, fmt.Errorf("create account: username %q must be 1 to %d printable bytes: %w", a.Username, maxUsername, ErrInvalid)
	case passwordHash == "":
		return Account{}, fmt.Errorf("create account %q: empty password hash: %w", a.Username, ErrInvalid)
	case !role.valid():
		return Account{}, fmt.Errorf("create account %q: unknown role %q: %w", a.Username, role, ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
			a.ID, a.Username, string(a.Role), a.PasswordHash, 0, a.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		return t.audit(ctx, actor, "account.create", "account:"+a.ID, nil, a.audited())
	})
	if err != nil {
		return Account{}, fmt.Errorf("create account %q: %w", a.Username, err)
	}
	return a, nil
}

// Account returns one account by ID.
func (s *Store) Account(ctx context.Context, id string) (Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	if err != nil {
		return Account{}, fmt.Errorf("account %s: %w", id, notFound(err))
	}
	return a, nil
}

// AccountByUsername returns the account with that username (trimmed,
// exact match), for logins.
func (s *Store) AccountByUsername(ctx context.Context, username string) (Account, error) {
	username = strings.TrimSpace(username)
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = ?`, username))
	if err != nil {
		return Account{}, fmt.Errorf("account %q: %w", username, notFound(err))
	}
	return a, nil
}

// Accounts lists every account by username.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount sets an account's role and disabled flag. Disabling an
// account also ends its sessions. A change that would leave the console
// without an enabled admin is [ErrConflict], so nobody locks the fleet out
// of its own console.
func (s *Store) UpdateAccount(ctx context.Context, actor, id string, role Role, disabled bool) (Account, error) {
	if !role.valid() {
		return Account{}, fmt.Errorf("update account %s: unknown role %q: %w", id, role, ErrInvalid)
	}
	var out Account
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanAccount(t.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if before.Role == RoleAdmin && !before.Disabled && (role != RoleAdmin || disabled) {
			var others int
			if err := t.queryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE role = 'admin' AND disabled = 0 AND id <> ?`, id).
				Scan(&others); err != nil {
				return err
			}
			if others == 0 {
				return fmt.Errorf("%q is the last enabled admin: %w", before.Username, ErrConflict)
			}
		}
		if _, err := t.exec(ctx, `UPDATE accounts SET role = ?, disabled = ? WHERE id = ?`,
			string(role), boolInt(disabled), id); err != nil {
			return err
		}
		if disabled {
			if _, err := t.exec(ctx, `DELETE FROM sessions WHERE account_id = ?`, id); err != nil {
				return err
			}
		}
		out = before
		out.Role, out.Disabled = role, disabled
		return t.audit(ctx, actor, "account.update", "account:"+id, before.audited(), out.audited())
	})
	if err != nil {
		return Account{}, fmt.Errorf("update account %s: %w", id, err)
	}
	return out, nil
}

// SetAccountPassword replaces an account's password hash and ends all its
// sessions, so a changed password logs out every browser that knew the old
// one. The audit entry records the change, never a hash.
func (s *Store) SetAccountPassword(ctx context.Context, actor, id, passwordHash string) error {
	if passwordHash == "" {
		return fmt.Errorf("set password of account %s: empty hash: %w", id, ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		res, err := t.exec(ctx, `UPDATE accounts SET password_hash = ? WHERE id = ?`, passwordHash, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrNotFound
		}
		if _, err := t.exec(ctx, `DELETE FROM sessions WHERE account_id = ?`, id); err != nil {
			return err
		}
		return t.audit(ctx, actor, "account.password", "account:"+id, nil, nil)
	})
	if err != nil {
		return fmt.Errorf("set password of account %s: %w", id, err)
	}
	return nil
}

// RecordLogin stamps the account's last login with the clock's time. It is
// not audited: it is an observation, not a change someone made.
func (s *Store) RecordLogin(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE accounts SET last_login = ? WHERE id = ?`, s.nowMicro(), id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("record login of account %s: %w", id, err)
	}
	return nil
}

// Session is a console login session. TokenHash is a hash of the cookie's
// token (the console chooses the hash; the store never sees the token), so
// a database leak does not hand out sessions.
type Session struct {
	TokenHash string
	AccountID string
	CSRFToken string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
}

const sessionColumns = `token_hash, account_id, csrf_token, created_at, last_seen, expires_at`

// CreateSession stores a session. Zero CreatedAt and LastSeen mean now.
// Empty token hash, account or CSRF token, or an expiry not after now, is
// [ErrInvalid]; an unknown account is [ErrNotFound]; a token hash already
// stored is [ErrConflict].
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	now := s.nowMicro()
	created, seen := sess.CreatedAt.UnixMicro(), sess.LastSeen.UnixMicro()
	if sess.CreatedAt.IsZero() {
		created = now
	}
	if sess.LastSeen.IsZero() {
		seen = now
	}
	switch {
	case sess.TokenHash == "" || sess.AccountID == "" || sess.CSRFToken == "":
		return fmt.Errorf("create session: token hash, account and CSRF token required: %w", ErrInvalid)
	case sess.ExpiresAt.UnixMicro() <= now:
		return fmt.Errorf("create session for account %s: expiry %v not in the future: %w", sess.AccountID, sess.ExpiresAt, ErrInvalid)
	}
	if _, err := s.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		sess.TokenHash, sess.AccountID, sess.CSRFToken, created, seen, sess.ExpiresAt.UnixMicro()); err != nil {
		return fmt.Errorf("create session for account %s: %w", sess.AccountID, err)
	}
	return nil
}

// Session returns a live session; an expired one is [ErrNotFound] like a
// missing one, whether or not PurgeSessions has removed it yet.
func (s *Store) Session(ctx context.Context, tokenHash string) (Session, error) {
	var sess Session
	var created, seen, expires int64
	err := s.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ? AND expires_at > ?`,
		tokenHash, s.nowMicro()).Scan(&sess.TokenHash, &sess.AccountID, &sess.CSRFToken, &created, &seen, &expires)
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", notFound(err))
	}
	sess.CreatedAt, sess.LastSeen, sess.ExpiresAt = fromMicro(created), fromMicro(seen), fromMicro(expires)
	return sess, nil
}

// TouchSession records activity on a live session and moves its expiry
// (sliding sessions). An expired or missing session is [ErrNotFound].
func (s *Store) TouchSession(ctx context.Context, tokenHash string, expiresAt time.Time) error {
	now := s.nowMicro()
	res, err := s.exec(ctx, `UPDATE sessions SET last_seen = ?, expires_at = ? WHERE token_hash = ? AND expires_at > ?`,
		now, expiresAt.UnixMicro(), tokenHash, now)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// DeleteSession ends a session (logout). Deleting one that is already
// gone is not an error: logging out twice is harmless.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	if _, err := s.exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeSessions deletes expired sessions and returns how many went. The
// caller runs it periodically.
func (s *Store) PurgeSessions(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, s.nowMicro())
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return n, nil
}
