package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// fleet runs `roomctl fleet …`: whether the room is managed, and
// enrollment with an activation code.
func (a *app) fleet(ctx context.Context, args []string) error {
	sub := "status"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "status":
		if err := noArgs(args); err != nil {
			return err
		}
		st, err := a.client.Fleet(ctx)
		if err != nil {
			return err
		}
		return a.printFleet(st)
	case "enroll":
		fs := flag.NewFlagSet("fleet enroll", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		room := fs.String("room", "", "room name, for a code that covers a whole site")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: fleet enroll [-room NAME] CODE", errUsage)
		}
		st, err := a.client.FleetEnroll(ctx, apiv1.FleetEnrollRequest{Code: fs.Arg(0), RoomName: *room})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.errOut, "enrolled as %s\n", st.DeviceID)
		return a.printFleet(st)
	}
	return fmt.Errorf("%w: fleet takes status or enroll; not %q", errUsage, sub)
}

func (a *app) printFleet(st apiv1.FleetStatus) error {
	if a.json {
		return json.NewEncoder(a.out).Encode(st)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	if !st.Managed {
		fmt.Fprintln(tw, "Fleet:\tnone (standalone room; set [fleet] server in roomd.toml)")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "Fleet:\t%s\n", st.Server)
	switch {
	case st.Revoked:
		fmt.Fprintf(tw, "Device:\t%s, REVOKED by the fleet (factory reset and enroll again)\n", st.DeviceID)
	case st.Enrolled:
		fmt.Fprintf(tw, "Device:\t%s in room %q\n", st.DeviceID, st.FleetRoom)
	default:
		fmt.Fprintln(tw, "Device:\tnot enrolled (`roomctl fleet enroll CODE`)")
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format(time.DateTime)
	}
	if st.Enrolled {
		fmt.Fprintf(tw, "Last check-in:\t%s\n", when(st.LastCheckIn))
		if st.LastError != "" {
			fmt.Fprintf(tw, "Last error:\t%s\n", st.LastError)
		}
		fmt.Fprintf(tw, "Next check-in:\t%s\n", when(st.NextCheckIn))
		fmt.Fprintf(tw, "Certificate:\tuntil %s\n", when(st.CertificateExpires))
		if st.Profile != "" {
			fmt.Fprintf(tw, "Profile:\t%s\n", st.Profile)
		}
		fmt.Fprintf(tw, "Undelivered:\t%d\n", st.Pending)
	}
	return tw.Flush()
}
