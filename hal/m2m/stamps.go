package m2m

import (
	"time"

	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// maxStamps bounds the inputs remembered without an output: a codec that
// swallows frames must not grow the list forever.
const maxStamps = 64

// stamps maps V4L2 buffer timestamps to the inputs' CapturedAt. A session
// gives each input a timestamp of its own, strictly increasing and in
// microseconds of capture time since the session's first frame (so a
// driver that reads timestamps sees real frame spacing), and finds the
// CapturedAt again from the timestamp the driver copies to the output.
type stamps struct {
	base     time.Time
	started  bool
	last     int64
	pending  []stamp // in input order
	matched  stamp   // the last input an output answered, for repeats
	hasMatch bool
}

type stamp struct {
	ts int64
	at time.Time
}

// add returns the timestamp for an input captured at.
func (s *stamps) add(at time.Time) v4l2.Timeval {
	if !s.started {
		s.base, s.started = at, true
		s.last = -1
	}
	ts := at.Sub(s.base).Microseconds()
	if ts <= s.last {
		ts = s.last + 1
	}
	s.last = ts
	s.pending = append(s.pending, stamp{ts: ts, at: at})
	if len(s.pending) > maxStamps {
		s.pending = s.pending[len(s.pending)-maxStamps:]
	}
	return v4l2.Timeval{Sec: ts / 1e6, Usec: ts % 1e6}
}

// find returns the CapturedAt of the input with timestamp tv and forgets
// it and every earlier input (which the codec skipped). ok is false for a
// timestamp that is no input's.
func (s *stamps) find(tv v4l2.Timeval) (at time.Time, ts int64, ok bool) {
	ts = tv.Sec*1e6 + tv.Usec
	for i, p := range s.pending {
		if p.ts == ts {
			s.matched, s.hasMatch = p, true
			s.pending = s.pending[i+1:]
			return p.at, ts, true
		}
	}
	if s.hasMatch && s.matched.ts == ts {
		return s.matched.at, ts, true
	}
	return time.Time{}, ts, false
}
