// Package identity is the device's identity for fleet enrollment: one ECDSA
// P-256 key that never leaves the device, the certificate request (CSR) that
// proves possession of it, and the hardware facts (model, vendor, serial,
// MACs, machine ID) the fleet server records at enrollment.
//
// # Where the key lives
//
// Open picks the key's home once and then sticks to it:
//
//   - In the TPM 2.0 when one is present (/dev/tpmrm0): a P-256 signing key
//     created under the owner hierarchy's storage root key (the TCG's ECC
//     SRK template, so the TPM derives the same SRK on every start from its
//     own seed and nothing has to be persisted inside the TPM). The TPM hands
//     back the key as a public part and a private part encrypted by the SRK;
//     both are saved in one file, identity.tpm, in the state directory. Only
//     this TPM can load that private part, and signing happens inside it.
//   - Otherwise in identity.key in the state directory: a PKCS#8 PEM file,
//     mode 0600.
//
// An identity that already exists always wins over what the hardware would
// suggest: a device enrolled with a file key keeps it when a TPM appears,
// and a device whose key is in the TPM refuses to start without the TPM
// rather than quietly making a new file key. Replacing the key would orphan
// the device in the fleet (its certificate names the old key), so no path in
// this package ever replaces or repairs a stored key: a damaged key file is
// an error naming the file (ErrDamaged), and a key file that group or others
// may read is refused (ErrInsecurePermissions) rather than fixed, because a
// key that may have been copied is no longer proof of anything; the way out
// is a factory reset (Erase) and a new enrollment, which the fleet console
// sees.
//
// New key files are written atomically (temporary file, fsync, hard link to
// the final name, directory fsync): a crash leaves either no identity or a
// whole one, and the link fails rather than overwrite an identity another
// process wrote first.
//
// # TPM transports
//
// The TPM is reached through the OpenTPM seam of Options. On the device it is
// the kernel's resource manager (/dev/tpmrm0). DialTPM speaks to a TPM that
// takes raw TPM 2.0 commands over a stream socket, as swtpm's "socket" server
// does (TCP or Unix); the tests run the real key code against swtpm that way.
package identity
