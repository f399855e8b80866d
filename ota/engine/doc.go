// Package engine is the device's update state machine: it takes a target
// the fleet chose (already vouched for by TUF), streams it into the
// inactive slot, arms the boot loader to try it, and after the reboot lets
// the health gate bless or reject it.
//
// Every transition is persisted in one JSON state file (written with
// internal/atomicfile) before the engine acts on it or right after an
// idempotent action, so a power cut between any two steps resumes where it
// stopped: [Engine.AfterBoot] reconciles the file with what the boot loader
// says, and [Engine.Step] advances one transition at a time.
//
// States and transitions:
//
//	idle ─Offer→ checking ─Step→ downloading ─Step→ installing ─Step→ rebooting
//	rebooting ─AfterBoot (new slot booted)→ verifying
//	rebooting/verifying ─AfterBoot (loader fell back)→ rolled-back
//	verifying ─Healthy→ committed
//	verifying ─Unhealthy→ rolled-back (caller reboots to fall back)
//	downloading ─Step (too many failures)→ failed
//	checking ─Step (floor or never-retry changed since the offer)→ failed
//	checking/downloading/installing ─Cancel (offer withdrawn)→ idle
//
// "downloading" covers download, write and read-back verification in one
// streaming step (package install never stages the image). A target with a
// delta against the running slot (Target.Delta, with Options.OpenBase) is
// written from it instead; a delta that does not fit that slot is dropped
// from the record for the whole image, in the same step and without
// counting a failed attempt; "installing" is
// copying the slot's kernel and initramfs to where the loader reads them
// (Options.BootFiles, for systemd-boot) and then arming the boot loader
// (TryNext), once the slot is verified.
//
// A version that failed to boot or failed the health gate joins the
// never-retry set; committing raises the security-version floor to the
// new image's security version. Both survive a corrupt state file when the
// corrupt file still yields them. The record also keeps the version each
// slot holds once an update to it committed (SlotVersions), so the device
// can say what it runs.
//
// [Engine.Record] and [Engine.State] read a copy of the persisted record
// and never wait for a Step, which holds the engine for a whole download.
package engine
