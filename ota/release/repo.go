package release

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Expiry is how long each role's metadata stays valid after it is signed.
// Timestamp is short so that a frozen mirror is noticed soon; it is
// re-signed routinely with the online timestamp key (RefreshTimestamp).
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry suits a release cadence of weeks with a daily timestamp
// job. (A function, not a variable: nobody can change it for everyone.)
func DefaultExpiry() Expiry {
	return Expiry{
		Root:      365 * 24 * time.Hour,
		Targets:   90 * 24 * time.Hour,
		Snapshot:  90 * 24 * time.Hour,
		Timestamp: 2 * 24 * time.Hour,
	}
}

func (e Expiry) validate() error {
	if e.Root <= 0 || e.Targets <= 0 || e.Snapshot <= 0 || e.Timestamp <= 0 {
		return fmt.Errorf("expiry %+v: every role needs a positive duration", e)
	}
	return nil
}

// Repo is a TUF repository in a directory (see the package comment for
// the layout). A Repo is not safe for concurrent use, and only one process
// should publish into a directory at a time.
type Repo struct {
	dir    string
	keys   *Keys
	expiry Expiry

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

func (r *Repo) metaDir() string    { return filepath.Join(r.dir, "metadata") }
func (r *Repo) targetsDir() string { return filepath.Join(r.dir, "targets") }

// Dir is the repository's directory, the one to serve over HTTP.
func (r *Repo) Dir() string { return r.dir }

// RootJSON returns the current signed root metadata: what an image ships
// as the device's first trust anchor.
func (r *Repo) RootJSON() ([]byte, error) {
	b, err := r.root.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("encode root: %w", err)
	}
	return b, nil
}

// Init creates a new repository in dir (which must not hold one) with a
// root naming one key per role, and empty targets, snapshot and timestamp
// signed at now. It needs every role's key.
func Init(dir string, keys *Keys, expiry Expiry, now time.Time) (*Repo, error) {
	if err := expiry.validate(); err != nil {
		return nil, fmt.Errorf("init repository %s: %w", dir, err)
	}
	r := &Repo{dir: dir, keys: keys, expiry: expiry}
	if _, err := os.Stat(filepath.Join(r.metaDir(), "root.json")); err == nil {
		return nil, fmt.Errorf("init repository %s: %w", dir, fs.ErrExist)
	}
	for _, role := range roles {
		if !keys.Has(role) {
			return nil, fmt.Errorf("init repository %s: %w: %s", dir, ErrMissingKey, role)
		}
	}
	for _, d := range []string{r.metaDir(), r.targetsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
	}
	now = now.UTC()
	r.root = metadata.Root(expires(now, expiry.Root))
	for _, role := range roles {
		key, err := metadata.KeyFromPublicKey(keys.Public(role))
		if err != nil {
			return nil, fmt.Errorf("init repository: %s key: %w", role, err)
		}
		if err := r.root.Signed.AddKey(key, role); err != nil {
			return nil, fmt.Errorf("init repository: add %s key: %w", role, err)
		}
	}
	// Consistent snapshots: clients fetch N.targets.json and hash-prefixed
	// images, so a publish in progress never mixes old and new files.
	r.root.Signed.ConsistentSnapshot = true
	if err := sign(r.root, keys, RoleRoot); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	rootJSON, err := r.root.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("init repository: encode root: %w", err)
	}
	for _, name := range []string{"1.root.json", "root.json"} {
		if err := r.writeMeta(name, rootJSON); err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
	}
	r.targets = metadata.Targets(expires(now, expiry.Targets))
	r.targets.Signed.Version = 0 // publish bumps it to 1
	r.snapshot = metadata.Snapshot(expires(now, expiry.Snapshot))
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(expires(now, expiry.Timestamp))
	r.timestamp.Signed.Version = 0
	if err := r.publish(now, true); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	return r, nil
}

// Open loads the repository in dir. keys may hold only some roles (a
// timestamp host has only the timestamp key); operations check for the
// keys they need.
func Open(dir string, keys *Keys, expiry Expiry) (*Repo, error) {
	if err := expiry.validate(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	r := &Repo{dir: dir, keys: keys, expiry: expiry}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	// A key the root does not name would sign metadata every device
	// refuses: catch it here rather than after publishing.
	for _, role := range roles {
		if !keys.Has(role) {
			continue
		}
		key, err := metadata.KeyFromPublicKey(keys.Public(role))
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %s key: %w", dir, role, err)
		}
		id, err := key.ID()
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %s key: %w", dir, role, err)
		}
		if rr := r.root.Signed.Roles[role]; rr == nil || !slices.Contains(rr.KeyIDs, id) {
			return nil, fmt.Errorf("open repository %s: %w: the %s key %s is not one the root names for %s", dir, ErrWrongKey, role, id, role)
		}
	}
	return r, nil
}

