package v4l2

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// funcFD is an FD whose ioctls a test answers with a function, the way a
// driver would: casting arg to the struct the request number names.
type funcFD struct {
	ioctl func(req uint32, arg unsafe.Pointer) error
	calls []uint32
}

func (f *funcFD) Ioctl(req uint32, arg unsafe.Pointer) error {
	f.calls = append(f.calls, req)
	return f.ioctl(req, arg)
}
func (f *funcFD) Mmap(offset int64, length int) ([]byte, error) { return make([]byte, length), nil }
func (f *funcFD) Munmap([]byte) error                           { return nil }
func (f *funcFD) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	return events, nil
}
func (f *funcFD) Close() error { return nil }

func TestEnumFormatsStopsAtEINVAL(t *testing.T) {
	fourccs := []uint32{PixFmtYUYV, PixFmtMJPEG}
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		if req != IoctlEnumFmt {
			return unix.ENOTTY
		}
		f := (*FmtDesc)(arg)
		if f.Type != BufTypeVideoCapture {
			return unix.EINVAL
		}
		if int(f.Index) >= len(fourccs) {
			return unix.EINVAL
		}
		f.PixelFormat = fourccs[f.Index]
		copy(f.Description[:], FourCCString(fourccs[f.Index])+" format")
		return nil
	}}
	d := NewDevice(fd, "/dev/video9")
	got, err := d.EnumFormats(BufTypeVideoCapture)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PixelFormat != PixFmtYUYV || got[1].PixelFormat != PixFmtMJPEG || got[1].Name() != "MJPG format" {
		t.Errorf("EnumFormats = %+v", got)
	}
}

func TestErrorsNameIoctlAndPath(t *testing.T) {
	fd := &funcFD{ioctl: func(uint32, unsafe.Pointer) error { return unix.ENODEV }}
	d := NewDevice(fd, "/dev/video3")
	f := Format{Type: BufTypeVideoCapture}
	err := d.SetFormat(&f)
	if !errors.Is(err, unix.ENODEV) || !Gone(err) {
		t.Fatalf("SetFormat error %v does not wrap ENODEV", err)
	}
	if want := "v4l2: VIDIOC_S_FMT /dev/video3: no such device"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if Gone(&Error{Op: "VIDIOC_DQBUF", Err: unix.EIO}) {
		t.Error("Gone(EIO) = true; EIO alone does not prove the device is gone")
	}
}

func TestFormatUnionViews(t *testing.T) {
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		f := (*Format)(arg)
		switch f.Type {
		case BufTypeVideoCapture:
			p := f.Pix()
			p.BytesPerLine = p.Width * 2
			p.SizeImage = p.BytesPerLine * p.Height
		case BufTypeVideoOutputMPlane:
			p := f.PixMP()
			p.NumPlanes = 1
			p.PlaneFmt[0].BytesPerLine = p.Width
			p.PlaneFmt[0].SizeImage = p.Width * p.Height * 3 / 2
		}
		return nil
	}}
	d := NewDevice(fd, "/dev/video0")
	f := Format{Type: BufTypeVideoCapture}
	f.Pix().Width, f.Pix().Height, f.Pix().PixelFormat = 640, 480, PixFmtYUYV
	if err := d.TryFormat(&f); err != nil {
		t.Fatal(err)
	}
	if f.Pix().SizeImage != 640*480*2 || f.Pix().PixelFormat != PixFmtYUYV {
		t.Errorf("TryFormat gave %+v", *f.Pix())
	}
	m := Format{Type: BufTypeVideoOutputMPlane}
	m.PixMP().Width, m.PixMP().Height = 64, 48
	if err := d.SetFormat(&m); err != nil {
		t.Fatal(err)
	}
	if m.PixMP().NumPlanes != 1 || m.PixMP().PlaneFmt[0].SizeImage != 64*48*3/2 {
		t.Errorf("SetFormat gave %+v", *m.PixMP())
	}
}

func TestPlaneBufferRoundTrip(t *testing.T) {
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		b := (*PlaneBuffer)(arg)
		planes := unsafe.Slice(b.Planes, b.Length)
		for i := range planes {
			planes[i].Length = 1000 * uint32(i+1)
			planes[i].M = uint64(0x1000 * (b.Index + 1))
		}
		b.Sequence = 42
		return nil
	}}
	d := NewDevice(fd, "/dev/video0")
	planes := make([]Plane, 2)
	b := PlaneBuffer{Index: 3, Type: BufTypeVideoCaptureMPlane, Memory: MemoryMMAP, Planes: &planes[0], Length: 2}
	if err := d.QueryPlaneBuffer(&b); err != nil {
		t.Fatal(err)
	}
	if b.Planes != &planes[0] || b.Sequence != 42 {
		t.Errorf("buffer after QUERYBUF: %+v", b)
	}
	if planes[0].Length != 1000 || planes[1].Length != 2000 || planes[1].Offset() != 0x4000 {
		t.Errorf("planes after QUERYBUF: %+v", planes)
	}
	if err := d.QueuePlaneBuffer(&PlaneBuffer{Type: BufTypeVideoCaptureMPlane}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("QBUF without planes: %v, want EINVAL before the ioctl", err)
	}
}

