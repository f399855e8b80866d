package alsa

import (
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeSys is a system with fake sound cards: enough of ALSA's control and
// PCM ioctls, with the kernel's state machine, for the driver to enumerate,
// configure, stream and mix. Time on a fake PCM passes one period per poll,
// so a stream blocked on a full (or empty) buffer runs as fast as the test.
type fakeSys struct {
	t  *testing.T
	mu sync.Mutex

	cards  map[int]*fakeCard
	files  map[string]string // sysfs files
	links  map[string]string // sysfs symlinks, resolved
	fds    map[int]*fakeFD
	nextFD int
	// threadLocked counts LockThread calls not yet undone.
	threadLocked int
	// stall makes polls on PCMs wait for real (their timeout) without
	// time passing on the device, like hardware that stopped.
	stall bool
}

type fakeCard struct {
	id, name, driver string
	pcms             []*fakePCM
	elems            []*fakeElem
	gone             bool
}

type fakePCM struct {
	dev     int
	capture bool
	name    string
	subdevs int
	busy    []bool

	rate, channels, periodSize, periods [2]uint32

	// played collects what playback streams wrote, in order.
	played []int16
	// last is the most recent stream opened on the PCM.
	last *fakeFD
}

type fakeElem struct {
	numid    uint32
	name     string
	iface    int32
	typ      int32
	access   uint32
	min, max int64
	values   []int64
}

type fakeFD struct {
	card   *fakeCard
	pcm    *fakePCM // nil for a control device
	sub    int
	prefer int // control devices: PREFER_SUBDEVICE, -1 if none
	flags  int

	// PCM state.
	state          int32
	hw             hwParams
	period, buffer int
	sw             swParams
	queued         int   // playback: frames in the buffer; capture: frames captured, unread
	next           int16 // capture: next sample value (a ramp)
	injectXrun     bool
	transfers      int // READI/WRITEI calls so far
	xrunAt         int // the transfer that finds the stream in xrun, if > 0
	prepares       int
}

func newFakeSys(t *testing.T) *fakeSys {
	return &fakeSys{t: t, cards: map[int]*fakeCard{}, files: map[string]string{}, links: map[string]string{}, fds: map[int]*fakeFD{}, nextFD: 10}
}

// pcm returns a PCM with typical constraints: 8–192 kHz, 1–2 channels,
// periods of 32–8192 frames, 2–32 periods.
func pcm(dev int, capture bool, name string, subdevs int) *fakePCM {
	return &fakePCM{
		dev: dev, capture: capture, name: name, subdevs: subdevs, busy: make([]bool, subdevs),
		rate: [2]uint32{8000, 192000}, channels: [2]uint32{1, 2},
		periodSize: [2]uint32{32, 8192}, periods: [2]uint32{2, 32},
	}
}

func volume(numid uint32, name string, lo, hi, v int64) *fakeElem {
	return &fakeElem{numid: numid, name: name, iface: elemIfaceMixer, typ: elemTypeInteger,
		access: elemAccessRead | elemAccessWrite, min: lo, max: hi, values: []int64{v, v}}
}

func toggle(numid uint32, name string, on bool) *fakeElem {
	v := int64(0)
	if on {
		v = 1
	}
	return &fakeElem{numid: numid, name: name, iface: elemIfaceMixer, typ: elemTypeBoolean,
		access: elemAccessRead | elemAccessWrite, min: 0, max: 1, values: []int64{v, v}}
}

// loopback and dummy mimic snd-aloop and snd-dummy.
func loopbackCard() *fakeCard {
	return &fakeCard{id: "Loopback", name: "Loopback", driver: "Loopback", pcms: []*fakePCM{
		pcm(0, false, "Loopback PCM", 8), pcm(0, true, "Loopback PCM", 8),
		pcm(1, false, "Loopback PCM", 8), pcm(1, true, "Loopback PCM", 8),
	}, elems: []*fakeElem{
		{numid: 1, name: "PCM Rate Shift 100000", iface: 3, typ: elemTypeInteger, access: 3, min: 80000, max: 120000, values: []int64{100000}},
	}}
}

func dummyCard() *fakeCard {
	return &fakeCard{id: "Dummy", name: "Dummy", driver: "Dummy", pcms: []*fakePCM{
		pcm(0, false, "Dummy PCM", 1), pcm(0, true, "Dummy PCM", 1),
	}, elems: []*fakeElem{
		volume(1, "Master Volume", -50, 100, 100),
		toggle(2, "Master Capture Switch", true),
		volume(3, "Mic Volume", -50, 100, 25),
		toggle(4, "Mic Capture Switch", true),
	}}
}

func (f *fakeSys) addCard(idx int, c *fakeCard) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cards[idx] = c
}

