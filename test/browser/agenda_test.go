package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// event is one VEVENT of a test calendar.
type event struct {
	uid, summary    string
	start, end      time.Time
	location, urlx  string // LOCATION and URL
	cancelled, priv bool
}

// writeICS writes the events as an iCalendar file, times in UTC.
func writeICS(t *testing.T, path string, events ...event) {
	t.Helper()
	const stamp = "20060102T150405Z"
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Atrium//agenda test//EN\r\n")
	for _, e := range events {
		fmt.Fprintf(&b, "BEGIN:VEVENT\r\nUID:%s@atrium.test\r\nDTSTAMP:%s\r\n", e.uid, time.Now().UTC().Format(stamp))
		fmt.Fprintf(&b, "DTSTART:%s\r\nDTEND:%s\r\nSUMMARY:%s\r\n", e.start.UTC().Format(stamp), e.end.UTC().Format(stamp), e.summary)
		if e.location != "" {
			fmt.Fprintf(&b, "LOCATION:%s\r\n", e.location)
		}
		if e.urlx != "" {
			fmt.Fprintf(&b, "URL:%s\r\n", e.urlx)
		}
		if e.cancelled {
			b.WriteString("STATUS:CANCELLED\r\n")
		}
		if e.priv {
			b.WriteString("CLASS:PRIVATE\r\n")
		}
		b.WriteString("END:VEVENT\r\n")
	}
	b.WriteString("END:VCALENDAR\r\n")
	// Write and rename, so that roomd never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// meetingJS is an expression for the li of the meeting titled title.
func meetingJS(title string) string {
	return fmt.Sprintf(`([...document.querySelectorAll("#agenda li.meeting")].find((li) => text2(li.querySelector(".meeting-title")) === %s) || document.createElement("li"))`,
		chromium.JSString(title))
}

// agendaHelpers extends pageHelpers for the agenda's expressions.
const agendaHelpers = `const text2 = (n) => n ? n.textContent.replace(/\s+/g, " ").trim() : "";`

// TestKioskAgenda gives roomd a calendar file with a meeting under way, one
// about to start with a Janus link, one with a Zoom link, a cancelled one
// and a private one, and checks the home screen's agenda: states, the Join
// button on the one meeting it applies to, the Zoom reason, the cancelled
// styling, the private title; that Join reaches roomd with the meeting's id;
// that an edit of the calendar reaches the page through the event stream;
// and that a calendar roomd can no longer read is shown as stale.
func TestKioskAgenda(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ics := filepath.Join(t.TempDir(), "room.ics")
	planning := event{uid: "planning", summary: "Weekly planning", start: now.Add(-10 * time.Minute), end: now.Add(20 * time.Minute)}
	review := event{uid: "review", summary: "Design review", start: now.Add(2 * time.Minute), end: now.Add(32 * time.Minute),
		location: "janus+wss://janus.invalid/?room=1"}
	vendor := event{uid: "vendor", summary: "Vendor call", start: now.Add(3 * time.Hour), end: now.Add(3*time.Hour + 30*time.Minute),
		urlx: "https://example.zoom.us/j/123456789?pwd=abcdef"}
	standup := event{uid: "standup", summary: "Cancelled standup", start: now.Add(time.Hour), end: now.Add(time.Hour + 15*time.Minute), cancelled: true}
	salary := event{uid: "salary", summary: "Salary talk", start: now.Add(2 * time.Hour), end: now.Add(2*time.Hour + 30*time.Minute), priv: true}
	writeICS(t, ics, planning, review, vendor, standup, salary)

	d := roomdtest.Start(t, roomdtest.Options{Config: func(c *config.Config) {
		c.Calendar.File = ics
		c.Calendar.Refresh = config.Duration{Duration: time.Second}
	}})
	k := startKioskFor(t, 2*time.Minute)
	start := time.Now()
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	k.waitFor("the agenda", `document.querySelectorAll("#agenda li.meeting").length === 5`)
	t.Logf("agenda shown %v after opening the page", time.Since(start).Round(time.Millisecond))

	states := map[string]string{
		planning.summary:  "now",
		review.summary:    "soon",
		vendor.summary:    "upcoming",
		standup.summary:   "cancelled",
		"Private meeting": "upcoming",
	}
	for title, want := range states {
		if got := k.agendaEval(meetingJS(title) + `.dataset.state`); got != want {
			k.fatalf("meeting %q: data-state %q, want %q; agenda: %s", title, got, want, k.agendaText())
		}
	}
	// The meeting under way leads, big.
	if got := k.agendaEval(`text2(el("#agenda").firstElementChild.querySelector(".meeting-title")) + " " + el("#agenda").firstElementChild.classList.contains("featured")`); got != planning.summary+" true" {
		k.fatalf("first agenda entry (title, featured) = %q, want the meeting under way featured", got)
	}
	// Times in the page's local time zone, which is this process's.
	for _, e := range []event{planning, review} {
		want := e.start.In(time.Local).Format("2006-01-02T15:04") + " " + e.end.In(time.Local).Format("2006-01-02T15:04")
		got := k.agendaEval(`[...` + meetingJS(e.summary) + `.querySelectorAll("time")].map((t) => t.dateTime).join(" ")`)
		if got != want {
			k.fatalf("meeting %q: times %q, want %q", e.summary, got, want)
		}
	}
	// Join only where it applies: the Janus meeting about to start.
	if got := k.agendaEval(`[...document.querySelectorAll("button.join-meeting")].filter((b) => b.checkVisibility()).map((b) => text2(b.closest("li").querySelector(".meeting-title"))).join("|")`); got != review.summary {
		k.fatalf("visible Join buttons on %q, want only on %q", got, review.summary)
	}
	if got := k.agendaEval(`text2(` + meetingJS(vendor.summary) + `.querySelector(".meeting-how"))`); !strings.Contains(strings.ToLower(got), "zoom") {
		k.fatalf("the Zoom meeting says %q, want the reason it cannot be joined", got)
	}
	t.Logf("Zoom meeting: %q; Janus meeting: %q", k.agendaEval(`text2(`+meetingJS(vendor.summary)+`)`), k.agendaEval(`text2(`+meetingJS(review.summary)+`)`))
	if got := k.agendaEval(`(() => { const li = ` + meetingJS(standup.summary) + `; return getComputedStyle(li.querySelector(".meeting-title")).textDecorationLine + " " + (Number(getComputedStyle(li).opacity) < 1); })()`); got != "line-through true" {
		k.fatalf("cancelled meeting: text-decoration and dimmed = %q, want line-through true", got)
	}
	if got := k.agendaEval(`document.body.textContent.includes("Salary talk")`); got != "false" {
		k.fatalf("the private meeting's real title is on the page")
	}
	if got := k.agendaEval(`el("#agenda-empty").checkVisibility() + " " + el("#agenda-note").checkVisibility()`); got != "false false" {
		k.fatalf("(no-more-meetings, note) visible = %q, want neither", got)
	}
	// The Join button is a large touch target.
	if got := k.agendaEval(`(() => { const r = el("button.join-meeting:not([hidden])").getBoundingClientRect(); return r.width >= 64 && r.height >= 64; })()`); got != "true" {
		k.fatalf("the Join button is smaller than 64x64 px")
	}
	k.checkFits("agenda at 1920x1080")
	k.checkAgendaFits("agenda at 1920x1080")
	k.screenshot("kiosk-agenda.png", 1920, 1080)
	k.do("resize to 1280x720", chromedp.EmulateViewport(1280, 720))
	k.checkFits("agenda at 1280x720")
	k.checkAgendaFits("agenda at 1280x720")
	k.screenshot("kiosk-agenda-720p.png", 1280, 720)
	k.do("back to 1920x1080", chromedp.EmulateViewport(1920, 1080))

	// A TV remote reaches the Join button with the arrow keys.
	reached := false
	for range 12 {
		k.do("press the down arrow", chromedp.KeyEvent(kb.ArrowDown))
		if k.agendaEval(`document.activeElement.classList.contains("join-meeting")`) == "true" {
			reached = true
			break
		}
	}
	if !reached {
		k.fatalf("the arrow keys never reach the agenda's Join button (focus on %q)", k.agendaEval(`document.activeElement.outerHTML.slice(0, 80)`))
	}

	// roomd refuses an id it does not know: the id the page sends matters.
	resp, err := http.Post(d.URL+"/api/v1/calendar/join", "application/json", strings.NewReader(`{"id":"no-such-meeting"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /api/v1/calendar/join with an unknown id: status %d, want 404", resp.StatusCode)
	}

	// Join: roomd starts joining the meeting's Janus server, which does not
	// exist, so the meeting fails; the states prove the click reached it.
	k.do("watch the meeting state", chromedp.Evaluate[chromedp.Void](`(() => {
		window.seenStates = [];
		const node = document.querySelector("#meeting-state");
		new MutationObserver(() => window.seenStates.push(node.dataset.state)).observe(node, { attributes: true, attributeFilter: ["data-state"] });
	})()`))
	k.do("press Enter on Join", chromedp.KeyEvent("\r"))
	k.waitFor("the meeting to fail", `el("#meeting-state").dataset.state === "failed"`)
	if got := k.agendaEval(`window.seenStates.join(",")`); !strings.HasPrefix(got, "joining,") {
		k.fatalf("meeting states after Join: %q, want joining then failed", got)
	}
	t.Logf("after Join: states %q, %q", k.agendaEval(`window.seenStates.join(",")`), k.agendaEval(`text("#meeting-state") + " / " + text("#meeting-detail")`))
	if !strings.Contains(d.Log(), "janus.invalid") {
		k.fatalf("roomd's log does not mention the meeting's server janus.invalid:\n%s", d.Log())
	}
	k.agendaWait("the Join button back after the failure", meetingJS(review.summary)+`.querySelector("button.join-meeting").checkVisibility()`)

	// An edit of the calendar reaches the page as a calendar.changed event,
	// not by a new fetch: count the page's GETs of the calendar from now.
	k.do("count calendar fetches", chromedp.Evaluate[chromedp.Void](`(() => {
		window.calendarFetches = 0;
		const orig = window.fetch;
		window.fetch = (input, init) => {
			if (String(input).endsWith("/api/v1/calendar")) window.calendarFetches++;
			return orig(input, init);
		};
	})()`))
	review.summary = "Design review (moved)"
	late := event{uid: "late", summary: "Late addition", start: now.Add(4 * time.Hour), end: now.Add(5 * time.Hour)}
	edited := time.Now()
	writeICS(t, ics, planning, review, vendor, standup, salary, late)
	k.agendaWait("the edited agenda", meetingJS(review.summary)+`.dataset.state === "soon" && `+meetingJS(late.summary)+`.dataset.state === "upcoming" && document.querySelectorAll("#agenda li.meeting").length === 6`)
	t.Logf("edited calendar shown %v after the write", time.Since(edited).Round(time.Millisecond))
	if got := k.agendaEval(`window.calendarFetches`); got != "0" {
		k.fatalf("the page fetched the calendar %s times: the edit did not come as an event", got)
	}

	// A calendar roomd can no longer read: the last good copy stays, marked.
	broken := time.Now()
	if err := os.WriteFile(ics, []byte("this is not iCalendar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k.waitFor("the stale note", `el("#agenda-note").checkVisibility() && /^Showing the calendar from .+; the calendar server cannot be reached/.test(text("#agenda-note"))`)
	t.Logf("stale note %v after breaking the file: %q", time.Since(broken).Round(time.Millisecond), k.agendaEval(`text("#agenda-note")`))
	if got := k.agendaEval(`document.querySelectorAll("#agenda li.meeting").length`); got != "6" {
		k.fatalf("%s meetings shown with a stale calendar, want the last good copy's 6", got)
	}
	k.checkFits("stale agenda at 1920x1080")
	k.screenshot("kiosk-agenda-stale.png", 1920, 1080)
	k.checkConsole()
}

// TestKioskAgendaEndPrompt joins a real Janus room from the agenda, for a
// meeting scheduled to end a few seconds later, and checks the call
// screen's gentle prompt: it appears when the meeting's end passes, with
// the scheduled end; Stay dismisses it and it does not come back. A second
// meeting then checks the prompt's Leave.
func TestKioskAgendaEndPrompt(t *testing.T) {
	srv := janustest.Start(t)
	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	link := fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, janustest.Room)
	ics := filepath.Join(t.TempDir(), "room.ics")
	// The meetings are written once roomd and the page are up, so that a
	// slow build of roomd cannot eat their few seconds.
	writeICS(t, ics)
	d := roomdtest.Start(t, roomdtest.Options{Config: func(c *config.Config) {
		c.Calendar.File = ics
		c.Calendar.Refresh = config.Duration{Duration: time.Second}
	}})
	ctx := roomdtest.Context(t, 3*time.Minute)

	k := startKioskFor(t, 3*time.Minute)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.agendaWait("the empty agenda", `el("#agenda-empty").checkVisibility()`)

	now := time.Now().Truncate(time.Second)
	end := now.Add(20 * time.Second) // long enough to join; the prompt waits for the end
	writeICS(t, ics, event{uid: "short", summary: "Short sync", start: now.Add(-time.Minute), end: end, location: link})
	k.joinFromAgenda("Short sync", end)
	k.waitEndPrompt(ctx, end)
	if got := k.agendaEval(`document.activeElement.id`); got != "end-prompt-stay" {
		k.fatalf("focus with the end prompt on %q, want end-prompt-stay", got)
	}
	k.screenshot("kiosk-end-prompt.png", 1920, 1080)
	k.do("press Stay", chromedp.KeyEvent("\r"))
	k.waitFor("the prompt gone, still in the meeting", `!el("#end-prompt").checkVisibility() && el("#meeting-state").dataset.state === "connected"`)
	// Once only: not again at the next re-evaluation (every 15 s).
	time.Sleep(16 * time.Second)
	if k.agendaEval(`el("#end-prompt").checkVisibility()`) != "false" {
		k.fatalf("the end prompt came back after Stay")
	}
	k.do("press Leave", chromedp.Click(chromedp.CSS("#call-leave-button")))
	k.waitFor("the home screen after leaving", `el("#meeting-state").dataset.state === "left" && !el("#call").checkVisibility()`)

	// The next meeting: this time the prompt's Leave ends the call.
	now = time.Now().Truncate(time.Second)
	end = now.Add(15 * time.Second)
	writeICS(t, ics, event{uid: "next", summary: "Next sync", start: now.Add(-time.Minute), end: end, location: link})
	k.joinFromAgenda("Next sync", end)
	k.waitEndPrompt(ctx, end)
	k.do("press the prompt's Leave", chromedp.Click(chromedp.CSS("#end-prompt-leave")))
	k.waitFor("the home screen after the prompt's Leave", `el("#meeting-state").dataset.state === "left" && !el("#call").checkVisibility()`)
	if st, err := d.Client.Status(ctx); err != nil || st.Meeting.State != "left" {
		k.fatalf("roomd's meeting after the prompt's Leave: %+v, %v", st.Meeting, err)
	}
	k.checkConsole()
}

// joinFromAgenda waits for the meeting titled title to be under way with a
// Join button, presses it and waits for the call, which must come before
// the meeting's end.
func (k *kiosk) joinFromAgenda(title string, end time.Time) {
	k.t.Helper()
	k.agendaWait("the meeting under way with Join", meetingJS(title)+`.dataset.state === "now" && `+meetingJS(title)+`.querySelector("button.join-meeting").checkVisibility()`)
	k.do("press Join", chromedp.Click(chromedp.CSS(`#agenda li.featured button.join-meeting`)))
	k.waitFor("the in-call screen", `el("#meeting-state").dataset.state === "connected" && el("#call").checkVisibility()`)
	if time.Now().After(end) {
		k.fatalf("joining took until after the meeting's end (%v): the test cannot see the prompt appear", end)
	}
	if k.agendaEval(`el("#end-prompt").checkVisibility()`) != "false" {
		k.fatalf("the end prompt shows before the meeting's end")
	}
}

// waitEndPrompt waits for the end prompt, which must name the scheduled end
// in the page's time format.
func (k *kiosk) waitEndPrompt(ctx context.Context, end time.Time) {
	k.t.Helper()
	waitUntil(ctx, k.t, time.Until(end)+waitTimeout, func() bool { return k.agendaEval(`el("#end-prompt").checkVisibility()`) == "true" })
	late := time.Since(end)
	want := fmt.Sprintf("This meeting was scheduled to end at %s.", k.agendaEval(fmt.Sprintf(`new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(%d)`, end.UnixMilli())))
	if got := k.agendaEval(`text("#end-prompt-text")`); got != want {
		k.fatalf("end prompt says %q, want %q", got, want)
	}
	k.t.Logf("end prompt %v after the scheduled end: %q", late.Round(time.Millisecond), want)
}

// waitUntil polls cond until it holds, or fails the test after timeout.
func waitUntil(ctx context.Context, t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agendaEval is eval with the agenda's helpers.
func (k *kiosk) agendaEval(expr string) string {
	k.t.Helper()
	return k.eval(`(() => { ` + agendaHelpers + `; return ` + expr + `; })()`)
}

// agendaWait is waitFor with the agenda's helpers.
func (k *kiosk) agendaWait(what, cond string) {
	k.t.Helper()
	k.waitFor(what, `(() => { `+agendaHelpers+`; return `+cond+`; })()`)
}

// agendaText is the agenda as the page shows it, for failure messages.
func (k *kiosk) agendaText() string {
	return k.agendaEval(`[...document.querySelectorAll("#agenda li.meeting")].map((li) => li.dataset.state + ": " + text2(li)).join(" | ")`)
}

// checkAgendaFits fails the test if the featured meeting or its Join
// button lies outside the viewport or its column.
func (k *kiosk) checkAgendaFits(what string) {
	k.t.Helper()
	got := k.eval(`(() => {
		const bad = [];
		const col = document.querySelector(".overview").getBoundingClientRect();
		for (const sel of ["#agenda li.featured", "#agenda button.join-meeting:not([hidden])", "#agenda-section"]) {
			for (const e of document.querySelectorAll(sel)) {
				const r = e.getBoundingClientRect();
				if (r.left < col.left - 1 || r.right > col.right + 1 || r.top < 0 || r.bottom > innerHeight) {
					bad.push(sel + " outside its column: " + JSON.stringify(r));
				}
			}
		}
		return bad.join("; ");
	})()`)
	if got != "" {
		k.fatalf("%s does not fit: %s", what, got)
	}
}
