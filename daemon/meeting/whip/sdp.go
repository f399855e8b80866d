package whip

import (
	"errors"
	"fmt"
	"strings"
)

// validateSDP checks, minimally, that s is a session description: the
// media layer parses it for real, but a server's HTML error page or JSON
// labelled application/sdp should fail here with a clear reason rather
// than deep in the media layer.
func validateSDP(s string) error {
	lines := sdpLines(s)
	if len(lines) == 0 || lines[0] != "v=0" {
		return fmt.Errorf("%w: does not start with v=0", ErrBadAnswer)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "m=") {
			return nil
		}
	}
	return fmt.Errorf("%w: no media section (m= line)", ErrBadAnswer)
}

// sdpLines splits an SDP into lines, accepting LF as well as CRLF, and
// drops empty ones.
func sdpLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// restartFragment builds the RFC 8840 SDP fragment of an ICE restart (RFC
// 9725, "ICE Restarts") from the media layer's restart offer: the new ICE
// credentials, and the candidates of the first media section, the one
// every other section is bundled on.
func restartFragment(offer string) (string, error) {
	var ufrag, pwd, options, group, mline, mid string
	var cands []string
	media := -1
	for _, l := range sdpLines(offer) {
		if strings.HasPrefix(l, "m=") {
			media++
			if media == 0 {
				mline = l
			}
			continue
		}
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && ufrag == "":
			ufrag = l
		case strings.HasPrefix(l, "a=ice-pwd:") && pwd == "":
			pwd = l
		case strings.HasPrefix(l, "a=ice-options:") && options == "":
			options = l
		case strings.HasPrefix(l, "a=group:BUNDLE") && media < 0:
			group = l
		case media == 0 && strings.HasPrefix(l, "a=mid:"):
			mid = l
		case media == 0 && strings.HasPrefix(l, "a=candidate:"):
			cands = append(cands, l)
		}
	}
	if ufrag == "" || pwd == "" {
		return "", errors.New("the restart offer has no ICE credentials")
	}
	if mline == "" {
		return "", errors.New("the restart offer has no media section")
	}
	var b strings.Builder
	for _, l := range []string{options, group, ufrag, pwd} {
		if l != "" {
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString(mline + "\r\n")
	if mid != "" {
		b.WriteString(mid + "\r\n")
	}
	for _, c := range cands {
		b.WriteString(c + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String(), nil
}

// applyRestart rewrites the previous answer with the server's restart
// fragment, giving the answer the media layer needs to finish the restart:
// new ICE credentials everywhere, and the fragment's candidates, if it has
// any, in place of the old ones.
func applyRestart(answer, frag string) (string, error) {
	var ufrag, pwd string
	byMid := map[string][]string{}
	var first []string // candidates before any m= line, or without a mid
	curMid, inMedia := "", false
	for _, l := range sdpLines(frag) {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		case strings.HasPrefix(l, "m="):
			inMedia, curMid = true, ""
		case strings.HasPrefix(l, "a=mid:"):
			curMid = strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=candidate:"):
			if inMedia && curMid != "" {
				byMid[curMid] = append(byMid[curMid], l)
			} else {
				first = append(first, l)
			}
		}
	}
	if ufrag == "" || pwd == "" {
		return "", fmt.Errorf("%w: the server's fragment has no ICE credentials", ErrRestartFailed)
	}
	replace := len(first) > 0 || len(byMid) > 0

	var out []string
	media, mid := -1, ""
	flush := func() {
		if !replace || media < 0 {
			return
		}
		cands := byMid[mid]
		if media == 0 {
			cands = append(append([]string(nil), first...), cands...)
		}
		out = append(out, cands...)
		if len(cands) > 0 {
			out = append(out, "a=end-of-candidates")
		}
	}
	for _, l := range sdpLines(answer) {
		switch {
		case strings.HasPrefix(l, "m="):
			flush()
			media, mid = media+1, ""
		case strings.HasPrefix(l, "a=mid:"):
			mid = strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			l = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			l = "a=ice-pwd:" + pwd
		case replace && (strings.HasPrefix(l, "a=candidate:") || l == "a=end-of-candidates"):
			continue
		}
		out = append(out, l)
	}
	flush()
	return strings.Join(out, "\r\n") + "\r\n", nil
}
