package release

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/ota/delta"
)

// DeltaMeta is the custom metadata of a delta target: a binary delta
// (package ota/delta) that turns the image a device runs (the base) into
// a published image. It is signed by the targets role like an image's, so
// a device applies only deltas TUF lists, for exactly the base it runs.
// On the wire it is the object under the key "delta", which is how a
// delta is told apart from an image.
type DeltaMeta struct {
	// Target is the name of the image the delta produces; TargetLength
	// and TargetSHA256 (hex) are that image's, as TUF lists it.
	Target       string `json:"target"`
	TargetLength int64  `json:"target_length"`
	TargetSHA256 string `json:"target_sha256"`
	// BaseVersion, BaseLength and BaseSHA256 (hex) describe the image the
	// delta applies to.
	BaseVersion string `json:"base_version"`
	BaseLength  int64  `json:"base_length"`
	BaseSHA256  string `json:"base_sha256"`
}

type deltaEnvelope struct {
	Delta *DeltaMeta `json:"delta"`
}

// DeltaName is the target name of the delta from the base with SHA-256
// baseSHA256 to the image target: the image's name, ".delta-" and the
// first 16 hex digits of the base's hash. The name only finds the delta;
// the full base hash in its signed DeltaMeta decides.
func DeltaName(target string, baseSHA256 [32]byte) string {
	return target + ".delta-" + hex.EncodeToString(baseSHA256[:8])
}

func validSHA(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && s == hex.EncodeToString(b)
}

// Validate checks every field and names the first bad one.
func (m DeltaMeta) Validate() error {
	if err := ValidName(m.Target); err != nil {
		return fmt.Errorf("%w: delta.target: %w", ErrBadImageMeta, err)
	}
	if m.TargetLength <= 0 {
		return fmt.Errorf("%w: delta.target_length: %d is not positive", ErrBadImageMeta, m.TargetLength)
	}
	if !validSHA(m.TargetSHA256) {
		return fmt.Errorf("%w: delta.target_sha256: %q is not 64 lower-case hex digits", ErrBadImageMeta, m.TargetSHA256)
	}
	if !versionRE.MatchString(m.BaseVersion) {
		return fmt.Errorf("%w: delta.base_version: %q is not dotted numbers with an optional -suffix", ErrBadImageMeta, m.BaseVersion)
	}
	if m.BaseLength <= 0 {
		return fmt.Errorf("%w: delta.base_length: %d is not positive", ErrBadImageMeta, m.BaseLength)
	}
	if !validSHA(m.BaseSHA256) {
		return fmt.Errorf("%w: delta.base_sha256: %q is not 64 lower-case hex digits", ErrBadImageMeta, m.BaseSHA256)
	}
	return nil
}

// isDelta reports whether custom metadata is a delta's: an object with a
// "delta" key. Anything else is decoded (strictly) as an image's.
func isDelta(raw []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil {
		return false
	}
	_, ok := probe["delta"]
	return ok
}

// decodeDeltaMeta decodes a delta's custom metadata strictly, like
// decodeImageMeta.
func decodeDeltaMeta(raw []byte) (DeltaMeta, error) {
	var env deltaEnvelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return DeltaMeta{}, fmt.Errorf("%w: %w", ErrBadImageMeta, err)
	}
	if _, err := dec.Token(); err == nil || !errors.Is(err, io.EOF) {
		return DeltaMeta{}, fmt.Errorf("%w: trailing data after the object", ErrBadImageMeta)
	}
	if env.Delta == nil {
		return DeltaMeta{}, fmt.Errorf("%w: delta: missing", ErrBadImageMeta)
	}
	if err := env.Delta.Validate(); err != nil {
		return DeltaMeta{}, err
	}
	return *env.Delta, nil
}

