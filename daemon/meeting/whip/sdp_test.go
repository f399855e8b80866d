package whip

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateSDP(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		sdp string
		ok  bool
	}{
		{fakeSDP("u", "p", true), true},
		{"v=0\nm=audio 9 RTP/AVP 0\n", true},
		{"", false},
		{"<html>error</html>", false},
		{`{"sdp":"v=0"}`, false},
		{"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", false},
		{"v=1\r\nm=audio 9 RTP/AVP 0\r\n", false},
	} {
		err := validateSDP(c.sdp)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrBadAnswer)) {
			t.Errorf("validateSDP(%q) = %v, want ok %v", c.sdp, err, c.ok)
		}
	}
}

func TestRestartFragment(t *testing.T) {
	noLeaks(t)
	frag, err := restartFragment(fakeSDP("newu", "newp", true))
	if err != nil {
		t.Fatal(err)
	}
	want := "a=group:BUNDLE 0 1\r\na=ice-ufrag:newu\r\na=ice-pwd:newp\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
	if frag != want {
		t.Errorf("fragment:\n%s\nwant:\n%s", frag, want)
	}
	if _, err := restartFragment("v=0\r\nm=audio 9 RTP/AVP 0\r\n"); err == nil {
		t.Error("an offer without credentials made a fragment")
	}
}

func TestApplyRestart(t *testing.T) {
	noLeaks(t)
	answer := fakeSDP("oldu", "oldp", false)

	// Credentials only: candidates stay.
	got, err := applyRestart(answer, "a=ice-ufrag:nu\r\na=ice-pwd:np\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "oldu") || strings.Contains(got, "oldp") || strings.Count(got, "a=ice-ufrag:nu\r\n") != 2 || strings.Count(got, "a=ice-pwd:np\r\n") != 2 {
		t.Errorf("credentials not replaced everywhere:\n%s", got)
	}
	if !hasLine(got, "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host") {
		t.Errorf("old candidates dropped without new ones:\n%s", got)
	}

	// New candidates replace the old, in their mid's section.
	frag := "a=ice-ufrag:nu\r\na=ice-pwd:np\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:9 1 udp 1 10.0.0.9 9999 typ host\r\na=end-of-candidates\r\n"
	got, err = applyRestart(answer, frag)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "127.0.0.1 5000") || strings.Count(got, "a=candidate:") != 1 {
		t.Errorf("candidates not replaced:\n%s", got)
	}
	audio, video, _ := strings.Cut(got, "m=video")
	if !strings.Contains(audio, "a=candidate:9 1 udp 1 10.0.0.9 9999 typ host\r\na=end-of-candidates\r\n") || strings.Contains(video, "a=candidate") {
		t.Errorf("the candidate is not in mid 0's section:\n%s", got)
	}

	if _, err := applyRestart(answer, "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n"); !errors.Is(err, ErrRestartFailed) {
		t.Errorf("a fragment without credentials: err = %v, want ErrRestartFailed", err)
	}
}
