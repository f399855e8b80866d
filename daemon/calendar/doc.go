// Package calendar reads a room's calendar and turns its invites into the
// agenda the kiosk shows: one Occurrence per meeting instance, with the
// link the room can join (or the named service it cannot join yet).
//
// It has three parts:
//
//   - Parse reads an iCalendar (RFC 5545) document. The parser is written
//     here, on the standard library, so that every problem names its line
//     and property, and so that a broken event costs only that event: it is
//     skipped with a Problem while the others are kept. Only a document that
//     is not iCalendar at all is an error.
//   - Calendar.Occurrences expands the events into the instances that
//     overlap a window: time zones (IANA names, a small table of Windows
//     names, VTIMEZONE rules), all-day events, RRULE (the subset calendar
//     servers emit for meetings), RDATE, EXDATE and RECURRENCE-ID overrides.
//     Each instance's meeting link is found by ExtractLinks and judged by an
//     injected Classifier (roomd passes its meeting engine).
//   - Fetcher downloads an iCalendar URL on a schedule with conditional
//     requests (or queries a CalDAV collection, see caldav.go), and keeps
//     the last good copy on disk for when the room is offline.
//
// Decisions, so that the agenda is predictable:
//
//   - Cancelled events and cancelled instances (STATUS:CANCELLED, or a
//     METHOD:CANCEL document) are kept and marked Cancelled, with no link:
//     people who walk in for a meeting see that it is off rather than an
//     empty slot. Instances removed with EXDATE are gone.
//   - Private events (CLASS:PRIVATE or CONFIDENTIAL) are titled "Private
//     meeting" and carry nothing taken from the summary, location or
//     description except the meeting link: the room is invited and must be
//     able to join. The link is shown only as a Join button by the kiosk;
//     API consumers should treat Occurrence.URL as a secret (it may hold a
//     passcode) and join by Occurrence.ID.
//   - Floating times (no zone) and all-day dates are in the room's zone.
//     An unknown TZID with no usable VTIMEZONE is read in the room's zone
//     too, with a Problem, rather than losing the meeting.
//   - All-day events start and end at midnight in the room's zone; End is
//     exclusive.
package calendar