// unplug makes a card vanish: its nodes go, and open files fail as after
// snd_card_disconnect.
func (f *fakeSys) unplug(idx int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cards[idx].gone = true
	delete(f.cards, idx)
}

// openFDs lists descriptors not closed.
func (f *fakeSys) openFDs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fds)
}

func (f *fakeSys) Open(p string, flags int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name := path.Split(p)
	if dir != "/dev/snd/" {
		return -1, unix.ENOENT
	}
	var ci, dev int
	var d byte
	if _, err := fmt.Sscanf(name, "controlC%d", &ci); err == nil && strings.HasPrefix(name, "controlC") {
		c, ok := f.cards[ci]
		if !ok {
			return -1, unix.ENOENT
		}
		return f.newFD(&fakeFD{card: c, prefer: -1, flags: flags}), nil
	}
	if _, err := fmt.Sscanf(name, "pcmC%dD%d%c", &ci, &dev, &d); err != nil {
		return -1, unix.ENOENT
	}
	c, ok := f.cards[ci]
	if !ok {
		return -1, unix.ENOENT
	}
	idx := slices.IndexFunc(c.pcms, func(q *fakePCM) bool { return q.dev == dev && q.capture == (d == 'c') })
	if idx < 0 {
		return -1, unix.ENOENT
	}
	if flags&unix.O_NONBLOCK == 0 {
		f.t.Errorf("open %s without O_NONBLOCK: a busy device would block the open", p)
	}
	q := c.pcms[idx]
	sub := -1
	if pref := f.preferred(c); pref >= 0 {
		if pref < q.subdevs && !q.busy[pref] {
			sub = pref
		}
	} else {
		sub = slices.Index(q.busy, false)
	}
	if sub < 0 {
		return -1, unix.EBUSY
	}
	q.busy[sub] = true
	fd := &fakeFD{card: c, pcm: q, sub: sub, flags: flags, state: stateOpen}
	q.last = fd
	return f.newFD(fd), nil
}

// preferred is the subdevice a control file of card asked for. The kernel
// matches it to the opening thread; the fake insists the thread is locked.
func (f *fakeSys) preferred(c *fakeCard) int {
	for _, fd := range f.fds {
		if fd.pcm == nil && fd.card == c && fd.prefer >= 0 {
			if f.threadLocked == 0 {
				f.t.Errorf("PCM opened with a preferred subdevice outside LockThread")
			}
			return fd.prefer
		}
	}
	return -1
}

func (f *fakeSys) newFD(fd *fakeFD) int {
	n := f.nextFD
	f.nextFD++
	f.fds[n] = fd
	return n
}

func (f *fakeSys) Close(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, ok := f.fds[n]
	if !ok {
		f.t.Errorf("close of fd %d, which is not open", n)
		return unix.EBADF
	}
	if fd.pcm != nil {
		fd.pcm.busy[fd.sub] = false
	}
	delete(f.fds, n)
	return nil
}

func (f *fakeSys) LockThread() func() {
	f.mu.Lock()
	f.threadLocked++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.threadLocked--
		f.mu.Unlock()
	}
}

