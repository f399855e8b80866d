// Package agent is the fleet agent inside roomd: it enrolls the device with
// an activation code, then checks in with fleetd's device API over mTLS,
// delivers a durable outbox of events and command results, applies the
// configuration profile the fleet sends (rolling it back when roomd turns
// unhealthy) and runs remote commands exactly once.
//
// It speaks provisioning/fleetapi and nothing else of the fleet: roomd
// never links the fleet server. roomd meets the agent at small interfaces
// (Device, Power, Wiper, and Updates for the fleet's update offers) and hands it the device identity as a
// crypto.Signer and a CSR function (provisioning/identity); the agent never
// sees the private key.
//
// # State on disk
//
// Everything lives in Options.StateDir (0700), each file replaced with
// internal/atomicfile so a power cut leaves the old or the new content:
//
//	device.json          enrollment: device ID, room, server, interval, revoked
//	cert.pem, ca.pem     the device certificate (0600) and the fleet CA bundle
//	profile.json         the profile in effect (what roomd was given last)
//	profile.prev.json    the one before it, for a rollback
//	profile-state.json   applied version, last outcome, versions never to retry
//	outbox/NNN.json      one queued record per file, oldest first
//	commands/HASH.json   the command journal: one file per command ID
//
// # Guarantees
//
//   - Nothing queued is lost: a record leaves the outbox only when the
//     server acknowledged its key. A record is sent with the same key
//     however often it is sent, so the server stores it once. A file that
//     cannot be read is set aside (renamed *.bad) with a log line and never
//     blocks the records behind it.
//   - A command runs at most once: its journal entry is written (and
//     synced) before it starts. After a restart a command that started
//     without a queued result is never run again; it is reported failed
//     ("interrupted by a restart"), except reboot, which is reported
//     succeeded, since the restart was the reboot.
//   - Factory reset wipes the device only after the server acknowledged its
//     result: a wiped device could not report it.
//   - A profile is applied all or nothing by Device.ApplyProfile. If roomd is
//     unhealthy during the settle period, or restarts during it, the
//     previous profile is applied again and the version is never retried.
//     Check-ins go on while a profile settles; its verdict is reported as
//     soon as it is reached.
//   - Run never fails because the server is unreachable: it backs off
//     (exponentially, with jitter, honouring Retry-After) and roomd keeps
//     working.
//
// # set-setting
//
// A set-setting command is merged into the profile in effect (its one
// top-level key replaced) and the merged profile is applied through
// Device.ApplyProfile, so roomd has a single path for fleet settings. The
// next profile version from the server replaces the whole layer, the
// setting included, as fleetapi.SetSettingArgs says. It is not watched for
// health like a profile: the command's result reports whether roomd took it.
package agent
