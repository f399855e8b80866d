package integration

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/client"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestAdminPIN: the built roomctl sets the admin PIN over the socket (read
// from standard input), the kiosk's listener opens a session with it, and
// the PIN is on disk only as a hash.
func TestAdminPIN(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	ctx := roomdtest.Context(t, 30*time.Second)
	kiosk := client.NewHTTP(d.URL, "")
	defer kiosk.Close()

	var p *apiv1.Problem
	if _, err := kiosk.AdminLogin(ctx, "4711"); !errors.As(err, &p) || p.Status != 409 {
		t.Fatalf("login before a PIN is set: %v", err)
	}
	cmd := exec.Command(ctl, "-socket", d.Socket, "admin", "set-pin")
	cmd.Stdin = strings.NewReader("4711\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("roomctl admin set-pin: %v\n%s", err, out)
	}
	if _, err := kiosk.AdminLogin(ctx, "0000"); !errors.As(err, &p) || p.Status != 401 {
		t.Fatalf("wrong PIN: %v", err)
	}
	sess, err := kiosk.AdminLogin(ctx, "4711")
	if err != nil {
		t.Fatal(err)
	}
	s, err := kiosk.WithAdmin(sess.Token).Settings(ctx)
	if err != nil || s.RoomName != d.Room {
		t.Fatalf("settings with the session: %+v %v", s, err)
	}
	// A right PIN reset the count; one wrong PIN now leaves 4.
	if _, err := kiosk.AdminLogin(ctx, "1234"); !errors.As(err, &p) || p.Status != 401 {
		t.Fatalf("wrong PIN: %v", err)
	}
	out, errOut, code := roomctl(t, ctl, d, "admin")
	if code != 0 || !strings.Contains(out, "4 attempts") {
		t.Fatalf("roomctl admin: exit %d %s%s", code, out, errOut)
	}
	state, err := os.ReadFile(d.Dir + "/state/admin.json")
	if err != nil {
		t.Fatalf("admin state: %v (log:\n%s)", err, d.Log())
	}
	if strings.Contains(string(state), "4711") || !strings.Contains(string(state), "scrypt") {
		t.Fatalf("admin.json: %s", state)
	}
	if _, errOut, code := roomctl(t, ctl, d, "admin", "unlock"); code != 0 {
		t.Fatalf("roomctl admin unlock: exit %d %s", code, errOut)
	}
}