func (f *fakeSys) ReadDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dir != "/dev/snd" {
		return nil, unix.ENOENT
	}
	if len(f.cards) == 0 {
		return nil, unix.ENOENT // devtmpfs removes snd/ with the last card
	}
	names := []string{"timer", "seq"}
	for i, c := range f.cards {
		names = append(names, fmt.Sprintf("controlC%d", i))
		for _, q := range c.pcms {
			d := 'p'
			if q.capture {
				d = 'c'
			}
			names = append(names, fmt.Sprintf("pcmC%dD%d%c", i, q.dev, d))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (f *fakeSys) ReadFile(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.files[p]
	if !ok {
		return nil, unix.ENOENT
	}
	return []byte(s), nil
}

func (f *fakeSys) EvalSymlinks(p string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.links[p]
	if !ok {
		return "", unix.ENOENT
	}
	return s, nil
}

// Poll lets one period pass on every polled running PCM.
func (f *fakeSys) Poll(fds []unix.PollFd, timeoutMs int) (int, error) {
	f.mu.Lock()
	if f.stall {
		f.mu.Unlock()
		time.Sleep(time.Duration(timeoutMs) * time.Millisecond)
		return 0, nil
	}
	defer f.mu.Unlock()
	n := 0
	for i := range fds {
		fd, ok := f.fds[int(fds[i].Fd)]
		fds[i].Revents = 0
		if !ok {
			fds[i].Revents = unix.POLLNVAL
			n++
			continue
		}
		if fd.card.gone {
			fds[i].Revents = unix.POLLERR | unix.POLLNVAL
			n++
			continue
		}
		fd.tick()
		if fd.state == stateXrun {
			fds[i].Revents |= unix.POLLERR
		}
		if fd.pcm.capture && fd.queued >= int(fd.sw.AvailMin) {
			fds[i].Revents |= unix.POLLIN
		}
		if !fd.pcm.capture && fd.buffer-fd.queued >= int(fd.sw.AvailMin) {
			fds[i].Revents |= unix.POLLOUT
		}
		if fds[i].Revents != 0 {
			n++
		}
	}
	return n, nil
}

// tick is one period of device time.
func (fd *fakeFD) tick() {
	if fd.state != stateRunning {
		return
	}
	if fd.pcm.capture {
		fd.queued += fd.period
		if fd.queued > fd.buffer {
			fd.state = stateXrun
		}
		return
	}
	fd.queued -= fd.period
	if fd.queued < 0 {
		fd.queued = 0
		fd.state = stateXrun
	}
}

func (f *fakeSys) Ioctl(n int, req uintptr, arg unsafe.Pointer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, ok := f.fds[n]
	if !ok {
		return unix.EBADF
	}
	if fd.card.gone {
		return unix.ENODEV
	}
	if fd.pcm == nil {
		return f.ctlIoctl(fd, req, arg)
	}
	return fd.pcmIoctl(req, arg)
}

func copyStr(dst []byte, s string) { copy(dst[:len(dst)-1], s) }

func (f *fakeSys) ctlIoctl(fd *fakeFD, req uintptr, arg unsafe.Pointer) error {
	c := fd.card
	switch req {
	case ctlIoctlCardInfo:
		ci := (*ctlCardInfo)(arg)
		*ci = ctlCardInfo{}
		for i, cc := range f.cards {
			if cc == c {
				ci.Card = int32(i)
			}
		}
		copyStr(ci.ID[:], c.id)
		copyStr(ci.Name[:], c.name)
		copyStr(ci.Driver[:], c.driver)
		return nil
	case ctlIoctlPCMNextDevice:
		p := (*int32)(arg)
		next := int32(-1)
		for _, q := range c.pcms {
			if int32(q.dev) > *p && (next < 0 || int32(q.dev) < next) {
				next = int32(q.dev)
			}
		}
		*p = next
		return nil
	case ctlIoctlPCMInfo:
		info := (*pcmInfo)(arg)
		for _, q := range c.pcms {
			if uint32(q.dev) == info.Device && q.capture == (info.Stream == streamCapture) {
				if info.Subdevice >= uint32(q.subdevs) {
					return unix.ENXIO
				}
				copyStr(info.Name[:], q.name)
				copyStr(info.ID[:], q.name)
				info.SubdevicesCount = uint32(q.subdevs)
				return nil
			}
		}
		return unix.ENOENT
	case ctlIoctlPCMPreferSubdev:
		fd.prefer = int(*(*int32)(arg))
		return nil
	case ctlIoctlElemList:
		l := (*ctlElemList)(arg)
		l.Count = uint32(len(c.elems))
		l.Used = 0
		if l.Space > 0 {
			ids := unsafe.Slice((*ctlElemID)(l.Pids), l.Space)
			for i, e := range c.elems {
				if uint32(i) >= l.Space {
					break
				}
				ids[i] = ctlElemID{Numid: e.numid, Iface: e.iface}
				copyStr(ids[i].Name[:], e.name)
				l.Used++
			}
		}
		return nil
	case ctlIoctlElemInfo:
		info := (*ctlElemInfo)(arg)
		e := c.elem(info.ID.Numid)
		if e == nil {
			return unix.ENOENT
		}
		info.ID = ctlElemID{Numid: e.numid, Iface: e.iface}
		copyStr(info.ID.Name[:], e.name)
		info.Type, info.Access, info.Count = e.typ, e.access, uint32(len(e.values))
		if e.typ == elemTypeInteger {
			putI64(info.Value[0:], e.min)
			putI64(info.Value[8:], e.max)
			putI64(info.Value[16:], 1)
		}
		return nil
	case ctlIoctlElemRead:
		v := (*ctlElemValue)(arg)
		e := c.elem(v.ID.Numid)
		if e == nil {
			return unix.ENOENT
		}
		for i, x := range e.values {
			v.setInteger(i, x)
		}
		return nil
	case ctlIoctlElemWrite:
		v := (*ctlElemValue)(arg)
		e := c.elem(v.ID.Numid)
		if e == nil {
			return unix.ENOENT
		}
		if e.access&elemAccessWrite == 0 {
			return unix.EPERM
		}
		for i := range e.values {
			x := v.integer(i)
			if x < e.min || x > e.max {
				return unix.EINVAL
			}
			e.values[i] = x
		}
		return nil
	}
	f.t.Errorf("unexpected control ioctl %#x", req)
	return unix.ENOTTY
}

func putI64(b []byte, x int64) { *(*int64)(unsafe.Pointer(&b[0])) = x }

func (c *fakeCard) elem(numid uint32) *fakeElem {
	for _, e := range c.elems {
		if e.numid == numid {
			return e
		}
	}
	return nil
}

// refineInterval intersects interval param with [lo, hi].
func refineInterval(p *hwParams, param int, lim [2]uint32) bool {
	iv := &p.Intervals[param-firstInterval]
	lo, hi := p.interval(param)
	lo, hi = max(lo, lim[0]), min(hi, lim[1])
	if lo > hi {
		iv.Flags |= intervalEmpty
		return false
	}
	*iv = interval{Min: lo, Max: hi, Flags: intervalInteger}
	return true
}

func refineMask(p *hwParams, param, v int) bool {
	m := &p.Masks[param]
	if m.Bits[v/32]&(1<<(v%32)) == 0 {
		return false
	}
	*m = mask{}
	m.Bits[v/32] = 1 << (v % 32)
	return true
}

// refineParams does what the kernel's HW_REFINE does for the fake's few
// constraints; the buffer size follows period size × periods.
func (q *fakePCM) refine(p *hwParams) bool {
	if p.Rmask == 0 {
		return true
	}
	if !refineMask(p, paramAccess, accessRWInterleaved) || !refineMask(p, paramFormat, formatS16LE) || !refineMask(p, paramSubformat, subformatStd) {
		return false
	}
	if !refineInterval(p, paramChannels, q.channels) || !refineInterval(p, paramRate, q.rate) ||
		!refineInterval(p, paramPeriodSize, q.periodSize) || !refineInterval(p, paramPeriods, q.periods) {
		return false
	}
	ps0, ps1 := p.interval(paramPeriodSize)
	pn0, pn1 := p.interval(paramPeriods)
	return refineInterval(p, paramBufferSize, [2]uint32{ps0 * pn0, uint32(min(uint64(ps1)*uint64(pn1), math.MaxUint32))})
}

func (fd *fakeFD) pcmIoctl(req uintptr, arg unsafe.Pointer) error {
	switch req {
	case pcmIoctlInfo:
		info := (*pcmInfo)(arg)
		*info = pcmInfo{Device: uint32(fd.pcm.dev), Subdevice: uint32(fd.sub), SubdevicesCount: uint32(fd.pcm.subdevs)}
		return nil
	case pcmIoctlHWRefine:
		if !fd.pcm.refine((*hwParams)(arg)) {
			return unix.EINVAL
		}
		return nil
	case pcmIoctlHWParams:
		p := (*hwParams)(arg)
		if !fd.pcm.refine(p) {
			return unix.EINVAL
		}
		// Like snd_pcm_hw_params_choose: the smallest period, the
		// largest buffer.
		ps, _ := p.interval(paramPeriodSize)
		_, pn := p.interval(paramPeriods)
		p.setInterval(paramPeriodSize, ps, ps)
		p.setInterval(paramPeriods, pn, pn)
		p.setInterval(paramBufferSize, ps*pn, ps*pn)
		fd.hw, fd.period, fd.buffer = *p, int(ps), int(ps*pn)
		fd.state = stateSetup
		return nil
	case pcmIoctlSWParams:
		if fd.state < stateSetup {
			return unix.EBADFD
		}
		sw := (*swParams)(arg)
		if sw.AvailMin == 0 || sw.StopThreshold == 0 || sw.StartThreshold == 0 {
			return unix.EINVAL
		}
		sw.Boundary = uint64(fd.buffer) << 20
		fd.sw = *sw
		return nil
	case pcmIoctlPrepare:
		if fd.state < stateSetup {
			return unix.EBADFD
		}
		fd.state, fd.queued = statePrepared, 0
		fd.prepares++
		return nil
	case pcmIoctlDrop:
		if fd.state >= statePrepared {
			fd.state = stateSetup
		}
		return nil
	case pcmIoctlResume:
		return unix.ENOSYS
	case pcmIoctlSyncPtr:
		sp := (*syncPtr)(arg)
		sp.State = fd.state
		return nil
	case pcmIoctlDelay:
		if fd.state == stateXrun {
			return unix.EPIPE
		}
		*(*int64)(arg) = int64(fd.queued)
		return nil
	case pcmIoctlWriteIFrame, pcmIoctlReadIFrames:
		return fd.transfer((*xferi)(arg), req == pcmIoctlReadIFrames)
	}
	return unix.ENOTTY
}

func (fd *fakeFD) transfer(x *xferi, read bool) error {
	if read != fd.pcm.capture {
		return unix.EINVAL
	}
	fd.transfers++
	if fd.injectXrun || fd.transfers == fd.xrunAt {
		fd.injectXrun = false
		fd.state = stateXrun
	}
	switch fd.state {
	case statePrepared, stateRunning:
	case stateXrun:
		return unix.EPIPE
	default:
		return unix.EBADFD
	}
	ch := int(fd.hw.Intervals[paramChannels-firstInterval].Min)
	if read {
		if fd.state == statePrepared && x.Frames >= fd.sw.StartThreshold {
			fd.state = stateRunning
		}
		n := min(int(x.Frames), fd.queued)
		if n == 0 {
			return unix.EAGAIN
		}
		buf := unsafe.Slice((*int16)(x.Buf), n*ch)
		for i := range buf {
			buf[i] = fd.next
			fd.next++
		}
		fd.queued -= n
		x.Result = int64(n)
		return nil
	}
	n := min(int(x.Frames), fd.buffer-fd.queued)
	if n == 0 {
		return unix.EAGAIN
	}
	fd.pcm.played = append(fd.pcm.played, unsafe.Slice((*int16)(x.Buf), n*ch)...)
	fd.queued += n
	if fd.state == statePrepared && uint64(fd.queued) >= fd.sw.StartThreshold {
		fd.state = stateRunning
	}
	x.Result = int64(n)
	return nil
}

// lastStream returns the last stream opened on a card's PCM.
func (f *fakeSys) lastStream(card, dev int, capture bool) *fakeFD {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.cards[card].pcms {
		if q.dev == dev && q.capture == capture {
			return q.last
		}
	}
	return nil
}

// with runs fn under the fake's lock, to inspect or change its state.
func (f *fakeSys) with(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}
