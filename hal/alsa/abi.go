package alsa

import (
	"bytes"
	"encoding/binary"
	"unsafe"
)

// This file mirrors the parts of <sound/asound.h> the driver uses, for the
// 64-bit ABI (amd64 and arm64 share it). The structs are laid out so that Go
// places every field where the C compiler does; abi_test.go asserts their
// sizes and the resulting ioctl numbers, which embed the sizes, against the
// values the kernel headers give.

// ioctl request encoding (asm-generic/ioctl.h, used by x86 and arm64).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

// Control device ioctls ('U').
var (
	ctlIoctlCardInfo        = ioc(iocRead, 'U', 0x01, unsafe.Sizeof(ctlCardInfo{}))
	ctlIoctlElemList        = ioc(iocRead|iocWrite, 'U', 0x10, unsafe.Sizeof(ctlElemList{}))
	ctlIoctlElemInfo        = ioc(iocRead|iocWrite, 'U', 0x11, unsafe.Sizeof(ctlElemInfo{}))
	ctlIoctlElemRead        = ioc(iocRead|iocWrite, 'U', 0x12, unsafe.Sizeof(ctlElemValue{}))
	ctlIoctlElemWrite       = ioc(iocRead|iocWrite, 'U', 0x13, unsafe.Sizeof(ctlElemValue{}))
	ctlIoctlPCMNextDevice   = ioc(iocRead, 'U', 0x30, 4)
	ctlIoctlPCMInfo         = ioc(iocRead|iocWrite, 'U', 0x31, unsafe.Sizeof(pcmInfo{}))
	ctlIoctlPCMPreferSubdev = ioc(iocWrite, 'U', 0x32, 4)
)

// PCM device ioctls ('A').
var (
	pcmIoctlInfo        = ioc(iocRead, 'A', 0x01, unsafe.Sizeof(pcmInfo{}))
	pcmIoctlHWRefine    = ioc(iocRead|iocWrite, 'A', 0x10, unsafe.Sizeof(hwParams{}))
	pcmIoctlHWParams    = ioc(iocRead|iocWrite, 'A', 0x11, unsafe.Sizeof(hwParams{}))
	pcmIoctlSWParams    = ioc(iocRead|iocWrite, 'A', 0x13, unsafe.Sizeof(swParams{}))
	pcmIoctlDelay       = ioc(iocRead, 'A', 0x21, 8)
	pcmIoctlSyncPtr     = ioc(iocRead|iocWrite, 'A', 0x23, unsafe.Sizeof(syncPtr{}))
	pcmIoctlPrepare     = ioc(iocNone, 'A', 0x40, 0)
	pcmIoctlDrop        = ioc(iocNone, 'A', 0x43, 0)
	pcmIoctlResume      = ioc(iocNone, 'A', 0x47, 0)
	pcmIoctlWriteIFrame = ioc(iocWrite, 'A', 0x50, unsafe.Sizeof(xferi{}))
	pcmIoctlReadIFrames = ioc(iocRead, 'A', 0x51, unsafe.Sizeof(xferi{}))
)

// pcmProtocol is the PCM protocol version this file follows (2.0.15, the
// kernel 6.1 one); sw_params.proto carries it.
const pcmProtocol = 2<<16 | 0<<8 | 15

// PCM streams.
const (
	streamPlayback = 0
	streamCapture  = 1
)

// PCM states (snd_pcm_state_t).
const (
	stateOpen         = 0
	stateSetup        = 1
	statePrepared     = 2
	stateRunning      = 3
	stateXrun         = 4
	stateDraining     = 5
	statePaused       = 6
	stateSuspended    = 7
	stateDisconnected = 8
)

// Hardware parameter indices: three masks, then intervals from 8.
const (
	paramAccess     = 0
	paramFormat     = 1
	paramSubformat  = 2
	paramChannels   = 10
	paramRate       = 11
	paramPeriodSize = 13
	paramPeriods    = 15
	paramBufferSize = 17

	firstInterval = 8
)

// Mask values.
const (
	accessRWInterleaved = 3
	formatS16LE         = 2
	subformatStd        = 0
)

// Interval flag bits (a C bitfield: openmin:1, openmax:1, integer:1, empty:1).
const (
	intervalOpenMin = 1 << 0
	intervalOpenMax = 1 << 1
	intervalInteger = 1 << 2
	intervalEmpty   = 1 << 3
)

// sync_ptr flags: ask the kernel to report, rather than take, these values.
const (
	syncPtrHWSync   = 1 << 0
	syncPtrAppl     = 1 << 1
	syncPtrAvailMin = 1 << 2
)

