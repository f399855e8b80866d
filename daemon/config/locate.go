package config

import (
	"bufio"
	"bytes"
	"strings"
)

// locator finds the line of a dotted key in a TOML file. The TOML library
// knows key positions but does not export them, and an operator fixing a
// file wants a line number, so this re-reads the file with the few rules
// that matter for roomd's flat configuration: [table] headers and key = value
// lines. It returns 0 when it cannot tell.
type locator struct {
	keys   map[string]int // dotted key → first line
	tables map[string]int // dotted table → header line
}

func newLocator(data []byte) *locator {
	l := &locator{keys: map[string]int{}, tables: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	table := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			name := strings.Trim(line, "[] \t")
			if i := strings.Index(name, "#"); i >= 0 {
				name = strings.TrimSpace(strings.TrimRight(name[:i], "] \t"))
			}
			table = normalize(name)
			if _, ok := l.tables[table]; !ok {
				l.tables[table] = n
			}
		default:
			eq := strings.Index(line, "=")
			if eq <= 0 {
				continue
			}
			key := normalize(line[:eq])
			if table != "" {
				key = table + "." + key
			}
			if _, ok := l.keys[key]; !ok {
				l.keys[key] = n
			}
		}
	}
	return l
}

func normalize(key string) string {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

func (l *locator) line(key string) int {
	if n, ok := l.keys[key]; ok {
		return n
	}
	return l.tables[key]
}
