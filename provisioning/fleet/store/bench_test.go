package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/test/pgtest"
)

// BenchmarkProcessCheckIn measures one device check-in (state, two
// samples, one outbox record, command delivery, the rollout lookup) in a
// fleet of 1000 devices, on both engines, without and with an active
// rollout the check-in reports progress in. The fleet load test in test/
// measures the whole server; this isolates the store's share.
func BenchmarkProcessCheckIn(b *testing.B) {
	pg := pgtest.Start(b)
	for _, eng := range []struct {
		name string
		opts func() Options
	}{
		{"sqlite", func() Options { return Options{SQLitePath: filepath.Join(b.TempDir(), "fleet.db")} }},
		{"postgres", func() Options { return Options{PostgresDSN: pg.NewDatabase(b)} }},
	} {
		b.Run(eng.name, func(b *testing.B) {
			ctx := context.Background()
			st, err := Open(ctx, eng.opts())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			org, _ := st.CreateOrganisation(ctx, "b", "Org")
			site, _ := st.CreateSite(ctx, "b", org.ID, "Site")
			room, err := st.CreateRoom(ctx, "b", site.ID, "Room")
			if err != nil {
				b.Fatal(err)
			}
			const devices = 1000
			ids := make([]string, devices)
			for i := range ids {
				code, _, err := st.CreateEnrollmentCode(ctx, "b", CodeScope{RoomID: room.ID}, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				d, err := st.Redeem(ctx, Redemption{Code: code, CertSerial: fmt.Sprint("s", i), CertNotAfter: time.Now().Add(time.Hour)})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = d.ID
			}
			c := CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.0"}`), MeetingState: "idle",
				Inventory:    json.RawMessage(`{"hostname":"h","devices":[{"kind":"camera","id":"c"}]}`),
				HealthSample: json.RawMessage(`{"status":"ok"}`), CallQuality: json.RawMessage(`{"rttMillis":20}`)}
			n := 0
			run := func(b *testing.B, c CheckIn) {
				for b.Loop() {
					rec := []fleetapi.Record{{Key: fmt.Sprint("k", n), Event: &fleetapi.Event{Type: "tick"}}}
					if _, err := st.ProcessCheckIn(ctx, ids[n%devices], c, rec); err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			b.Run("plain", func(b *testing.B) { run(b, c) })
			// The same with an active rollout: the status is stored on the
			// device and in the rollout, and the rollout is looked up.
			r, err := st.CreateRollout(ctx, "b", NewRollout{OrgID: org.ID, Target: "t", Version: "2.0"})
			if err != nil {
				b.Fatal(err)
			}
			c.Update = &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", State: fleetapi.UpdateDownloading,
				Rollout: r.ID, Version: "2.0", Written: 1 << 20, Length: 1 << 30}
			b.Run("rollout", func(b *testing.B) { run(b, c) })
		})
	}
}
