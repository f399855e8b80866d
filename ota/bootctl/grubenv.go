package bootctl

import (
	"bytes"
	"fmt"
	"strings"
)

// grubenv is GRUB's environment block: the header line, "name=value" lines,
// then '#' up to exactly envBlockSize bytes. GRUB rewrites the block in
// place without changing its size (it may sit on a file system GRUB cannot
// allocate on), which is why the size is fixed and the tail is padding
// rather than a shorter file.
const (
	envHeader    = "# GRUB Environment Block\n"
	envBlockSize = 1024
)

// envVar is one variable. raw is the value as stored, with GRUB's
// backslash escapes left in place so that variables we do not own are
// written back byte for byte.
type envVar struct {
	name, raw string
}

type envBlock []envVar

// parseEnvBlock reads a grubenv block, refusing anything GRUB would not have
// written: a wrong size (truncated), a missing header, a line without '=',
// or junk instead of padding.
func parseEnvBlock(data []byte) (envBlock, error) {
	if len(data) != envBlockSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(data), envBlockSize)
	}
	if !bytes.HasPrefix(data, []byte(envHeader)) {
		return nil, fmt.Errorf("no %q header", strings.TrimSpace(envHeader))
	}
	rest := data[len(envHeader):]
	var env envBlock
	for len(rest) > 0 && rest[0] != '#' {
		eq := bytes.IndexByte(rest, '=')
		nl := bytes.IndexByte(rest, '\n')
		if eq <= 0 || (nl >= 0 && nl < eq) {
			return nil, fmt.Errorf("line %q is not name=value", firstLine(rest))
		}
		name := string(rest[:eq])
		// The value ends at the first newline not escaped by a backslash.
		i := eq + 1
		for ; i < len(rest) && rest[i] != '\n'; i++ {
			if rest[i] == '\\' {
				i++
			}
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("variable %q runs off the end of the block", name)
		}
		env = append(env, envVar{name: name, raw: string(rest[eq+1 : i])})
		rest = rest[i+1:]
	}
	if n := bytes.Trim(rest, "#"); len(n) != 0 {
		return nil, fmt.Errorf("padding holds %q", firstLine(n))
	}
	return env, nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// get returns a variable's value; ok is false when it is unset. Our own
// values never need escapes, so the raw form is the value.
func (e envBlock) get(name string) (string, bool) {
	for _, v := range e {
		if v.name == name {
			return v.raw, true
		}
	}
	return "", false
}

// set replaces or appends a variable. value must not need escaping.
func (e envBlock) set(name, value string) envBlock {
	for i, v := range e {
		if v.name == name {
			out := append(envBlock(nil), e...)
			out[i].raw = value
			return out
		}
	}
	return append(append(envBlock(nil), e...), envVar{name: name, raw: value})
}

// encode writes the block, padded to envBlockSize.
func (e envBlock) encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(envHeader)
	for _, v := range e {
		b.WriteString(v.name)
		b.WriteByte('=')
		b.WriteString(v.raw)
		b.WriteByte('\n')
	}
	if b.Len() > envBlockSize {
		return nil, fmt.Errorf("variables need %d bytes, the block holds %d", b.Len(), envBlockSize)
	}
	b.Write(bytes.Repeat([]byte{'#'}, envBlockSize-b.Len()))
	return b.Bytes(), nil
}
