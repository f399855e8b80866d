package daemon

import (
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
)

// checkDays is how far ahead a calendar check looks, as the agenda will.
const checkDays = 7

// CheckCalendar implements api.Backend: it reads an iCalendar document as
// the room's agenda would, with the room's own meeting providers judging
// each link, so an admin can test an invite without waiting for it.
func (s *System) CheckCalendar(ics []byte) (apiv1.CalendarCheck, error) {
	cal, err := calendar.Parse(ics, calendar.Options{Location: time.Local, Classifier: calendar.ClassifierFunc(s.Meeting.Classify)})
	if err != nil {
		return apiv1.CalendarCheck{}, err
	}
	out := apiv1.CalendarCheck{Meetings: []apiv1.CalendarMeeting{}, Problems: []string{}}
	for _, o := range cal.Upcoming(s.Deps.Now(), checkDays) {
		out.Meetings = append(out.Meetings, apiv1.CalendarMeeting{
			Start: o.Start, End: o.End, AllDay: o.AllDay, Title: o.Title,
			URL: o.URL, Provider: o.Provider, Joinable: o.Joinable, Reason: o.Reason,
			Private: o.Private, Cancelled: o.Cancelled,
		})
	}
	for _, p := range cal.Problems() {
		out.Problems = append(out.Problems, p.Error())
	}
	return out, nil
}
