// Package rollout is the logic of staged rollouts in fleetd, kept free of
// storage and HTTP so it can be tested as plain tables: rings and the
// deterministic ring of each device, the offer a device gets on a
// check-in, the evaluation that advances, halts or completes a rollout,
// and the catalog of releases read from the TUF repository that fleetd
// serves.
//
// The split of duties is Uptane's: a rollout decides which image a device
// should run; the release's TUF metadata, which only the release keys can
// sign, proves the image genuine on the device. Nothing here can make a
// device install an image its own TUF client does not vouch for.
//
// Ring membership is deterministic and needs no stored assignment: a
// device's bucket is the first 8 bytes of SHA-256(rolloutID + "/" +
// deviceID), big-endian, mod 100, and it belongs to the first ring whose
// cumulative Percent exceeds its bucket. A new rollout reshuffles the
// fleet, so the same rooms are not always the canaries.
package rollout
