package nettest

import (
	"fmt"
	"slices"
	"strings"
)

// Level grades a Verdict.
type Level string

// Verdict levels.
const (
	LevelOK      Level = "ok"      // calls work as well as this network allows
	LevelWarning Level = "warning" // calls work, with a caveat worth fixing
	LevelFail    Level = "fail"    // calls from this network will fail
)

// Verdict is the test's conclusion in plain language, for people in the
// room and the fleet console.
type Verdict struct {
	Level Level  `json:"level"`
	Text  string `json:"text"`
	// Path is how calls will reach media servers: "udp" (directly, or
	// through a TURN relay over UDP), "turn-tcp", "turn-tls", or "" when
	// they cannot.
	Path string `json:"path"`
}

// Judge derives r's verdict from its checks. It is pure: the same checks
// give the same verdict.
func Judge(r Result) Verdict {
	var (
		udpTested, udpOK bool
		turnConfigured   bool
		turnOK           = map[string]bool{}
		refused          []string // hosts that refused the credentials
	)
	for _, c := range r.Checks {
		if c.Failure == FailUnsupported {
			continue
		}
		if c.Transport == TransportUDP {
			udpTested = true
			// A TURN server that answers over UDP, even with an error,
			// shows that UDP passes.
			if c.OK || c.Failure == FailAuth {
				udpOK = true
			}
		}
		if c.Kind != KindTURN {
			continue
		}
		turnConfigured = true
		if c.OK {
			turnOK[c.Transport] = true
		}
		if c.Failure == FailAuth && !slices.Contains(refused, c.Host) {
			refused = append(refused, c.Host)
		}
	}
	refusedText := ""
	if len(refused) > 0 {
		refusedText = "TURN credentials refused by " + strings.Join(refused, ", ")
	}

	switch {
	case !udpTested && !turnConfigured:
		return Verdict{LevelWarning, "No STUN or TURN server configured: the network could not be tested", ""}
	case udpOK:
		switch {
		case refusedText != "":
			return Verdict{LevelWarning, refusedText + ": calls can use UDP directly, but not through TURN", "udp"}
		case turnConfigured && len(turnOK) == 0:
			return Verdict{LevelWarning, "Calls can use UDP directly, but no TURN server could be reached", "udp"}
		}
		return Verdict{LevelOK, "All good: calls can use UDP directly", "udp"}
	}

	// UDP did not pass, or was not tested.
	lead := "UDP blocked"
	if !udpTested {
		lead = "UDP not tested (no STUN server configured)"
	}
	for _, p := range []struct{ transport, path, name string }{
		{TransportTCP, "turn-tcp", "TCP"},
		{TransportTLS, "turn-tls", "TLS"},
	} {
		if turnOK[p.transport] {
			level := LevelWarning
			if !udpTested {
				level = LevelOK
			}
			text := fmt.Sprintf("%s: calls will use TURN over %s", lead, p.name)
			if refusedText != "" {
				text += "; " + refusedText
			}
			return Verdict{level, text, p.path}
		}
	}
	switch {
	case !turnConfigured:
		return Verdict{LevelFail, "No TURN server configured and UDP is blocked: calls from this network will fail", ""}
	case refusedText != "":
		return Verdict{LevelFail, refusedText + ": calls from this network will fail", ""}
	case !udpTested:
		return Verdict{LevelFail, "No TURN server could be reached: calls from this network will fail", ""}
	}
	return Verdict{LevelFail, "UDP blocked and no TURN server could be reached: calls from this network will fail", ""}
}
