// Package provisioning will be the device side of fleet management: the
// device's identity key (in the TPM when there is one), zero-touch
// enrollment with an activation code, mTLS check-ins, configuration
// profiles applied through the OS's D-Bus services, and remote commands.
//
// It is reserved by the walking skeleton so that the layout is the final
// one; issue 6 fills it, together with cmd/fleetd. It runs inside roomd and
// takes its slot in daemon.System.
package provisioning
