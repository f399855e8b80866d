package release

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RotateKeys replaces every role's key with next's: it publishes root
// version N+1 naming the new keys, signed by both the current root key
// (so devices trusting root N accept it) and the new one (so it is valid
// under its own terms), then re-signs targets, snapshot and timestamp with
// the new keys. Devices follow the chain of roots on their next Refresh;
// anything signed with an old key is refused from then on. It needs the
// current root key and all of next's keys. Passing the current keys
// renews the root (a new version and expiry) without changing trust.
func (r *Repo) RotateKeys(next *Keys, now time.Time) error {
	oldRoot, err := r.keys.private(RoleRoot)
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	for _, role := range roles {
		if !next.Has(role) {
			return fmt.Errorf("rotate keys: new keys: %w: %s", ErrMissingKey, role)
		}
	}
	now = now.UTC()
	nr := *r.root
	nr.Signed.Version++
	nr.Signed.Expires = expires(now, r.expiry.Root)
	nr.Signed.Keys = map[string]*metadata.Key{}
	nr.Signed.Roles = map[string]*metadata.Role{}
	for _, role := range roles {
		nr.Signed.Roles[role] = &metadata.Role{KeyIDs: []string{}, Threshold: 1}
	}
	for _, role := range roles {
		key, err := metadata.KeyFromPublicKey(next.Public(role))
		if err != nil {
			return fmt.Errorf("rotate keys: %s key: %w", role, err)
		}
		if err := nr.Signed.AddKey(key, role); err != nil {
			return fmt.Errorf("rotate keys: add %s key: %w", role, err)
		}
	}
	nr.ClearSignatures()
	newRoot, _ := next.private(RoleRoot)
	for _, priv := range []ed25519.PrivateKey{oldRoot, newRoot} {
		signer, err := signature.LoadED25519Signer(priv)
		if err != nil {
			return fmt.Errorf("rotate keys: %w", err)
		}
		if _, err := nr.Sign(signer); err != nil {
			return fmt.Errorf("rotate keys: sign root: %w", err)
		}
		if oldRoot.Equal(newRoot) {
			break // the root key itself stays: one signature is both
		}
	}
	b, err := nr.ToBytes(true)
	if err != nil {
		return fmt.Errorf("rotate keys: encode root: %w", err)
	}
	if err := r.writeMeta(fmt.Sprintf("%d.root.json", nr.Signed.Version), b); err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	if err := r.writeMeta("root.json", b); err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	r.root, r.keys = &nr, next
	if err := r.publish(now, true); err != nil {
		// Root N+1 is out; until the other roles are re-signed with the
		// new keys devices refuse them. Open the repository with the new
		// keys and publish again (AddImage of an existing image).
		return fmt.Errorf("rotate keys: root %d written, re-signing the other roles failed: %w", nr.Signed.Version, err)
	}
	return nil
}
