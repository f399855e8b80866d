package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// update runs `roomctl update`: the room's software updates.
func (a *app) update(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "status" {
		args = args[1:]
	}
	if err := noArgs(args); err != nil {
		return err
	}
	st, err := a.client.Update(ctx)
	if err != nil {
		return err
	}
	return a.printUpdate(st)
}

func (a *app) printUpdate(st apiv1.UpdateStatus) error {
	if a.json {
		return json.NewEncoder(a.out).Encode(st)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	running := st.Running
	if st.Slot != "" {
		running += " (slot " + st.Slot + ")"
	}
	fmt.Fprintf(tw, "Running:\t%s\n", running)
	if !st.Enabled {
		fmt.Fprintf(tw, "Updates:\toff: %s\n", st.Disabled)
		return tw.Flush()
	}
	fmt.Fprintf(tw, "Hardware:\t%s\n", st.Hardware)
	state := st.State
	if st.Version != "" {
		state += " " + st.Version
		if st.Rollout != "" {
			state += " (rollout " + st.Rollout + ")"
		}
	}
	fmt.Fprintf(tw, "State:\t%s\n", state)
	if st.Length > 0 && st.State == apiv1.UpdateDownloading {
		fmt.Fprintf(tw, "Progress:\t%d of %d bytes (%d%%)\n", st.Written, st.Length, st.Written*100/st.Length)
	}
	switch st.Deferred {
	case apiv1.DeferredWindow:
		fmt.Fprintf(tw, "Waiting:\tfor the maintenance window at %s\n", st.NextWindow.Local().Format(time.DateTime))
	case apiv1.DeferredMeeting:
		fmt.Fprintln(tw, "Waiting:\tfor the meeting to end")
	}
	if st.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", st.Reason)
	}
	if len(st.NeverRetry) > 0 {
		fmt.Fprintf(tw, "Never retried:\t%s\n", strings.Join(st.NeverRetry, ", "))
	}
	fmt.Fprintf(tw, "Security floor:\t%d\n", st.SecurityFloor)
	return tw.Flush()
}
