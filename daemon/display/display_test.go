package display

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type facts struct {
	mu       sync.Mutex
	inCall   bool
	meetings []Interval
}

func (f *facts) InMeeting() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.inCall }
func (f *facts) Meetings(from, to time.Time) []Interval {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Interval
	for _, m := range f.meetings {
		if m.End.After(from) && m.Start.Before(to) {
			out = append(out, m)
		}
	}
	return out
}

func mustSchedule(t *testing.T, days []string, from, until string) Schedule {
	t.Helper()
	s, err := ParseSchedule(apiv1.DisplaySchedule{Sleep: true, Days: days, AwakeFrom: from, AwakeUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri"}

func TestParseScheduleErrors(t *testing.T) {
	cases := []struct {
		in   apiv1.DisplaySchedule
		want []string
	}{
		{apiv1.DisplaySchedule{Sleep: true, Days: []string{"mon", "funday", "mon"}, AwakeFrom: "7:00", AwakeUntil: "24:00"},
			[]string{`days[1]: "funday" is not a day`, `days[2]: "mon" is listed twice`, `awakeFrom: "7:00" is not a time of day`, `awakeUntil: "24:00" is not a time of day`}},
		{apiv1.DisplaySchedule{Sleep: true, Days: []string{}, AwakeFrom: "07:00", AwakeUntil: "19:00"}, []string{"days: list the days"}},
		{apiv1.DisplaySchedule{Sleep: true, Days: []string{"sat"}, AwakeFrom: "07:00", AwakeUntil: "07:00"}, []string{"awakeUntil: must differ from awakeFrom (07:00)"}},
	}
	for _, c := range cases {
		_, err := ParseSchedule(c.in)
		if err == nil {
			t.Errorf("%+v accepted", c.in)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", c.in, err, w)
			}
		}
	}
	// Sleep off with an empty schedule is fine: the display never sleeps.
	if _, err := ParseSchedule(apiv1.DisplaySchedule{AwakeFrom: "07:00", AwakeUntil: "19:00"}); err != nil {
		t.Errorf("sleep off: %v", err)
	}
	// Round trip, Monday first.
	s := mustSchedule(t, []string{"sun", "MON", "fri"}, "07:05", "19:30")
	if w := s.Wire(); strings.Join(w.Days, ",") != "mon,fri,sun" || w.AwakeFrom != "07:05" || w.AwakeUntil != "19:30" || !w.Sleep {
		t.Errorf("wire form %+v", w)
	}
}

func TestSchedule(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tt, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	office := mustSchedule(t, weekdays, "07:00", "19:00")
	night := mustSchedule(t, []string{"fri"}, "22:00", "06:00") // Friday night into Saturday
	cases := []struct {
		name   string
		s      Schedule
		now    string
		state  string
		reason string
		next   string // "" none
	}{
		{"always", AlwaysOn, "2026-11-21 03:00", "awake", "always", ""},
		{"weekday morning", office, "2026-11-20 06:59", "asleep", "schedule", "2026-11-20 07:00"},
		{"weekday day", office, "2026-11-20 07:00", "awake", "schedule", "2026-11-20 19:00"},
		{"weekday evening", office, "2026-11-20 19:00", "asleep", "schedule", "2026-11-23 07:00"},
		{"weekend", office, "2026-11-21 12:00", "asleep", "schedule", "2026-11-23 07:00"},
		{"midnight crossing, before", night, "2026-11-20 21:59", "asleep", "schedule", "2026-11-20 22:00"},
		{"midnight crossing, friday", night, "2026-11-20 23:30", "awake", "schedule", "2026-11-21 06:00"},
		{"midnight crossing, saturday", night, "2026-11-21 05:59", "awake", "schedule", "2026-11-21 06:00"},
		{"midnight crossing, after", night, "2026-11-21 06:00", "asleep", "schedule", "2026-11-27 22:00"},
		// DST begins in Berlin on Sunday 2026-03-29 (02:00 → 03:00) and
		// ends on Sunday 2026-10-25 (03:00 → 02:00): wall times hold.
		{"spring forward", mustSchedule(t, []string{"sun"}, "07:00", "19:00"), "2026-03-29 01:30", "asleep", "schedule", "2026-03-29 07:00"},
		{"fall back", mustSchedule(t, []string{"sun"}, "07:00", "19:00"), "2026-10-25 01:30", "asleep", "schedule", "2026-10-25 07:00"},
		{"span from a missing hour", mustSchedule(t, []string{"sun"}, "02:30", "04:00"), "2026-03-29 01:59", "asleep", "schedule", "2026-03-29 03:30"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := compute(c.s, berlin, time.Time{}, &facts{}, at(c.now))
			if got.State != c.state || got.Reason != c.reason {
				t.Errorf("at %s: %s/%s, want %s/%s", c.now, got.State, got.Reason, c.state, c.reason)
			}
			var want time.Time
			if c.next != "" {
				want = at(c.next).UTC()
			}
			if !got.NextChange.Equal(want) {
				t.Errorf("at %s: next change %v, want %v", c.now, got.NextChange.In(berlin), want.In(berlin))
			}
		})
	}
	// The spring-forward day really is an hour shorter: 07:00 CEST is 05:00 UTC.
	got := compute(mustSchedule(t, []string{"sun"}, "07:00", "19:00"), berlin, time.Time{}, &facts{}, at("2026-03-29 01:30"))
	if want := time.Date(2026, 3, 29, 5, 0, 0, 0, time.UTC); !got.NextChange.Equal(want) {
		t.Errorf("DST: next change %v, want %v", got.NextChange, want)
	}
}

func TestMeetingsAndTouch(t *testing.T) {
	loc := time.UTC
	office := mustSchedule(t, weekdays, "07:00", "19:00")
	sat := time.Date(2026, 11, 21, 12, 0, 0, 0, loc) // a Saturday: asleep by schedule
	meeting := Interval{Start: sat.Add(30 * time.Minute), End: sat.Add(90 * time.Minute)}
	f := &facts{meetings: []Interval{meeting}}

	check := func(now time.Time, touch time.Time, state, reason string, next time.Time) {
		t.Helper()
		got := compute(office, loc, touch, f, now)
		if got.State != state || got.Reason != reason || !got.NextChange.Equal(next) {
			t.Errorf("at %s: %+v, want %s/%s next %v", now.Format("15:04"), got, state, reason, next)
		}
	}
	check(sat, time.Time{}, "asleep", "schedule", meeting.Start.Add(-Lead))
	check(meeting.Start.Add(-Lead), time.Time{}, "awake", "upcoming", meeting.End)
	check(meeting.Start, time.Time{}, "awake", "meeting", meeting.End)
	check(meeting.End, time.Time{}, "asleep", "schedule", time.Date(2026, 11, 23, 7, 0, 0, 0, loc))
	// A touch keeps it awake for WakeFor from the touch.
	touch := sat.Add(-5 * time.Minute)
	check(sat, touch, "awake", "touched", touch.Add(WakeFor))
	// A touch running into the lead time: awake straight through.
	touch = meeting.Start.Add(-Lead - 5*time.Minute)
	check(touch, touch, "awake", "touched", meeting.End)
	// In a call not on the calendar: awake, no known end.
	f.inCall = true
	check(sat, time.Time{}, "awake", "meeting", time.Time{})
}

func TestDisplayPublishesChanges(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)} // Saturday
	var mu sync.Mutex
	var got []apiv1.DisplayState
	power := &fakePower{}
	d := New(Options{
		Schedule: mustSchedule(t, weekdays, "07:00", "19:00"), Location: time.UTC, Now: clk.Now, Power: power,
		OnChange: func(s apiv1.DisplayState) { mu.Lock(); got = append(got, s); mu.Unlock() },
	})
	if st := d.Update(); st.State != "asleep" {
		t.Fatalf("initial %+v", st)
	}
	if st := d.Update(); st.State != "asleep" {
		t.Fatal(st)
	}
	st := d.Wake()
	if st.State != "awake" || st.Reason != "touched" || !st.NextChange.Equal(clk.Now().Add(WakeFor)) {
		t.Fatalf("after a touch %+v", st)
	}
	clk.Set(clk.Now().Add(WakeFor))
	d.Update()
	d.SetSchedule(AlwaysOn, time.UTC)
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, s := range got {
		kinds = append(kinds, s.State+"/"+s.Reason)
	}
	if want := "asleep/schedule awake/touched asleep/schedule awake/always"; strings.Join(kinds, " ") != want {
		t.Errorf("published %q, want %q", strings.Join(kinds, " "), want)
	}
	if want := "off on off on"; power.String() != want {
		t.Errorf("power %q, want %q", power.String(), want)
	}
}

