-- test/pipewiretest: no hardware is watched (the test's PipeWire must never
-- open the machine's own sound cards or cameras), and no flatpak portal,
-- which would need D-Bus.
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
default_access.properties["enable-flatpak-portal"] = false