func TestExtControls(t *testing.T) {
	values := map[uint32]int64{CIDBrightness: 128, CIDMPEGVideoBitrate: 1000000}
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		h := (*ExtControls)(arg)
		ctrls := unsafe.Slice(h.Controls, h.Count)
		for i := range ctrls {
			c := &ctrls[i]
			if _, ok := values[c.ID]; !ok {
				h.ErrorIdx = uint32(i)
				return unix.EINVAL
			}
			switch req {
			case IoctlGExtCtrls:
				c.SetInt32(int32(values[c.ID]))
			case IoctlSExtCtrls:
				values[c.ID] = int64(c.Int32()) &^ 1 // the driver rounds to even
				c.SetInt32(int32(values[c.ID]))
			}
		}
		return nil
	}}
	d := NewDevice(fd, "/dev/video0")
	ctrls := []ExtControl{{ID: CIDBrightness}, {ID: CIDMPEGVideoBitrate}}
	if err := d.GetExtCtrls(CtrlWhichCurVal, ctrls); err != nil {
		t.Fatal(err)
	}
	if ctrls[0].Int32() != 128 || ctrls[1].Int32() != 1000000 {
		t.Errorf("G_EXT_CTRLS: %d %d", ctrls[0].Int32(), ctrls[1].Int32())
	}
	ctrls[1].SetInt32(2000001)
	if err := d.SetExtCtrls(CtrlWhichCurVal, ctrls[1:]); err != nil {
		t.Fatal(err)
	}
	if ctrls[1].Int32() != 2000000 || values[CIDMPEGVideoBitrate] != 2000000 {
		t.Errorf("S_EXT_CTRLS applied %d, reported %d", values[CIDMPEGVideoBitrate], ctrls[1].Int32())
	}
	err := d.SetExtCtrls(CtrlWhichCurVal, []ExtControl{{ID: CIDBrightness}, {ID: CIDContrast}})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "control 0x980901") {
		t.Errorf("S_EXT_CTRLS of an unknown control: %v", err)
	}
	var c ExtControl
	c.SetInt64(-5)
	if c.Int64() != -5 {
		t.Errorf("Int64 round trip: %d", c.Int64())
	}
}

func TestEnumControlsFallsBackToQueryCtrl(t *testing.T) {
	ids := []uint32{CIDBrightness, CIDContrast, CIDExposureAuto}
	next := func(id uint32) (uint32, bool) {
		for _, c := range ids {
			if c > id&CtrlIDMask {
				return c, true
			}
		}
		return 0, false
	}
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		switch req {
		case IoctlQueryExtCtrl:
			return unix.ENOTTY
		case IoctlQueryCtrl:
			q := (*QueryCtrl)(arg)
			id, ok := next(q.ID)
			if !ok {
				return unix.EINVAL
			}
			*q = QueryCtrl{ID: id, Type: CtrlTypeInteger, Minimum: -10, Maximum: 10, Step: 2, DefaultValue: 4}
			return nil
		}
		return unix.ENOTTY
	}}
	got, err := NewDevice(fd, "/dev/video0").EnumControls()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].ID != CIDExposureAuto || got[0].Minimum != -10 || got[0].Step != 2 || got[0].DefaultValue != 4 {
		t.Errorf("EnumControls = %+v", got)
	}
}

func TestEnumControlsRejectsLoops(t *testing.T) {
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		(*QueryExtCtrl)(arg).ID = CIDBrightness // never advances
		return nil
	}}
	if _, err := NewDevice(fd, "/dev/video0").EnumControls(); err == nil {
		t.Fatal("EnumControls of a driver that repeats itself returned no error")
	}
}

func TestMenuItemsSkipsHoles(t *testing.T) {
	fd := &funcFD{ioctl: func(req uint32, arg unsafe.Pointer) error {
		m := (*QueryMenu)(arg)
		if m.Index == 1 {
			return unix.EINVAL
		}
		copy(m.Name[:], []string{"Auto Mode", "", "Shutter Priority Mode", "Aperture Priority Mode"}[m.Index])
		return nil
	}}
	items, err := NewDevice(fd, "/dev/video0").MenuItems(QueryExtCtrl{ID: CIDExposureAuto, Type: CtrlTypeMenu, Minimum: 0, Maximum: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].ItemName() != "Auto Mode" || items[1].Index != 2 {
		t.Errorf("MenuItems = %+v", items)
	}
}
