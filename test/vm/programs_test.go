package vm

import "testing"

func TestLddLine(t *testing.T) {
	for _, c := range []struct {
		line, name, path string
		ok               bool
	}{
		{"\tlinux-vdso.so.1 (0x00007ffc3b5f2000)", "", "", false},
		{"\tlibx264.so.164 => /lib/x86_64-linux-gnu/libx264.so.164 (0x00007f0d1c000000)", "libx264.so.164", "/lib/x86_64-linux-gnu/libx264.so.164", true},
		{"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0d1d5c1000)", "ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", true},
		{"\tlibmissing.so.1 => not found", "", "", false},
	} {
		name, path, ok := lddLine(c.line)
		if name != c.name || path != c.path || ok != c.ok {
			t.Errorf("lddLine(%q) = %q, %q, %v; want %q, %q, %v", c.line, name, path, ok, c.name, c.path, c.ok)
		}
	}
	if got := GuestCommand("roomd", "-config", "c.toml"); len(got) != 6 || got[0] != "testdata/programs/lib/ld-linux-x86-64.so.2" || got[3] != "testdata/programs/bin/roomd" {
		t.Errorf("GuestCommand = %q", got)
	}
}
