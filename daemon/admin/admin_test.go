package admin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newGuard(t *testing.T, path string, clk *fakeClock) *Guard {
	t.Helper()
	g, err := Open(Options{Path: path, Now: clk.Now, Cost: 1 << 4})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func testPaths(t *testing.T) (string, *fakeClock) {
	return filepath.Join(t.TempDir(), "admin.json"), &fakeClock{t: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
}

func TestNoPIN(t *testing.T) {
	path, clk := testPaths(t)
	g := newGuard(t, path, clk)
	if st := g.Status(); st.PINSet || st.Locked || st.AttemptsLeft != MaxAttempts {
		t.Fatalf("status without a PIN: %+v", st)
	}
	if _, err := g.Login("1234"); !errors.Is(err, ErrNoPIN) {
		t.Fatalf("login without a PIN: %v", err)
	}
	// No PIN, so a PIN change that needs the current one cannot succeed.
	if err := g.SetPIN("", "1234", true, ""); !errors.Is(err, ErrNoPIN) {
		t.Fatalf("kiosk setting the first PIN: %v", err)
	}
}

func TestPINStoredHashed(t *testing.T) {
	path, clk := testPaths(t)
	g := newGuard(t, path, clk)
	if err := g.SetPIN("", "73915", false, ""); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.json mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "73915") {
		t.Fatalf("the PIN is in the file in clear: %s", data)
	}
	for _, want := range []string{`"alg": "scrypt"`, `"n": 16`, `"salt"`, `"hash"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("admin.json lacks %s: %s", want, data)
		}
	}
	// Another guard with another salt stores another hash for the same PIN.
	path2 := filepath.Join(t.TempDir(), "admin.json")
	g2 := newGuard(t, path2, clk)
	if err := g2.SetPIN("", "73915", false, ""); err != nil {
		t.Fatal(err)
	}
	if g.st.PIN.Salt == nil || string(g.st.PIN.Salt) == string(g2.st.PIN.Salt) || string(g.st.PIN.Hash) == string(g2.st.PIN.Hash) {
		t.Error("two PINs set the same way share salt or hash")
	}
}

func TestValidatePIN(t *testing.T) {
	for pin, ok := range map[string]bool{"1234": true, "123456789012": true, "123": false, "1234567890123": false, "12a4": false, "": false, "１２３４": false, " 1234": false} {
		if err := ValidatePIN(pin); (err == nil) != ok {
			t.Errorf("ValidatePIN(%q) = %v", pin, err)
		}
	}
}

func TestLoginAndSessions(t *testing.T) {
	path, clk := testPaths(t)
	g := newGuard(t, path, clk)
	if err := g.SetPIN("", "2468", false, ""); err != nil {
		t.Fatal(err)
	}
	s, err := g.Login("2468")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Token) != 43 || !s.Expires.Equal(clk.Now().Add(SessionIdle)) {
		t.Fatalf("session %+v", s)
	}
	// Sliding: each use extends.
	clk.Add(9 * time.Minute)
	if _, err := g.Check(s.Token); err != nil {
		t.Fatalf("session after 9 min: %v", err)
	}
	clk.Add(9 * time.Minute)
	if got, err := g.Check(s.Token); err != nil || !got.Expires.Equal(clk.Now().Add(SessionIdle)) {
		t.Fatalf("session 18 min in, used at 9: %+v %v", got, err)
	}
	clk.Add(SessionIdle)
	if _, err := g.Check(s.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle session still valid: %v", err)
	}
	if _, err := g.Check(""); !errors.Is(err, ErrNoSession) {
		t.Fatal("empty token accepted")
	}
	if _, err := g.Check("not-a-token"); !errors.Is(err, ErrNoSession) {
		t.Fatal("unknown token accepted")
	}

	// Logout ends it.
	s, _ = g.Login("2468")
	g.Logout(s.Token)
	if _, err := g.Check(s.Token); !errors.Is(err, ErrNoSession) {
		t.Fatal("session alive after logout")
	}

	// At most MaxSessions: the first of five is evicted.
	var toks []string
	for range MaxSessions + 1 {
		s, err := g.Login("2468")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, s.Token)
		clk.Add(time.Second)
	}
	if _, err := g.Check(toks[0]); !errors.Is(err, ErrNoSession) {
		t.Error("oldest session kept beyond the limit")
	}
	for _, tok := range toks[1:] {
		if _, err := g.Check(tok); err != nil {
			t.Errorf("recent session dropped: %v", err)
		}
	}

	// A new PIN ends every session but the one that changed it.
	if err := g.SetPIN("2468", "13579", true, toks[4]); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Check(toks[1]); !errors.Is(err, ErrNoSession) {
		t.Error("session survived a PIN change")
	}
	if _, err := g.Check(toks[4]); err != nil {
		t.Errorf("the changing session ended: %v", err)
	}
	if _, err := g.Login("2468"); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("old PIN after change: %v", err)
	}
	if _, err := g.Login("13579"); err != nil {
		t.Errorf("new PIN: %v", err)
	}
}

func TestLockoutDoublesAndPersists(t *testing.T) {
	path, clk := testPaths(t)
	g := newGuard(t, path, clk)
	if err := g.SetPIN("", "1111", false, ""); err != nil {
		t.Fatal(err)
	}
	failRound := func(g *Guard) *LockedError {
		t.Helper()
		for i := 1; i < MaxAttempts; i++ {
			var wrong *WrongPINError
			if _, err := g.Login("9999"); !errors.As(err, &wrong) || wrong.AttemptsLeft != MaxAttempts-i {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		var locked *LockedError
		if _, err := g.Login("9999"); !errors.As(err, &locked) {
			t.Fatalf("attempt %d: %v", MaxAttempts, err)
		}
		return locked
	}
	l := failRound(g)
	if want := clk.Now().Add(time.Minute); !l.Until.Equal(want) {
		t.Fatalf("first lock until %v, want %v", l.Until, want)
	}
	// Locked: even the right PIN is refused, and the state says so.
	if _, err := g.Login("1111"); !errors.Is(err, ErrLocked) {
		t.Fatalf("right PIN while locked: %v", err)
	}
	if st := g.Status(); !st.Locked || st.AttemptsLeft != 0 || !st.LockedUntil.Equal(l.Until) {
		t.Fatalf("status while locked: %+v", st)
	}

	// A restart keeps the lock and the round count.
	g = newGuard(t, path, clk)
	if _, err := g.Login("1111"); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock lost across restart: %v", err)
	}
	clk.Add(time.Minute)
	if st := g.Status(); st.Locked || st.AttemptsLeft != MaxAttempts {
		t.Fatalf("status after the lock: %+v", st)
	}
	wantLocks := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, want := range wantLocks {
		g = newGuard(t, path, clk) // every round across a restart, too
		l := failRound(g)
		if got := l.Until.Sub(clk.Now()); got != want {
			t.Fatalf("round %d: locked for %v, want %v", i+2, got, want)
		}
		clk.Add(want)
	}
	// The right PIN resets everything.
	if _, err := g.Login("1111"); err != nil {
		t.Fatal(err)
	}
	l = failRound(g)
	if got := l.Until.Sub(clk.Now()); got != time.Minute {
		t.Fatalf("after a right PIN the lock is %v, want 1m", got)
	}
	// An administrator clears it.
	if err := g.Unlock(); err != nil {
		t.Fatal(err)
	}
	g = newGuard(t, path, clk)
	if _, err := g.Login("1111"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestWrongCurrentPINCounts(t *testing.T) {
	path, clk := testPaths(t)
	g := newGuard(t, path, clk)
	if err := g.SetPIN("", "1111", false, ""); err != nil {
		t.Fatal(err)
	}
	if err := g.SetPIN("2222", "3333", true, ""); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("wrong current PIN: %v", err)
	}
	if st := g.Status(); st.AttemptsLeft != MaxAttempts-1 {
		t.Fatalf("a wrong current PIN did not count: %+v", st)
	}
	if err := g.SetPIN("1111", "12", true, ""); !errors.Is(err, ErrInvalidPIN) {
		t.Fatalf("short new PIN: %v", err)
	}
	if _, err := g.Login("1111"); err != nil {
		t.Fatalf("the PIN changed on a refused change: %v", err)
	}
}

func TestDamagedFileMovedAside(t *testing.T) {
	path, clk := testPaths(t)
	for _, content := range []string{"{not json", `{"schema":99}`, `{"schema":1,"pin":{"alg":"md5","n":16,"r":8,"p":1}}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGuard(t, path, clk)
		if g.Status().PINSet {
			t.Errorf("%q: a damaged file gave a PIN", content)
		}
		if data, err := os.ReadFile(path + ".damaged"); err != nil || string(data) != content {
			t.Errorf("%q: not moved aside: %v", content, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q: damaged file left in place", content)
		}
	}
}

func TestUnsavableFailureRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.json")
	clk := &fakeClock{t: time.Unix(0, 0)}
	g := newGuard(t, path, clk)
	if err := g.SetPIN("", "1111", false, ""); err != nil {
		t.Fatal(err)
	}
	// Make the directory unwritable by replacing the file with a directory
	// of the same name: the rename fails (root ignores mode bits).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := g.Login("0000")
	if err == nil || errors.Is(err, ErrWrongPIN) {
		t.Fatalf("a failure that could not be recorded: %v", err)
	}
}
