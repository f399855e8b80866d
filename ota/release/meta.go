package release

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"
)

// ImageMeta is the custom metadata of a root-filesystem image, signed by
// the targets role together with the image's length and hash.
type ImageMeta struct {
	// Hardware lists the hardware IDs (board or model names) the image
	// runs on; a device refuses an image that does not list its own.
	Hardware []string `json:"hardware"`
	// Version is the release's version, dotted numbers ("1.4.2") with an
	// optional "-suffix".
	Version string `json:"version"`
	// SecurityVersion is the anti-rollback floor: a device never installs
	// an image with a lower security version than one it has run.
	SecurityVersion int `json:"security_version"`
	// BuildTime is when the image was built; a device never trusts a clock
	// earlier than the build time of the image it runs.
	BuildTime time.Time `json:"build_time"`
	// Partitions describes each partition image inside the target by name
	// (e.g. "rootfs").
	Partitions map[string]PartitionMeta `json:"partitions"`
}

// PartitionMeta is one partition image: its size and SHA-256 (hex).
type PartitionMeta struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var (
	versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,3}(-[0-9A-Za-z.]{1,32})?$`)
	hwRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	partRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// Validate checks every field and names the first bad one.
func (m ImageMeta) Validate() error {
	if len(m.Hardware) == 0 {
		return fmt.Errorf("%w: hardware: empty", ErrBadImageMeta)
	}
	for i, h := range m.Hardware {
		if !hwRE.MatchString(h) {
			return fmt.Errorf("%w: hardware[%d]: %q is not a hardware ID (lower-case letters, digits, . _ -)", ErrBadImageMeta, i, h)
		}
		if slices.Contains(m.Hardware[:i], h) {
			return fmt.Errorf("%w: hardware[%d]: %q listed twice", ErrBadImageMeta, i, h)
		}
	}
	if !versionRE.MatchString(m.Version) {
		return fmt.Errorf("%w: version: %q is not dotted numbers with an optional -suffix", ErrBadImageMeta, m.Version)
	}
	if m.SecurityVersion < 0 {
		return fmt.Errorf("%w: security_version: %d is negative", ErrBadImageMeta, m.SecurityVersion)
	}
	if m.BuildTime.IsZero() || m.BuildTime.Year() < 2020 {
		return fmt.Errorf("%w: build_time: %v is not a plausible build time", ErrBadImageMeta, m.BuildTime)
	}
	if len(m.Partitions) == 0 {
		return fmt.Errorf("%w: partitions: empty", ErrBadImageMeta)
	}
	for name, p := range m.Partitions {
		if !partRE.MatchString(name) {
			return fmt.Errorf("%w: partitions: %q is not a partition name", ErrBadImageMeta, name)
		}
		if p.Size <= 0 {
			return fmt.Errorf("%w: partitions.%s.size: %d is not positive", ErrBadImageMeta, name, p.Size)
		}
		if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != 32 || p.SHA256 != hex.EncodeToString(b) {
			return fmt.Errorf("%w: partitions.%s.sha256: %q is not 64 lower-case hex digits", ErrBadImageMeta, name, p.SHA256)
		}
	}
	return nil
}

// decodeImageMeta decodes custom metadata strictly: unknown fields,
// trailing data and invalid values are refused, because a field this
// device does not understand might be a restriction it would ignore.
func decodeImageMeta(raw []byte) (ImageMeta, error) {
	var m ImageMeta
	if len(raw) == 0 {
		return m, fmt.Errorf("%w: no custom metadata", ErrBadImageMeta)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return ImageMeta{}, fmt.Errorf("%w: %w", ErrBadImageMeta, err)
	}
	if _, err := dec.Token(); err == nil || !errors.Is(err, io.EOF) {
		return ImageMeta{}, fmt.Errorf("%w: trailing data after the object", ErrBadImageMeta)
	}
	if err := m.Validate(); err != nil {
		return ImageMeta{}, err
	}
	return m, nil
}

// ValidName reports whether name may be a target name: it becomes part of
// a file name and a URL, so it is kept to a safe alphabet without slashes.
func ValidName(name string) error {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w: %q (letters, digits, . _ - only, at most 128)", ErrBadName, name)
	}
	return nil
}
