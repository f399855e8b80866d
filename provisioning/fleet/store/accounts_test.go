package store

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func testAccounts(t *testing.T, e *env) {
	admin, err := e.st.CreateAccount(e.ctx, "setup", " alice ", RoleAdmin, "$argon2id$hash-a")
	if err != nil {
		t.Fatal(err)
	}
	if admin.Username != "alice" || admin.Role != RoleAdmin || admin.Disabled || !admin.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("created %+v", admin)
	}
	_, err = e.st.CreateAccount(e.ctx, "setup", "alice", RoleViewer, "h")
	wantErr(t, "taken username", err, ErrConflict)
	for _, bad := range []struct {
		name, user, hash string
		role             Role
	}{
		{"empty username", " ", "h", RoleViewer},
		{"control character", "bo\nb", "h", RoleViewer},
		{"long username", strings.Repeat("x", 65), "h", RoleViewer},
		{"empty hash", "bob", "", RoleViewer},
		{"unknown role", "bob", "h", "root"},
	} {
		_, err := e.st.CreateAccount(e.ctx, "setup", bad.user, bad.role, bad.hash)
		wantErr(t, bad.name, err, ErrInvalid)
	}
	viewer, err := e.st.CreateAccount(e.ctx, "alice", "bob", RoleViewer, "$argon2id$hash-b")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.st.AccountByUsername(e.ctx, "bob")
	if err != nil || !reflect.DeepEqual(got, viewer) {
		t.Fatalf("by username: %+v, %v; want %+v", got, err, viewer)
	}
	if got, err := e.st.Account(e.ctx, admin.ID); err != nil || got.PasswordHash != "$argon2id$hash-a" {
		t.Fatalf("by id: %+v, %v", got, err)
	}
	_, err = e.st.AccountByUsername(e.ctx, "carol")
	wantErr(t, "unknown username", err, ErrNotFound)
	list, err := e.st.Accounts(e.ctx)
	if err != nil || len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
		t.Fatalf("accounts %+v, %v", list, err)
	}

	// The last enabled admin cannot be demoted or disabled.
	_, err = e.st.UpdateAccount(e.ctx, "alice", admin.ID, RoleViewer, false)
	wantErr(t, "demote the last admin", err, ErrConflict)
	_, err = e.st.UpdateAccount(e.ctx, "alice", admin.ID, RoleAdmin, true)
	wantErr(t, "disable the last admin", err, ErrConflict)
	_, err = e.st.UpdateAccount(e.ctx, "alice", viewer.ID, "root", false)
	wantErr(t, "unknown role", err, ErrInvalid)
	_, err = e.st.UpdateAccount(e.ctx, "alice", "nope", RoleViewer, false)
	wantErr(t, "missing account", err, ErrNotFound)
	if up, err := e.st.UpdateAccount(e.ctx, "alice", viewer.ID, RoleAdmin, false); err != nil || up.Role != RoleAdmin {
		t.Fatalf("promote: %+v, %v", up, err)
	}

	e.clock.Advance(time.Minute)
	if err := e.st.RecordLogin(e.ctx, viewer.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "login of a missing account", e.st.RecordLogin(e.ctx, "nope"), ErrNotFound)
	if got, _ := e.st.Account(e.ctx, viewer.ID); !got.LastLogin.Equal(e.clock.Now()) {
		t.Fatalf("last login %v, want %v", got.LastLogin, e.clock.Now())
	}

	// Sessions: live, touched, expired, purged; a password change and a
	// disable end them.
	exp := e.clock.Now().Add(time.Hour)
	for _, tok := range []string{"t1", "t2"} {
		if err := e.st.CreateSession(e.ctx, Session{TokenHash: tok, AccountID: viewer.ID, CSRFToken: "c-" + tok, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.CreateSession(e.ctx, Session{TokenHash: "a1", AccountID: admin.ID, CSRFToken: "c", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "duplicate token", e.st.CreateSession(e.ctx, Session{TokenHash: "t1", AccountID: viewer.ID, CSRFToken: "c", ExpiresAt: exp}), ErrConflict)
	wantErr(t, "session of a missing account", e.st.CreateSession(e.ctx, Session{TokenHash: "x", AccountID: "nope", CSRFToken: "c", ExpiresAt: exp}), ErrNotFound)
	wantErr(t, "session without CSRF token", e.st.CreateSession(e.ctx, Session{TokenHash: "x", AccountID: viewer.ID, ExpiresAt: exp}), ErrInvalid)
	wantErr(t, "session expiring now", e.st.CreateSession(e.ctx, Session{TokenHash: "x", AccountID: viewer.ID, CSRFToken: "c", ExpiresAt: e.clock.Now()}), ErrInvalid)
	sess, err := e.st.Session(e.ctx, "t1")
	if err != nil || sess.AccountID != viewer.ID || sess.CSRFToken != "c-t1" || !sess.ExpiresAt.Equal(exp) || !sess.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("session %+v, %v", sess, err)
	}
	e.clock.Advance(50 * time.Minute)
	if err := e.st.TouchSession(e.ctx, "t1", e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(20 * time.Minute) // t2 and a1 expired, t1 touched
	_, err = e.st.Session(e.ctx, "t2")
	wantErr(t, "expired session", err, ErrNotFound)
	wantErr(t, "touch an expired session", e.st.TouchSession(e.ctx, "t2", e.clock.Now().Add(time.Hour)), ErrNotFound)
	if sess, err := e.st.Session(e.ctx, "t1"); err != nil || !sess.LastSeen.Equal(e.clock.Now().Add(-20*time.Minute)) {
		t.Fatalf("touched session %+v, %v", sess, err)
	}
	if n, err := e.st.PurgeSessions(e.ctx); err != nil || n != 2 {
		t.Fatalf("purged %d (%v), want 2", n, err)
	}
	if err := e.st.DeleteSession(e.ctx, "t2"); err != nil {
		t.Fatalf("delete a purged session: %v", err)
	}
	if err := e.st.SetAccountPassword(e.ctx, "bob", viewer.ID, "$argon2id$new"); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.Session(e.ctx, "t1")
	wantErr(t, "session after password change", err, ErrNotFound)
	wantErr(t, "password of a missing account", e.st.SetAccountPassword(e.ctx, "bob", "nope", "h"), ErrNotFound)
	wantErr(t, "empty password hash", e.st.SetAccountPassword(e.ctx, "bob", viewer.ID, ""), ErrInvalid)
	if got, _ := e.st.Account(e.ctx, viewer.ID); got.PasswordHash != "$argon2id$new" {
		t.Fatalf("hash after change %q", got.PasswordHash)
	}
	if err := e.st.CreateSession(e.ctx, Session{TokenHash: "t3", AccountID: viewer.ID, CSRFToken: "c", ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateAccount(e.ctx, "alice", viewer.ID, RoleAdmin, true); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.Session(e.ctx, "t3")
	wantErr(t, "session of a disabled account", err, ErrNotFound)
	if err := e.st.DeleteSession(e.ctx, "a1"); err != nil {
		t.Fatal(err)
	}

	// The audit log names every change and never holds a hash.
	entries, err := e.st.Audit(e.ctx, "account:"+viewer.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action+" by "+en.Actor)
		if strings.Contains(string(en.Before)+string(en.After), "argon2id") {
			t.Errorf("audit entry %s holds a password hash: %s → %s", en.Action, en.Before, en.After)
		}
	}
	want := []string{"account.create by alice", "account.update by alice", "account.password by bob", "account.update by alice"}
	if !reflect.DeepEqual(actions, want) {
		t.Fatalf("account audit %v, want %v", actions, want)
	}
}
