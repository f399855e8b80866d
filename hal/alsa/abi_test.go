package alsa

import (
	"testing"
	"unsafe"
)

// TestABI pins struct sizes and ioctl numbers to the values of the 64-bit
// kernel ABI, as printed by a C program built against <sound/asound.h>
// (Linux 6.1 UAPI headers, x86_64). A wrong size would make every ioctl
// fail with ENOTTY, or worse, let the kernel read past a struct.
func TestABI(t *testing.T) {
	sizes := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"snd_ctl_card_info", unsafe.Sizeof(ctlCardInfo{}), 376},
		{"snd_pcm_info", unsafe.Sizeof(pcmInfo{}), 288},
		{"snd_pcm_hw_params", unsafe.Sizeof(hwParams{}), 608},
		{"snd_pcm_sw_params", unsafe.Sizeof(swParams{}), 136},
		{"snd_xferi", unsafe.Sizeof(xferi{}), 24},
		{"snd_pcm_sync_ptr", unsafe.Sizeof(syncPtr{}), 136},
		{"snd_ctl_elem_id", unsafe.Sizeof(ctlElemID{}), 64},
		{"snd_ctl_elem_list", unsafe.Sizeof(ctlElemList{}), 80},
		{"snd_ctl_elem_info", unsafe.Sizeof(ctlElemInfo{}), 272},
		{"snd_ctl_elem_value", unsafe.Sizeof(ctlElemValue{}), 1224},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("sizeof(%s) = %d, want %d", s.name, s.got, s.want)
		}
	}

	offsets := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"hw_params.intervals", unsafe.Offsetof(hwParams{}.Intervals), 260},
		{"hw_params.rmask", unsafe.Offsetof(hwParams{}.Rmask), 512},
		{"hw_params.fifo_size", unsafe.Offsetof(hwParams{}.FifoSize), 536},
		{"sw_params.avail_min", unsafe.Offsetof(swParams{}.AvailMin), 16},
		{"sw_params.boundary", unsafe.Offsetof(swParams{}.Boundary), 64},
		{"sw_params.proto", unsafe.Offsetof(swParams{}.Proto), 72},
		{"sync_ptr.s.status.state", unsafe.Offsetof(syncPtr{}.State), 8},
		{"sync_ptr.s.status.hw_ptr", unsafe.Offsetof(syncPtr{}.HWPtr), 16},
		{"sync_ptr.s.status.suspended_state", unsafe.Offsetof(syncPtr{}.SuspendedState), 40},
		{"sync_ptr.c.control.appl_ptr", unsafe.Offsetof(syncPtr{}.ApplPtr), 72},
		{"elem_info.count", unsafe.Offsetof(ctlElemInfo{}.Count), 72},
		{"elem_info.value", unsafe.Offsetof(ctlElemInfo{}.Value), 80},
		{"elem_value.value", unsafe.Offsetof(ctlElemValue{}.Value), 72},
		{"elem_list.pids", unsafe.Offsetof(ctlElemList{}.Pids), 16},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}

	ioctls := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"SNDRV_CTL_IOCTL_CARD_INFO", ctlIoctlCardInfo, 0x81785501},
		{"SNDRV_CTL_IOCTL_ELEM_LIST", ctlIoctlElemList, 0xc0505510},
		{"SNDRV_CTL_IOCTL_ELEM_INFO", ctlIoctlElemInfo, 0xc1105511},
		{"SNDRV_CTL_IOCTL_ELEM_READ", ctlIoctlElemRead, 0xc4c85512},
		{"SNDRV_CTL_IOCTL_ELEM_WRITE", ctlIoctlElemWrite, 0xc4c85513},
		{"SNDRV_CTL_IOCTL_PCM_NEXT_DEVICE", ctlIoctlPCMNextDevice, 0x80045530},
		{"SNDRV_CTL_IOCTL_PCM_INFO", ctlIoctlPCMInfo, 0xc1205531},
		{"SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE", ctlIoctlPCMPreferSubdev, 0x40045532},
		{"SNDRV_PCM_IOCTL_INFO", pcmIoctlInfo, 0x81204101},
		{"SNDRV_PCM_IOCTL_HW_REFINE", pcmIoctlHWRefine, 0xc2604110},
		{"SNDRV_PCM_IOCTL_HW_PARAMS", pcmIoctlHWParams, 0xc2604111},
		{"SNDRV_PCM_IOCTL_SW_PARAMS", pcmIoctlSWParams, 0xc0884113},
		{"SNDRV_PCM_IOCTL_DELAY", pcmIoctlDelay, 0x80084121},
		{"SNDRV_PCM_IOCTL_SYNC_PTR", pcmIoctlSyncPtr, 0xc0884123},
		{"SNDRV_PCM_IOCTL_PREPARE", pcmIoctlPrepare, 0x4140},
		{"SNDRV_PCM_IOCTL_DROP", pcmIoctlDrop, 0x4143},
		{"SNDRV_PCM_IOCTL_RESUME", pcmIoctlResume, 0x4147},
		{"SNDRV_PCM_IOCTL_WRITEI_FRAMES", pcmIoctlWriteIFrame, 0x40184150},
		{"SNDRV_PCM_IOCTL_READI_FRAMES", pcmIoctlReadIFrames, 0x80184151},
	}
	for _, i := range ioctls {
		if i.got != i.want {
			t.Errorf("%s = %#x, want %#x", i.name, i.got, i.want)
		}
	}
}

func TestCandidates(t *testing.T) {
	for _, tc := range []struct {
		want, lo, hi uint32
		first        []uint32
	}{
		{480, 32, 8192, []uint32{480, 481, 479}},
		{480, 1024, 8192, []uint32{1024}},   // the device's minimum first
		{480, 32, 256, []uint32{256}},       // its maximum
		{4, 2, 32, []uint32{4, 5, 3, 6, 2}}, // periods
	} {
		got := candidates(tc.want, tc.lo, tc.hi)
		if len(got) < len(tc.first) {
			t.Errorf("candidates(%d, %d, %d) = %v", tc.want, tc.lo, tc.hi, got)
			continue
		}
		for i, w := range tc.first {
			if got[i] != w {
				t.Errorf("candidates(%d, %d, %d) = %v, want it to start with %v", tc.want, tc.lo, tc.hi, got, tc.first)
				break
			}
		}
		for _, v := range got {
			if v < tc.lo || v > tc.hi {
				t.Errorf("candidates(%d, %d, %d) = %v: %d out of range", tc.want, tc.lo, tc.hi, got, v)
			}
		}
	}
	if got := candidates(4, 8, 2); got != nil {
		t.Errorf("candidates on an empty range = %v", got)
	}
}