// AddDelta publishes a delta (made by ota/delta from the base image to
// meta.Target) under DeltaName. The image meta.Target must already be
// published with meta's length and hash; the delta's bytes are not
// parsed here. Like AddImage it re-signs targets, snapshot and timestamp
// and refuses different bytes under an existing name.
func (r *Repo) AddDelta(delta io.Reader, meta DeltaMeta, now time.Time) (name string, err error) {
	if err := meta.Validate(); err != nil {
		return "", fmt.Errorf("add delta: %w", err)
	}
	img, ok := r.targets.Signed.Targets[meta.Target]
	if !ok || img.Custom == nil || isDelta(*img.Custom) {
		return "", fmt.Errorf("add delta: %s: %w: no such image", meta.Target, ErrUnknownTarget)
	}
	if img.Length != meta.TargetLength || hex.EncodeToString(img.Hashes["sha256"]) != meta.TargetSHA256 {
		return "", fmt.Errorf("add delta: %s: %w: published with length %d sha256 %x, delta says %d %s",
			meta.Target, ErrMismatch, img.Length, []byte(img.Hashes["sha256"]), meta.TargetLength, meta.TargetSHA256)
	}
	var base [32]byte
	_, _ = hex.Decode(base[:], []byte(meta.BaseSHA256))
	name = DeltaName(meta.Target, base)
	if err := ValidName(name); err != nil {
		return "", fmt.Errorf("add delta: %w", err)
	}
	custom, err := json.Marshal(deltaEnvelope{Delta: &meta})
	if err != nil {
		return "", fmt.Errorf("add delta %s: encode metadata: %w", name, err)
	}
	if err := r.addTarget(name, delta, custom, now); err != nil {
		return "", fmt.Errorf("add delta %s: %w", name, err)
	}
	return name, nil
}

// Entry is one published target as List reports it: an image (Image set)
// or a delta (Delta set).
type Entry struct {
	Name   string
	Length int64
	SHA256 string
	Image  *ImageMeta
	Delta  *DeltaMeta
}

