package nettest

import "testing"

func TestJudge(t *testing.T) {
	stunOK := Check{Kind: KindSTUN, Transport: TransportUDP, Host: "stun.example.com", OK: true}
	stunTimeout := Check{Kind: KindSTUN, Transport: TransportUDP, Host: "stun.example.com", Failure: FailTimeout}
	turn := func(transport string, ok bool, f Failure) Check {
		return Check{Kind: KindTURN, Transport: transport, Host: "turn.example.com", OK: ok, Failure: f}
	}
	tests := []struct {
		name   string
		checks []Check
		want   Verdict
	}{
		{"nothing configured", nil,
			Verdict{LevelWarning, "No STUN or TURN server configured: the network could not be tested", ""}},
		{"only unsupported URLs", []Check{{Kind: KindSTUN, Transport: TransportTLS, Failure: FailUnsupported}},
			Verdict{LevelWarning, "No STUN or TURN server configured: the network could not be tested", ""}},
		{"all good", []Check{stunOK, turn(TransportUDP, true, ""), turn(TransportTCP, true, ""), turn(TransportTLS, true, "")},
			Verdict{LevelOK, "All good: calls can use UDP directly", "udp"}},
		{"STUN only", []Check{stunOK},
			Verdict{LevelOK, "All good: calls can use UDP directly", "udp"}},
		{"TURN over UDP only", []Check{turn(TransportUDP, true, "")},
			Verdict{LevelOK, "All good: calls can use UDP directly", "udp"}},
		{"UDP fine, TURN down", []Check{stunOK, turn(TransportTCP, false, FailUnreachable)},
			Verdict{LevelWarning, "Calls can use UDP directly, but no TURN server could be reached", "udp"}},
		{"UDP fine, credentials refused", []Check{stunOK, turn(TransportUDP, false, FailAuth), turn(TransportTLS, false, FailAuth)},
			Verdict{LevelWarning, "TURN credentials refused by turn.example.com: calls can use UDP directly, but not through TURN", "udp"}},
		{"UDP blocked, TCP works", []Check{stunTimeout, turn(TransportUDP, false, FailTimeout), turn(TransportTCP, true, ""), turn(TransportTLS, true, "")},
			Verdict{LevelWarning, "UDP blocked: calls will use TURN over TCP", "turn-tcp"}},
		{"UDP blocked, TLS only", []Check{stunTimeout, turn(TransportUDP, false, FailTimeout), turn(TransportTCP, false, FailTimeout), turn(TransportTLS, true, "")},
			Verdict{LevelWarning, "UDP blocked: calls will use TURN over TLS", "turn-tls"}},
		{"UDP blocked, no TURN", []Check{stunTimeout},
			Verdict{LevelFail, "No TURN server configured and UDP is blocked: calls from this network will fail", ""}},
		{"UDP blocked, credentials refused", []Check{stunTimeout, turn(TransportTCP, false, FailAuth), turn(TransportTLS, false, FailAuth)},
			Verdict{LevelFail, "TURN credentials refused by turn.example.com: calls from this network will fail", ""}},
		{"UDP blocked, TURN unreachable", []Check{stunTimeout, turn(TransportUDP, false, FailTimeout), turn(TransportTLS, false, FailTLS)},
			Verdict{LevelFail, "UDP blocked and no TURN server could be reached: calls from this network will fail", ""}},
		{"UDP untested, TLS works", []Check{turn(TransportTLS, true, "")},
			Verdict{LevelOK, "UDP not tested (no STUN server configured): calls will use TURN over TLS", "turn-tls"}},
		{"UDP untested, TURN down", []Check{turn(TransportTCP, false, FailUnreachable)},
			Verdict{LevelFail, "No TURN server could be reached: calls from this network will fail", ""}},
		{"UDP blocked, one server refuses, other works", []Check{
			stunTimeout,
			{Kind: KindTURN, Transport: TransportTCP, Host: "old.example.com", Failure: FailAuth},
			turn(TransportTLS, true, ""),
		}, Verdict{LevelWarning, "UDP blocked: calls will use TURN over TLS; TURN credentials refused by old.example.com", "turn-tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Judge(Result{Checks: tt.checks}); got != tt.want {
				t.Errorf("Judge() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url                         string
		kind, transport, host, port string
		bad                         bool
	}{
		{"stun:stun.example.com", KindSTUN, TransportUDP, "stun.example.com", "3478", false},
		{"stun:10.0.0.1:19302", KindSTUN, TransportUDP, "10.0.0.1", "19302", false},
		{"turn:turn.example.com?transport=tcp", KindTURN, TransportTCP, "turn.example.com", "3478", false},
		{"turn:[2001:db8::1]:3479?transport=udp", KindTURN, TransportUDP, "2001:db8::1", "3479", false},
		{"turn:[2001:db8::1]", KindTURN, TransportUDP, "2001:db8::1", "3478", false},
		{"turns:turn.example.com", KindTURN, TransportTLS, "turn.example.com", "5349", false},
		{"turns:turn.example.com:443?transport=tcp", KindTURN, TransportTLS, "turn.example.com", "443", false},
		{"turns:turn.example.com?transport=udp", KindTURN, TransportTLS, "turn.example.com", "5349", true},
		{"stuns:stun.example.com", KindSTUN, TransportTLS, "stun.example.com", "5349", true},
		{"http://example.com", "", "", "", "", true},
		{"turn:host:notaport", KindTURN, TransportUDP, "host", "notaport", true},
		{"turn:", KindTURN, TransportUDP, "", "3478", true},
		{"turn:h?transport=sctp", KindTURN, TransportUDP, "h", "3478", true},
	}
	for _, tt := range tests {
		got := parseURL(tt.url, "u", "p")
		if (got.err != nil) != tt.bad {
			t.Errorf("parseURL(%q) error %v, want error: %v", tt.url, got.err, tt.bad)
		}
		if tt.kind != "" && (got.kind != tt.kind || got.transport != tt.transport || got.host != tt.host || got.port != tt.port) {
			t.Errorf("parseURL(%q) = %s %s %s %s, want %s %s %s %s", tt.url, got.kind, got.transport, got.host, got.port, tt.kind, tt.transport, tt.host, tt.port)
		}
	}
}
