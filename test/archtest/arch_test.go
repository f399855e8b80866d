// Package archtest keeps the import arrows of docs/ARCHITECTURE.md pointing
// one way.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/atriumroom/atrium"

type pkg struct {
	ImportPath string
	Deps       []string
}

func listPackages(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		deps[p.ImportPath] = p.Deps
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return deps
}

// rules: packages under a prefix must never depend (even indirectly) on
// packages under any of the forbidden prefixes.
var rules = []struct {
	from      string
	forbidden []string
	why       string
}{
	{"hal", []string{"daemon", "ui", "cmd", "provisioning", "ota"}, "the HAL is the bottom layer: drivers know nothing of the daemon, the UI or providers"},
	{"daemon/apiv1", []string{"daemon/api", "daemon/meeting", "hal", "ui", "daemon/config"}, "the wire contract is importable by any client without the daemon"},
	{"daemon/meeting", []string{"daemon/api", "ui", "daemon/config"}, "the meeting engine takes its settings through its constructor"},
	{"daemon/meeting/rtc", []string{"daemon/meeting/janus", "daemon/meeting/whip"}, "the media layer serves every provider and knows none"},
	{"daemon/meeting/janus", []string{"daemon/meeting/rtc", "daemon/meeting/whip", "hal"}, "providers signal; media is the media layer's, reached through meeting.PeerFactory"},
	{"daemon/meeting/whip", []string{"daemon/meeting/rtc", "daemon/meeting/janus", "hal"}, "providers signal; media is the media layer's, reached through meeting.PeerFactory"},
	{"daemon/config", []string{"hal", "daemon/api", "daemon/meeting", "ui"}, "configuration parsing stays a leaf"},
	{"ui", []string{"daemon", "hal"}, "the kiosk UI talks to roomd through the API only"},
	{"daemon/client", []string{"daemon/api", "daemon/meeting", "hal", "ui"}, "clients need only the wire contract"},
	{"daemon", []string{"provisioning/fleet"}, "the fleet server's code never ships in roomd"},
	{"cmd/roomd", []string{"provisioning/fleet"}, "the fleet server's code never ships in roomd"},
	{"provisioning/identity", []string{"daemon", "hal", "ui", "provisioning/fleet"}, "the device identity is a leaf the agent and tools can use"},
	{"provisioning/osconfig", []string{"daemon", "hal", "ui", "provisioning/fleet"}, "OS settings go through D-Bus only and know nothing of roomd"},
	{"provisioning/fleetapi", []string{"daemon", "hal", "ui", "provisioning/fleet", "provisioning/agent", "provisioning/identity", "provisioning/osconfig"}, "the device API's contract is importable by both sides without either"},
	{"provisioning/agent", []string{"daemon", "hal", "ui", "provisioning/fleet", "provisioning/osconfig"}, "the agent meets roomd at small interfaces and speaks only the contract to the fleet"},
	{"provisioning/fleet", []string{"daemon", "hal", "ui", "provisioning/agent", "cmd"}, "the fleet server knows devices only through the contract"},
	{"ota", []string{"daemon", "hal", "ui", "provisioning", "cmd"}, "the update engine meets roomd at small interfaces"},
}

func TestImportRules(t *testing.T) {
	deps := listPackages(t)
	if len(deps) < 10 {
		t.Fatalf("only %d packages listed; is the module path right?", len(deps))
	}
	checked := 0
	for path, ds := range deps {
		rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			checked++
			for _, d := range ds {
				drel, ok := strings.CutPrefix(d, module+"/")
				if !ok {
					continue
				}
				for _, f := range r.forbidden {
					if drel == f || strings.HasPrefix(drel, f+"/") {
						t.Errorf("%s imports %s: %s", rel, drel, r.why)
					}
				}
			}
		}
	}
	if checked < len(rules) {
		t.Errorf("only %d packages matched %d rules: a rule names a package that no longer exists", checked, len(rules))
	}
}
