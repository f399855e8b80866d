// Package bootctl is Atrium's boot control: the one place that tells the
// boot loader which A/B slot to try next, how many times, and which slot is
// good.
//
// The OTA agent installs an image into the inactive slot, calls
// [Control.TryNext] and reboots. The loader then counts the tries itself, so
// that a kernel that never reaches userspace still uses them up: after the
// last failed try the loader boots the old default again and the new slot is
// reported bad. When the health gate passes on the new slot the agent calls
// [Control.Bless]; when it fails, [Control.Reject] gives up at once.
//
// Three implementations share that contract and a behaviour test suite:
//
//   - [SystemdBoot] renames Boot Loader Specification entries on the ESP
//     ("+LEFT-DONE" boot counting) and edits loader/loader.conf;
//   - [GRUBEnv] keeps variables in the 1024-byte grubenv block, read and
//     decremented by the grub.cfg snippet [GRUBScript];
//   - [FileControl] is a JSON file that plays the loader's part too
//     ([FileControl.Boot]), for tests, the crash-point sweep and development
//     machines.
//
// Every change is an atomic replace or rename followed by a directory sync,
// so a power cut leaves either the old or the new state, and every
// operation is idempotent so an interrupted agent can simply repeat it.
// Each value is safe for concurrent use within one process; one process
// (roomd) is meant to own boot control.
package bootctl
