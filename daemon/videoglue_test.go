package daemon

import "testing"

func TestIsScreenShare(t *testing.T) {
	for desc, want := range map[string]bool{
		"screen":            true,
		"Screen share":      true,
		"Presentation":      true,
		"my DESKTOP":        true,
		"slides":            true,
		"camera":            false,
		"":                  false,
		"Logitech BRIO":     false,
		"front-of-room cam": false,
	} {
		if got := isScreenShare(desc); got != want {
			t.Errorf("isScreenShare(%q) = %v, want %v", desc, got, want)
		}
	}
}