// load reads the four top-level metadata files from the directory. It
// changes r only when all four parse.
func (r *Repo) load() error {
	md := r.metaDir()
	root, err := metadata.Root().FromFile(filepath.Join(md, "root.json"))
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	targets, err := metadata.Targets().FromFile(filepath.Join(md, "targets.json"))
	if err != nil {
		return fmt.Errorf("targets: %w", err)
	}
	snapshot, err := metadata.Snapshot().FromFile(filepath.Join(md, "snapshot.json"))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	timestamp, err := metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json"))
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	r.root, r.targets, r.snapshot, r.timestamp = root, targets, snapshot, timestamp
	return nil
}

// AddImage publishes an image under name: it is hashed while copied into
// targets/ as <sha256>.<name>, listed in targets with meta as custom data,
// and targets, snapshot and timestamp are re-signed with bumped versions.
// A name is published once: the same bytes again are a no-op apart from
// re-signing, different bytes are refused with ErrTargetExists. It needs
// the targets, snapshot and timestamp keys.
func (r *Repo) AddImage(name string, image io.Reader, meta ImageMeta, now time.Time) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("add image: %w", err)
	}
	if err := meta.Validate(); err != nil {
		return fmt.Errorf("add image %s: %w", name, err)
	}
	for _, role := range []string{RoleTargets, RoleSnapshot, RoleTimestamp} {
		if !r.keys.Has(role) {
			return fmt.Errorf("add image %s: %w: %s", name, ErrMissingKey, role)
		}
	}
	custom, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("add image %s: encode metadata: %w", name, err)
	}
	if err := r.addTarget(name, image, custom, now); err != nil {
		return fmt.Errorf("add image %s: %w", name, err)
	}
	return nil
}

// addTarget stores content under name with custom metadata and publishes
// new targets, snapshot and timestamp; see AddImage.
func (r *Repo) addTarget(name string, content io.Reader, custom []byte, now time.Time) error {
	for _, role := range []string{RoleTargets, RoleSnapshot, RoleTimestamp} {
		if !r.keys.Has(role) {
			return fmt.Errorf("%w: %s", ErrMissingKey, role)
		}
	}
	sum, n, err := r.storeImage(name, content)
	if err != nil {
		return err
	}
	if old, ok := r.targets.Signed.Targets[name]; ok {
		if hex.EncodeToString(old.Hashes["sha256"]) != hex.EncodeToString(sum) {
			// The new bytes got their own hash-prefixed file; drop it.
			_ = os.Remove(filepath.Join(r.targetsDir(), hex.EncodeToString(sum)+"."+name))
			return fmt.Errorf("%w with sha256 %x", ErrTargetExists, []byte(old.Hashes["sha256"]))
		}
	}
	raw := json.RawMessage(custom)
	tf := &metadata.TargetFiles{
		Length: n,
		Hashes: metadata.Hashes{"sha256": sum},
		Custom: &raw,
		Path:   name,
	}
	prev := r.targets.Signed.Targets[name]
	r.targets.Signed.Targets[name] = tf
	if err := r.publish(now.UTC(), true); err != nil {
		// Leave the in-memory state as the files on disk still are.
		if prev == nil {
			delete(r.targets.Signed.Targets, name)
		} else {
			r.targets.Signed.Targets[name] = prev
		}
		return err
	}
	return nil
}