type fakePower struct {
	mu  sync.Mutex
	ops []string
}

func (p *fakePower) SetOn(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops = append(p.ops, map[bool]string{true: "on", false: "off"}[on])
	return nil
}

func (p *fakePower) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.ops, " ")
}

func TestRunEndsWithContext(t *testing.T) {
	d := New(Options{Schedule: AlwaysOn})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, time.Hour); close(done) }()
	d.Wake() // kicks the loop
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end")
	}
}

// countingFacts counts how often the display asks about meetings.
type countingFacts struct {
	facts
	calls atomic.Int64
}

func (f *countingFacts) InMeeting() bool { f.calls.Add(1); return f.facts.InMeeting() }

// Run waits between evaluations: its own re-evaluation must not wake it
// again (that spun a core in roomd).
func TestRunWaitsBetweenEvaluations(t *testing.T) {
	f := &countingFacts{}
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	d := New(Options{Schedule: mustSchedule(t, weekdays, "07:00", "19:00"), Location: time.UTC, Now: clk.Now, Facts: f})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, time.Hour); close(done) }()
	time.Sleep(300 * time.Millisecond)
	d.Update() // an outside change: one more evaluation by Run at most
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	if n := f.calls.Load(); n < 2 || n > 4 {
		t.Errorf("%d evaluations in 0.6 s with nothing changing; want 2 to 4", n)
	}
}