// Control element interfaces, types and access bits.
const (
	elemIfaceMixer = 2

	elemTypeBoolean = 1
	elemTypeInteger = 2

	elemAccessRead     = 1 << 0
	elemAccessWrite    = 1 << 1
	elemAccessInactive = 1 << 8
)

// struct snd_ctl_card_info (376 bytes).
type ctlCardInfo struct {
	Card       int32
	_          int32
	ID         [16]byte
	Driver     [16]byte
	Name       [32]byte
	LongName   [80]byte
	_          [16]byte
	MixerName  [80]byte
	Components [128]byte
}

// struct snd_pcm_info (288 bytes).
type pcmInfo struct {
	Device          uint32
	Subdevice       uint32
	Stream          int32
	Card            int32
	ID              [64]byte
	Name            [80]byte
	Subname         [32]byte
	DevClass        int32
	DevSubclass     int32
	SubdevicesCount uint32
	SubdevicesAvail uint32
	Sync            [16]byte
	_               [64]byte
}

// struct snd_mask: 256 bits.
type mask struct{ Bits [8]uint32 }

// struct snd_interval.
type interval struct {
	Min, Max uint32
	Flags    uint32
}

// struct snd_pcm_hw_params (608 bytes).
type hwParams struct {
	Flags     uint32
	Masks     [3]mask
	_         [5]mask
	Intervals [12]interval
	_         [9]interval
	Rmask     uint32
	Cmask     uint32
	Info      uint32
	Msbits    uint32
	RateNum   uint32
	RateDen   uint32
	FifoSize  uint64
	_         [64]byte
}

// struct snd_pcm_sw_params (136 bytes).
type swParams struct {
	TstampMode       int32
	PeriodStep       uint32
	SleepMin         uint32
	AvailMin         uint64
	XferAlign        uint64
	StartThreshold   uint64
	StopThreshold    uint64
	SilenceThreshold uint64
	SilenceSize      uint64
	Boundary         uint64
	Proto            uint32
	TstampType       uint32
	_                [56]byte
}

// struct snd_xferi (24 bytes). Buf is a pointer so the garbage collector
// keeps the samples alive (and in place) during the call.
type xferi struct {
	Result int64
	Buf    unsafe.Pointer
	Frames uint64
}

// struct snd_pcm_sync_ptr (136 bytes): flags, the mmap status, the mmap
// control, each union padded to 64 bytes.
type syncPtr struct {
	Flags          uint32
	_              uint32
	State          int32
	_              int32
	HWPtr          uint64
	Tstamp         [2]int64
	SuspendedState int32
	_              int32
	AudioTstamp    [2]int64
	_              [8]byte
	ApplPtr        uint64
	AvailMin       uint64
	_              [48]byte
}

// struct snd_ctl_elem_id (64 bytes).
type ctlElemID struct {
	Numid     uint32
	Iface     int32
	Device    uint32
	Subdevice uint32
	Name      [44]byte
	Index     uint32
}

// struct snd_ctl_elem_list (80 bytes).
type ctlElemList struct {
	Offset uint32
	Space  uint32
	Used   uint32
	Count  uint32
	Pids   unsafe.Pointer
	_      [50]byte
}

// struct snd_ctl_elem_info (272 bytes). Value is the union; for INTEGER and
// BOOLEAN elements it starts with long min, max, step.
type ctlElemInfo struct {
	ID     ctlElemID
	Type   int32
	Access uint32
	Count  uint32
	Owner  int32
	Value  [128]byte
	_      [64]byte
}

func (i *ctlElemInfo) intRange() (lo, hi, step int64) {
	return int64(binary.NativeEndian.Uint64(i.Value[0:])),
		int64(binary.NativeEndian.Uint64(i.Value[8:])),
		int64(binary.NativeEndian.Uint64(i.Value[16:]))
}

// struct snd_ctl_elem_value (1224 bytes). For INTEGER and BOOLEAN elements,
// Value holds one long per channel.
type ctlElemValue struct {
	ID       ctlElemID
	Indirect uint32
	_        uint32
	Value    [1024]byte
	_        [128]byte
}

func (v *ctlElemValue) integer(i int) int64 {
	return int64(binary.NativeEndian.Uint64(v.Value[8*i:]))
}

func (v *ctlElemValue) setInteger(i int, x int64) {
	binary.NativeEndian.PutUint64(v.Value[8*i:], uint64(x))
}

// cstr returns a NUL-terminated C string from a fixed array.
func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
