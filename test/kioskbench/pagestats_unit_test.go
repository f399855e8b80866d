package kioskbench

import (
	"strings"
	"testing"
)

func TestParsePageStats(t *testing.T) {
	// As roomkiosk -console prints them: WebKit puts the source first.
	log := `time=2026-11-21T10:00:00Z level=INFO msg="roomkiosk started"
CONSOLE LOG atrium-videostats {"track":2,"secs":5,"receivedFps":30,"decodedFps":29.8,"drawnFps":17.5,"skipped":3,"superseded":60,"flushes":1,"resets":0,"keyRequests":0,"queueMax":9,"decodeMs":{"p50":8,"p90":50,"max":90},"drawMs":{"p50":12,"p90":19,"max":30},"waitMs":{"p50":8,"p90":15,"max":22},"arrivalMaxMs":90,"canvas":"1636x920","video":"1280x720"}
CONSOLE LOG atrium-videostats {"track":1,"secs":5,"receivedFps":30,"decodedFps":30,"drawnFps":15,"skipped":0,"superseded":75,"flushes":0,"resets":1,"keyRequests":1,"queueMax":2,"decodeMs":null,"drawMs":{"p50":5,"p90":9,"max":13},"waitMs":{"p50":10,"p90":20,"max":30},"arrivalMaxMs":70,"canvas":"446x251","video":"1280x720"}
CONSOLE LOG atrium-videostats {not json
CONSOLE LOG atrium-videostats {"track":3,"secs":0}
`
	ps := parsePageStats(log)
	if len(ps) != 2 {
		t.Fatalf("parsed %d lines, want the 2 complete ones: %+v", len(ps), ps)
	}
	if p := ps[0]; p.Track != 2 || p.DrawnFPS != 17.5 || p.QueueMax != 9 || p.DrawMs == nil || p.DrawMs.P50 != 12 || p.Canvas != "1636x920" {
		t.Errorf("first line parsed as %+v", p)
	}
	if ps[1].DecodeMs != nil {
		t.Errorf("a null timing parsed as %+v", ps[1].DecodeMs)
	}
	got := pageSummary(ps)
	for _, want := range []string{"30.0 / 30.0 / 17.5", "3 / 135 / 1 / 1", "\t 9\t", "446x251"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if got := pageSummary(nil); got != "none reported" {
		t.Errorf("summary of nothing = %q", got)
	}
}
