package calendar

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata (review the diff!)")

// golden is what a corpus file is expected to give.
type golden struct {
	Occurrences []Occurrence `json:"occurrences"`
	Problems    []string     `json:"problems,omitempty"`
}

// corpusNow is a Monday morning in the room (Berlin); the corpus's
// window is two weeks, across the US change to summer time on 8 March.
var corpusNow = time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)

const corpusDays = 14

func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ics")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ics")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cal, err := Parse(data, Options{Location: berlin(t), Classifier: testClassifier})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := golden{Occurrences: cal.Upcoming(corpusNow, corpusDays)}
			for _, p := range cal.Problems() {
				got.Problems = append(got.Problems, p.Error())
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			path := strings.TrimSuffix(f, ".ics") + ".golden.json"
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("golden file: %v (run go test -update and review it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s differs from %s:\n%s", f, path, buf.String())
			}
		})
	}
}
