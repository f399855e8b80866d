// Package release publishes and checks Atrium's update releases with The
// Update Framework (go-tuf/v2).
//
// The publishing side (Repo) keeps a TUF repository in a directory of plain
// static files that any HTTP server or CDN can serve:
//
//	metadata/N.root.json, root.json        the root of trust (keys, thresholds), every version kept
//	metadata/N.targets.json, targets.json  the images, with ImageMeta as custom data
//	metadata/N.snapshot.json, snapshot.json
//	metadata/timestamp.json                the only file clients fetch unversioned
//	targets/<sha256>.<name>                root-filesystem images (consistent snapshots)
//
// Every role has its own ed25519 key (Keys); root, targets and snapshot keys
// belong offline, only the timestamp key is needed for the routine
// RefreshTimestamp that keeps devices from seeing the repository as frozen
// (KeepTimestampFresh is that routine as a loop for the fleet server).
//
// Besides images, a repository lists deltas (package ota/delta) as targets
// of their own, named by DeltaName, whose signed DeltaMeta names the image
// they produce and the exact base they apply to (AddDelta, PublishDelta);
// Targets lists images only, Client.Delta finds the delta for the base a
// device runs.
//
// The device side (Client) runs TUF's client workflow against such a
// repository, with the root shipped in the image as the first trust anchor,
// a local metadata cache, bounded and timed downloads, and a time floor so
// that a device whose clock reads 1970 still refuses expired metadata. Its
// Target refuses any image TUF does not list, any custom metadata that does
// not decode strictly, and any image for other hardware. Every refusal wraps
// one of the sentinel errors in errors.go together with go-tuf's own error.
package release
