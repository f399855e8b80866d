// Package osconfig applies the device's settings through the operating
// system's own D-Bus services rather than by editing their files behind
// their backs: the room name becomes the hostname (systemd-hostnamed), the
// time zone and NTP go to systemd-timedated, reboot, power-off and the
// shutdown inhibitor to systemd-logind, unit restarts to systemd itself,
// the room's Wi-Fi, wired IPv4 and proxy settings to NetworkManager's
// connection profiles "atrium-wifi" and "atrium-wired", and the
// connectivity state is read from NetworkManager.
//
// Every call is non-interactive (no polkit prompt can appear on a kiosk) and
// takes a context. A setting the OS refuses comes back as an error that
// names the service, the operation and the service's D-Bus error (a
// [*ServiceError]); nothing here retries or pretends success, so the
// service's previous value stays in effect. Input the services would refuse
// anyway (an empty room name, an unknown time zone, a malformed unit name)
// is rejected before any call.
//
// [Open] connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS redirects it,
// as do [WithAddress] and [WithDialer]); tests run a private dbus-daemon
// with fake services under the real names.
package osconfig