// storeImage copies image into targets/<sha256>.<name> through a temporary
// file, hashing on the way, and syncs it before the metadata names it.
func (r *Repo) storeImage(name string, image io.Reader) (sum []byte, n int64, err error) {
	f, err := os.CreateTemp(r.targetsDir(), ".upload-*")
	if err != nil {
		return nil, 0, fmt.Errorf("store image: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(f, h), image)
	if err != nil {
		return nil, 0, fmt.Errorf("store image: copy: %w", err)
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("store image: image is empty")
	}
	if err = f.Chmod(0o644); err != nil {
		return nil, 0, fmt.Errorf("store image: %w", err)
	}
	if err = f.Sync(); err != nil {
		return nil, 0, fmt.Errorf("store image: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return nil, 0, fmt.Errorf("store image: %w", err)
	}
	sum = h.Sum(nil)
	final := filepath.Join(r.targetsDir(), hex.EncodeToString(sum)+"."+name)
	if err = os.Rename(tmp, final); err != nil {
		return nil, 0, fmt.Errorf("store image: %w", err)
	}
	if err = syncDir(r.targetsDir()); err != nil {
		return nil, 0, fmt.Errorf("store image: %w", err)
	}
	return sum, n, nil
}

// RefreshTimestamp re-signs the timestamp with a bumped version and a new
// expiry from now. It needs only the timestamp key.
func (r *Repo) RefreshTimestamp(now time.Time) error {
	if err := r.publish(now.UTC(), false); err != nil {
		return fmt.Errorf("refresh timestamp: %w", err)
	}
	return nil
}

// publish signs and writes new metadata. With all set, targets and
// snapshot get new versions too. Files are written bottom-up (targets,
// snapshot, then timestamp last) so that a client reading the repository
// at any moment sees a complete old state or a complete new one.
func (r *Repo) publish(now time.Time, all bool) error {
	if !r.keys.Has(RoleTimestamp) {
		return fmt.Errorf("%w: %s", ErrMissingKey, RoleTimestamp)
	}
	targets, snapshot, timestamp := r.targets, r.snapshot, r.timestamp
	if all {
		if !r.keys.Has(RoleTargets) || !r.keys.Has(RoleSnapshot) {
			return fmt.Errorf("%w: targets and snapshot", ErrMissingKey)
		}
		t := *targets
		t.Signed.Version++
		t.Signed.Expires = expires(now, r.expiry.Targets)
		if err := sign(&t, r.keys, RoleTargets); err != nil {
			return err
		}
		b, err := t.ToBytes(true)
		if err != nil {
			return fmt.Errorf("encode targets: %w", err)
		}
		if err := r.writeMeta(fmt.Sprintf("%d.targets.json", t.Signed.Version), b); err != nil {
			return err
		}
		s := *snapshot
		s.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(t.Signed.Version)}
		s.Signed.Version++
		s.Signed.Expires = expires(now, r.expiry.Snapshot)
		if err := sign(&s, r.keys, RoleSnapshot); err != nil {
			return err
		}
		sb, err := s.ToBytes(true)
		if err != nil {
			return fmt.Errorf("encode snapshot: %w", err)
		}
		if err := r.writeMeta(fmt.Sprintf("%d.snapshot.json", s.Signed.Version), sb); err != nil {
			return err
		}
		targets, snapshot = &t, &s
		// The unversioned copies are for people and tools; clients of a
		// consistent-snapshot repository fetch the versioned names.
		if err := r.writeMeta("targets.json", b); err != nil {
			return err
		}
		if err := r.writeMeta("snapshot.json", sb); err != nil {
			return err
		}
	}
	ts := *timestamp
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(snapshot.Signed.Version)}
	ts.Signed.Version++
	ts.Signed.Expires = expires(now, r.expiry.Timestamp)
	if err := sign(&ts, r.keys, RoleTimestamp); err != nil {
		return err
	}
	b, err := ts.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encode timestamp: %w", err)
	}
	if err := r.writeMeta("timestamp.json", b); err != nil {
		return err
	}
	r.targets, r.snapshot, r.timestamp = targets, snapshot, &ts
	return nil
}

func (r *Repo) writeMeta(name string, data []byte) error {
	// World-readable: these files are served to anyone.
	if err := atomicfile.Write(filepath.Join(r.metaDir(), name), data, 0o644); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

// Targets lists the published images by name with their metadata.
// Deltas (AddDelta) are not images and are left out; List has them.
func (r *Repo) Targets() (map[string]ImageMeta, error) {
	out := make(map[string]ImageMeta, len(r.targets.Signed.Targets))
	for name, tf := range r.targets.Signed.Targets {
		if tf.Custom == nil {
			return nil, fmt.Errorf("list targets: %s: %w: no custom metadata", name, ErrBadImageMeta)
		}
		if isDelta(*tf.Custom) {
			continue
		}
		m, err := decodeImageMeta(*tf.Custom)
		if err != nil {
			return nil, fmt.Errorf("list targets: %s: %w", name, err)
		}
		out[name] = m
	}
	return out, nil
}

// sign replaces meta's signatures with one by role's key.
func sign[T metadata.Roles](meta *metadata.Metadata[T], keys *Keys, role string) error {
	priv, err := keys.private(role)
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	signer, err := signature.LoadED25519Signer(priv)
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	meta.ClearSignatures()
	if _, err := meta.Sign(signer); err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	return nil
}

// expires rounds to the second: TUF's expiry strings carry no fraction.
func expires(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
