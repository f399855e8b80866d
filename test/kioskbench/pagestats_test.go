package kioskbench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// pageStatsPrefix starts the lines ui/web/call.js logs to the console, one
// per tile every few seconds, when its page is loaded with "videostats" in
// the query; roomkiosk's -console copies them to its standard output.
const pageStatsPrefix = "atrium-videostats "

// pageStats is one such line: what one tile did with its frames over
// secs, and how long the steps took inside WebKit.
type pageStats struct {
	Track       int        `json:"track"`
	Secs        float64    `json:"secs"`
	ReceivedFPS float64    `json:"receivedFps"`
	DecodedFPS  float64    `json:"decodedFps"`
	DrawnFPS    float64    `json:"drawnFps"`
	Skipped     int        `json:"skipped"`
	Superseded  int        `json:"superseded"`
	Flushes     int        `json:"flushes"`
	Resets      int        `json:"resets"`
	KeyRequests int        `json:"keyRequests"`
	QueueMax    int        `json:"queueMax"`
	DecodeMs    *quantiles `json:"decodeMs"`
	DrawMs      *quantiles `json:"drawMs"`
	WaitMs      *quantiles `json:"waitMs"`
	ArrivalMax  float64    `json:"arrivalMaxMs"`
	Canvas      string     `json:"canvas"`
	Video       string     `json:"video"`
}

type quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	Max float64 `json:"max"`
}

// parsePageStats picks the statistics lines out of roomkiosk's output. WebKit
// prefixes console messages with their source, so the prefix is searched
// for anywhere in a line; lines that do not parse are ignored.
func parsePageStats(log string) []pageStats {
	var out []pageStats
	for line := range strings.Lines(log) {
		i := strings.Index(line, pageStatsPrefix)
		if i < 0 {
			continue
		}
		var s pageStats
		if json.Unmarshal([]byte(strings.TrimSpace(line[i+len(pageStatsPrefix):])), &s) == nil && s.Secs > 0 {
			out = append(out, s)
		}
	}
	return out
}

// pageSummary is a round's page statistics in one table cell: the medians
// over all lines of all tiles of the rates and of the per-line medians, and
// the sums of the counts.
func pageSummary(ps []pageStats) string {
	if len(ps) == 0 {
		return "none reported"
	}
	med := func(f func(pageStats) float64) float64 {
		var v []float64
		for _, p := range ps {
			v = append(v, f(p))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	q := func(get func(pageStats) *quantiles) func(pageStats) float64 {
		return func(p pageStats) float64 {
			if x := get(p); x != nil {
				return x.P50
			}
			return 0
		}
	}
	var skipped, superseded, flushes, resets, queueMax int
	for _, p := range ps {
		skipped += p.Skipped
		superseded += p.Superseded
		flushes += p.Flushes
		resets += p.Resets
		queueMax = max(queueMax, p.QueueMax)
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f\t %.1f / %.1f / %.1f ms\t %d / %d / %d / %d\t %d\t %s",
		med(func(p pageStats) float64 { return p.ReceivedFPS }),
		med(func(p pageStats) float64 { return p.DecodedFPS }),
		med(func(p pageStats) float64 { return p.DrawnFPS }),
		med(q(func(p pageStats) *quantiles { return p.DecodeMs })),
		med(q(func(p pageStats) *quantiles { return p.WaitMs })),
		med(q(func(p pageStats) *quantiles { return p.DrawMs })),
		skipped, superseded, flushes, resets, queueMax, ps[len(ps)-1].Canvas)
}
