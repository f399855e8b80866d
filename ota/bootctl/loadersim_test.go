package bootctl

// The loaders' part, played independently of the code under test: a small
// interpreter for GRUBScript and a model of systemd-boot's entry choice.

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var grubExpand = regexp.MustCompile(`\$\{([a-z_]+)\}`)

// runGRUBScript interprets the subset of GRUB script that GRUBScript uses
// (load_env, save_env, set, if/elif/else/fi over [ ] tests) against the
// grubenv at envPath and returns the menu entry id it selects.
func runGRUBScript(t *testing.T, script, envPath string) string {
	t.Helper()
	vars := map[string]string{}
	word := func(s string) string {
		s = strings.Trim(s, `"`)
		return grubExpand.ReplaceAllStringFunc(s, func(m string) string {
			return vars[grubExpand.FindStringSubmatch(m)[1]]
		})
	}
	cond := func(c string) bool {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(c), "; then"))
		if len(f) < 3 || f[0] != "[" || f[len(f)-1] != "]" {
			t.Fatalf("grub sim: unsupported condition %q", c)
		}
		f = f[1 : len(f)-1]
		switch {
		case len(f) == 2 && f[0] == "-n":
			return word(f[1]) != ""
		case len(f) == 2 && f[0] == "-z":
			return word(f[1]) == ""
		case len(f) == 3 && f[1] == "=":
			return word(f[0]) == word(f[2])
		case len(f) == 3 && f[1] == "!=":
			return word(f[0]) != word(f[2])
		}
		t.Fatalf("grub sim: unsupported condition %q", c)
		return false
	}
	type frame struct{ outer, active, taken bool }
	stack := []frame{{outer: true, active: true, taken: true}}
	active := func() bool { return stack[len(stack)-1].active }
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "if "):
			c := active() && cond(strings.TrimPrefix(line, "if "))
			stack = append(stack, frame{outer: active(), active: c, taken: c})
		case strings.HasPrefix(line, "elif "):
			fr := &stack[len(stack)-1]
			c := fr.outer && !fr.taken && cond(strings.TrimPrefix(line, "elif "))
			fr.active, fr.taken = c, fr.taken || c
		case line == "else":
			fr := &stack[len(stack)-1]
			fr.active, fr.taken = fr.outer && !fr.taken, true
		case line == "fi":
			stack = stack[:len(stack)-1]
		case !active():
		case strings.HasPrefix(line, "set "):
			name, val, ok := strings.Cut(strings.TrimPrefix(line, "set "), "=")
			if !ok {
				t.Fatalf("grub sim: bad set %q", line)
			}
			vars[name] = word(val)
		case strings.HasPrefix(line, "load_env "):
			data, err := os.ReadFile(envPath)
			if err != nil {
				continue // GRUB carries on without the file
			}
			env, err := parseEnvBlock(data)
			if err != nil {
				t.Fatalf("grub sim: load_env: %v", err)
			}
			for _, n := range strings.Fields(strings.TrimPrefix(line, "load_env ")) {
				if v, ok := env.get(n); ok {
					vars[n] = v
				}
			}
		case strings.HasPrefix(line, "save_env "):
			var env envBlock
			if data, err := os.ReadFile(envPath); err == nil {
				if env, err = parseEnvBlock(data); err != nil {
					t.Fatalf("grub sim: save_env: %v", err)
				}
			}
			for _, n := range strings.Fields(strings.TrimPrefix(line, "save_env ")) {
				env = env.set(n, vars[n])
			}
			data, err := env.encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(envPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("grub sim: unsupported line %q", line)
		}
	}
	if len(stack) != 1 {
		t.Fatalf("grub sim: unbalanced if/fi")
	}
	return vars["default"]
}

var simCounter = regexp.MustCompile(`^(.*?)(?:\+([0-9]+)(?:-([0-9]+))?)?\.conf$`)

type simEntry struct {
	file, id   string
	counted    bool
	left, done int
}

// bootSystemd plays systemd-boot on an ESP: it loads loader/entries/*.conf,
// orders them (no tries left last, then id descending), selects by the
// default pattern, bumps the counter of the chosen entry and returns the
// chosen id, the value LoaderEntrySelected would hold.
func bootSystemd(t *testing.T, esp string) string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(esp, "loader", "entries"))
	if err != nil {
		t.Fatal(err)
	}
	var es []simEntry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".conf") {
			continue
		}
		e := simEntry{file: de.Name(), id: strings.ToLower(de.Name())}
		m := simCounter.FindStringSubmatch(de.Name())
		if m[2] != "" {
			e.counted = true
			e.left, _ = strconv.Atoi(m[2])
			e.done, _ = strconv.Atoi(m[3])
		}
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b simEntry) int {
		ab, bb := a.counted && a.left == 0, b.counted && b.left == 0
		if ab != bb {
			if ab {
				return 1
			}
			return -1
		}
		return -strings.Compare(a.id, b.id)
	})
	conf, err := os.ReadFile(filepath.Join(esp, "loader", "loader.conf"))
	if err != nil {
		t.Fatal(err)
	}
	pattern := ""
	for _, l := range strings.Split(string(conf), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "default" {
			pattern = strings.ToLower(f[1])
		}
	}
	if len(es) == 0 {
		t.Fatal("systemd sim: no entries")
	}
	chosen := es[0]
	for _, e := range es {
		if ok, _ := path.Match(pattern, e.id); ok {
			chosen = e
			break
		}
	}
	if chosen.counted {
		left := max(chosen.left-1, 0)
		prefix := simCounter.FindStringSubmatch(chosen.file)[1]
		next := prefix + "+" + strconv.Itoa(left) + "-" + strconv.Itoa(chosen.done+1) + ".conf"
		dir := filepath.Join(esp, "loader", "entries")
		if err := os.Rename(filepath.Join(dir, chosen.file), filepath.Join(dir, next)); err != nil {
			t.Fatal(err)
		}
	}
	return chosen.id
}
