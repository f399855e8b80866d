package calendar

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// property is one content line: NAME;PARAM=V1,V2:VALUE (RFC 5545 §3.1).
type property struct {
	name   string // upper case
	params map[string][]string
	value  string // raw: TEXT escapes are undone by text()
	line   int
}

func (p *property) param(name string) string {
	if v := p.params[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// text returns the value with TEXT escapes (\n \, \; \\) undone.
func (p *property) text() string { return unescapeText(p.value) }

// component is BEGIN:NAME … END:NAME with its properties and children.
type component struct {
	name     string
	props    []*property
	children []*component
	line     int
	broken   *Problem // the first problem inside it; a broken VEVENT is skipped
}

func (c *component) get(name string) *property {
	for _, p := range c.props {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (c *component) all(name string) []*property {
	var out []*property
	for _, p := range c.props {
		if p.name == name {
			out = append(out, p)
		}
	}
	return out
}

// logicalLine is an unfolded content line and where it began.
type logicalLine struct {
	text string
	line int
}

// unfold joins folded lines (a line starting with a space or tab continues
// the previous one) and accepts CRLF, LF or CR endings. Invalid UTF-8 is
// replaced rather than refused: a stray byte in a description must not
// cost the calendar.
func unfold(data []byte) []logicalLine {
	if !utf8.Valid(data) {
		data = bytes.ToValidUTF8(data, []byte("\uFFFD"))
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var out []logicalLine
	for i, l := range strings.Split(s, "\n") {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(out) > 0 {
			out[len(out)-1].text += l[1:]
			continue
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		out = append(out, logicalLine{text: l, line: i + 1})
	}
	return out
}

// parseLine splits one content line into name, parameters and value.
func parseLine(l logicalLine) (*property, error) {
	s := l.text
	p := &property{line: l.line}
	i := strings.IndexAny(s, ";:")
	if i <= 0 {
		return nil, fmt.Errorf("%w: %q is not NAME:VALUE", ErrSyntax, clip(s))
	}
	p.name = strings.ToUpper(s[:i])
	if !validName(p.name) {
		return nil, fmt.Errorf("%w: bad property name %q", ErrSyntax, clip(p.name))
	}
	s = s[i:]
	for strings.HasPrefix(s, ";") {
		s = s[1:]
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: %s: parameter without '='", ErrSyntax, p.name)
		}
		pname := strings.ToUpper(s[:eq])
		if !validName(pname) {
			return nil, fmt.Errorf("%w: %s: bad parameter name %q", ErrSyntax, p.name, clip(pname))
		}
		s = s[eq+1:]
		for {
			var v string
			if strings.HasPrefix(s, `"`) {
				end := strings.IndexByte(s[1:], '"')
				if end < 0 {
					return nil, fmt.Errorf("%w: %s: unterminated quoted parameter %s", ErrSyntax, p.name, pname)
				}
				v, s = s[1:1+end], s[2+end:]
			} else {
				end := strings.IndexAny(s, ",;:")
				if end < 0 {
					return nil, fmt.Errorf("%w: %s: no ':' before the value", ErrSyntax, p.name)
				}
				v, s = s[:end], s[end:]
			}
			if p.params == nil {
				p.params = map[string][]string{}
			}
			p.params[pname] = append(p.params[pname], v)
			if !strings.HasPrefix(s, ",") {
				break
			}
			s = s[1:]
		}
	}
	if !strings.HasPrefix(s, ":") {
		return nil, fmt.Errorf("%w: %s: no ':' before the value", ErrSyntax, p.name)
	}
	p.value = s[1:]
	return p, nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return s != ""
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// maxDepth bounds nesting; real calendars use three levels.
const maxDepth = 8

// parseTree reads the document into its VCALENDAR components. Problems
// inside a component mark it broken (the caller decides what that costs);
// problems outside any component are returned as warnings.
func parseTree(data []byte) ([]*component, []*Problem, error) {
	lines := unfold(data)
	var (
		cals     []*component
		stack    []*component
		problems []*Problem
		seen     bool
	)
	mark := func(p *Problem) {
		// The innermost VEVENT (or other component) pays for the problem.
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].name == "VEVENT" || i == len(stack)-1 && stack[i].name != "VCALENDAR" {
				if stack[i].broken == nil {
					stack[i].broken = p
				}
				return
			}
		}
		p.Skipped = "line"
		problems = append(problems, p)
	}
	for _, l := range lines {
		p, err := parseLine(l)
		if err != nil {
			mark(&Problem{Line: l.line, Err: err})
			continue
		}
		switch p.name {
		case "BEGIN":
			name := strings.ToUpper(strings.TrimSpace(p.value))
			if !validName(name) {
				mark(&Problem{Line: l.line, Property: "BEGIN", Err: fmt.Errorf("%w: bad component name %q", ErrSyntax, clip(p.value))})
				continue
			}
			if len(stack) == 0 && name != "VCALENDAR" {
				problems = append(problems, &Problem{Line: l.line, Property: "BEGIN", Skipped: "line", Err: fmt.Errorf("%w: %s outside VCALENDAR", ErrSyntax, name)})
				continue
			}
			if len(stack) >= maxDepth {
				return nil, problems, &Problem{Line: l.line, Property: "BEGIN", Err: fmt.Errorf("%w: components nested deeper than %d", ErrSyntax, maxDepth)}
			}
			c := &component{name: name, line: l.line}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, c)
			} else {
				cals = append(cals, c)
				seen = true
			}
			stack = append(stack, c)
		case "END":
			name := strings.ToUpper(strings.TrimSpace(p.value))
			// Find the component END closes; anything opened inside it and
			// not closed is broken.
			at := -1
			for i := len(stack) - 1; i >= 0; i-- {
				if stack[i].name == name {
					at = i
					break
				}
			}
			if at < 0 {
				mark(&Problem{Line: l.line, Property: "END", Err: fmt.Errorf("%w: END:%s without BEGIN", ErrSyntax, clip(name))})
				continue
			}
			for i := len(stack) - 1; i > at; i-- {
				if stack[i].broken == nil {
					stack[i].broken = &Problem{Line: stack[i].line, Property: "BEGIN", Err: fmt.Errorf("%w: %s not closed before END:%s on line %d", ErrSyntax, stack[i].name, name, l.line)}
				}
			}
			stack = stack[:at]
		default:
			if len(stack) == 0 {
				problems = append(problems, &Problem{Line: l.line, Property: p.name, Skipped: "line", Err: fmt.Errorf("%w: property outside VCALENDAR", ErrSyntax)})
				continue
			}
			c := stack[len(stack)-1]
			c.props = append(c.props, p)
		}
	}
	for _, c := range stack {
		if c.broken == nil && c.name != "VCALENDAR" {
			c.broken = &Problem{Line: c.line, Property: "BEGIN", Err: fmt.Errorf("%w: %s never closed", ErrSyntax, c.name)}
		}
	}
	if !seen {
		return nil, problems, fmt.Errorf("%w: no BEGIN:VCALENDAR", ErrNotCalendar)
	}
	return cals, problems, nil
}

// unescapeText undoes RFC 5545 TEXT escapes.
func unescapeText(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n', 'N':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