// List returns every published target, images and deltas, by name.
func (r *Repo) List() ([]Entry, error) {
	out := make([]Entry, 0, len(r.targets.Signed.Targets))
	for name, tf := range r.targets.Signed.Targets {
		e := Entry{Name: name, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		if tf.Custom == nil {
			return nil, fmt.Errorf("list targets: %s: %w: no custom metadata", name, ErrBadImageMeta)
		}
		if isDelta(*tf.Custom) {
			m, err := decodeDeltaMeta(*tf.Custom)
			if err != nil {
				return nil, fmt.Errorf("list targets: %s: %w", name, err)
			}
			e.Delta = &m
		} else {
			m, err := decodeImageMeta(*tf.Custom)
			if err != nil {
				return nil, fmt.Errorf("list targets: %s: %w", name, err)
			}
			e.Image = &m
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, nil
}

// DeltaTarget is a delta TUF vouches for, together with the image it
// produces.
type DeltaTarget struct {
	Name   string
	Length int64
	SHA256 [32]byte
	Meta   DeltaMeta
	// URL is where the delta is served; the downloader must check Length
	// and SHA256 on its bytes before applying it.
	URL string
	// Image is the target the delta produces, checked like Client.Target
	// (hardware included); its Length and SHA256 are what ota/delta.Apply
	// must produce.
	Image Target
}

// Delta returns the delta from the base with SHA-256 baseSHA256 (the
// image in the device's running slot) to the image target, as of the last
// successful Refresh. ErrNoDelta means none is published: download the
// full image. The image is checked like Target; the delta's signed
// metadata must name exactly that image and exactly that base
// (ErrBadImageMeta otherwise).
func (c *Client) Delta(target string, baseSHA256 [32]byte) (DeltaTarget, error) {
	img, err := c.Target(target)
	if err != nil {
		return DeltaTarget{}, fmt.Errorf("delta: %w", err)
	}
	name := DeltaName(target, baseSHA256)
	if err := ValidName(name); err != nil {
		return DeltaTarget{}, fmt.Errorf("delta: %w", err)
	}
	c.mu.Lock()
	tf, ok := c.targets[name]
	c.mu.Unlock()
	if !ok {
		return DeltaTarget{}, fmt.Errorf("delta %s: %w", name, ErrNoDelta)
	}
	sum := tf.Hashes["sha256"]
	if len(sum) != 32 || tf.Length <= 0 || tf.Custom == nil {
		return DeltaTarget{}, fmt.Errorf("delta %s: %w: needs a positive length, a sha256 and custom metadata", name, ErrBadImageMeta)
	}
	meta, err := decodeDeltaMeta(*tf.Custom)
	if err != nil {
		return DeltaTarget{}, fmt.Errorf("delta %s: %w", name, err)
	}
	if meta.Target != target || meta.TargetLength != img.Length || meta.TargetSHA256 != hex.EncodeToString(img.SHA256[:]) {
		return DeltaTarget{}, fmt.Errorf("delta %s: %w: it produces %s (%d bytes, sha256 %s), not the listed image", name, ErrBadImageMeta, meta.Target, meta.TargetLength, meta.TargetSHA256)
	}
	if meta.BaseSHA256 != hex.EncodeToString(baseSHA256[:]) {
		return DeltaTarget{}, fmt.Errorf("delta %s: %w: made for base sha256 %s, this device runs %x", name, ErrNoDelta, meta.BaseSHA256, baseSHA256)
	}
	d := DeltaTarget{Name: name, Length: tf.Length, Meta: meta, Image: img,
		URL: c.targetsURL() + hex.EncodeToString(sum) + "." + url.PathEscape(name)}
	copy(d.SHA256[:], sum)
	return d, nil
}

// DeltaFrom returns the delta to the image target from the release
// version baseVersion, for a device that knows which version its running
// slot holds but not that image's hash (hashing a whole slot costs as much
// as applying the delta, which checks the base anyway). When several
// deltas start from that version (builds of it for other hardware, say)
// the first by name is returned; delta.Apply then refuses a base that is
// not the one it names. ErrNoDelta means none is published.
func (c *Client) DeltaFrom(target, baseVersion string) (DeltaTarget, error) {
	prefix := target + ".delta-"
	customs := map[string][]byte{}
	c.mu.Lock()
	for name, tf := range c.targets {
		if strings.HasPrefix(name, prefix) && tf.Custom != nil {
			customs[name] = *tf.Custom
		}
	}
	c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(customs)) {
		meta, err := decodeDeltaMeta(customs[name])
		if err != nil || meta.BaseVersion != baseVersion {
			continue
		}
		var base [32]byte
		if _, err := hex.Decode(base[:], []byte(meta.BaseSHA256)); err != nil {
			continue
		}
		return c.Delta(target, base)
	}
	return DeltaTarget{}, fmt.Errorf("delta to %s from %s: %w", target, baseVersion, ErrNoDelta)
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
}

// PublishDelta makes a delta (ota/delta) from base, the first baseSize
// bytes of which must be an image already published here, to the
// published image target, and publishes it with AddDelta. The delta is
// written to a temporary file in the repository's targets directory
// first, so memory stays bounded whatever the image size. It needs the
// same keys as AddImage.
func (r *Repo) PublishDelta(base io.ReaderAt, baseSize int64, target string, opts delta.Options, now time.Time) (string, delta.Stats, error) {
	img, ok := r.targets.Signed.Targets[target]
	if !ok || img.Custom == nil || isDelta(*img.Custom) {
		return "", delta.Stats{}, fmt.Errorf("publish delta: %s: %w: no such image", target, ErrUnknownTarget)
	}
	baseSum, err := hashReaderAt(base, baseSize)
	if err != nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta: base: %w", err)
	}
	var baseMeta *ImageMeta
	for _, tf := range r.targets.Signed.Targets {
		if tf.Custom == nil || isDelta(*tf.Custom) || tf.Length != baseSize || hex.EncodeToString(tf.Hashes["sha256"]) != baseSum {
			continue
		}
		m, err := decodeImageMeta(*tf.Custom)
		if err != nil {
			return "", delta.Stats{}, fmt.Errorf("publish delta: base %s: %w", tf.Path, err)
		}
		baseMeta = &m
		break
	}
	if baseMeta == nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta: %w: the base (sha256 %s, %d bytes) is not a published image", ErrUnknownTarget, baseSum, baseSize)
	}
	targetSum := hex.EncodeToString(img.Hashes["sha256"])
	src, err := os.Open(filepath.Join(r.targetsDir(), targetSum+"."+target))
	if err != nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta: %w", err)
	}
	defer func() { _ = src.Close() }()
	tmp, err := os.CreateTemp(r.targetsDir(), ".delta-*")
	if err != nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	st, err := delta.Make(base, baseSize, src, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta to %s: %w", target, err)
	}
	name, err := r.AddDelta(tmp, DeltaMeta{
		Target: target, TargetLength: img.Length, TargetSHA256: targetSum,
		BaseVersion: baseMeta.Version, BaseLength: baseSize, BaseSHA256: baseSum,
	}, now)
	if err != nil {
		return "", delta.Stats{}, fmt.Errorf("publish delta: %w", err)
	}
	return name, st, nil
}

func hashReaderAt(r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(r, 0, size))
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	if n != size {
		return "", fmt.Errorf("hash: read %d of %d bytes", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
