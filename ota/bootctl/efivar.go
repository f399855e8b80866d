package bootctl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// LoaderEntrySelectedVar is the efivarfs file name of the variable in which
// systemd-boot records the id of the entry it started (Boot Loader
// Interface, vendor GUID 4a67b082-0a4c-41cf-b6c7-440b29bb8c4f).
const LoaderEntrySelectedVar = "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// ParseEFIVarString decodes an efivarfs file holding a string variable: a
// 4-byte little-endian attribute word, then UTF-16LE text, usually ending
// in a NUL.
func ParseEFIVarString(b []byte) (string, error) {
	if len(b) < 4 {
		return "", fmt.Errorf("efi variable: %d bytes, shorter than the attribute header", len(b))
	}
	body := b[4:]
	if len(body)%2 != 0 {
		return "", fmt.Errorf("efi variable: odd UTF-16 length %d", len(body))
	}
	u := make([]uint16, len(body)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(body[2*i:])
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	s := string(utf16.Decode(u))
	if strings.ContainsRune(s, 0) {
		return "", errors.New("efi variable: NUL inside the string")
	}
	if strings.ContainsRune(s, '\uFFFD') {
		return "", errors.New("efi variable: invalid UTF-16")
	}
	if s == "" {
		return "", errors.New("efi variable: empty string")
	}
	return s, nil
}

// EFIVarEntrySelected returns a [SystemdBootConfig.SelectedEntry] that reads
// LoaderEntrySelected from efivarsDir (normally /sys/firmware/efi/efivars).
// A missing variable (not started by systemd-boot) reads as "".
func EFIVarEntrySelected(efivarsDir string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		path := filepath.Join(efivarsDir, LoaderEntrySelectedVar)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		s, err := ParseEFIVarString(b)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
}
