package v4l2

import (
	"testing"
	"unsafe"
)

// TestSelectionLayout pins struct v4l2_selection and its ioctl numbers to
// what linux/videodev2.h gives on amd64.
func TestSelectionLayout(t *testing.T) {
	if got := unsafe.Sizeof(Selection{}); got != 64 {
		t.Errorf("sizeof(struct v4l2_selection) = %d, kernel says 64", got)
	}
	if got := unsafe.Offsetof(Selection{}.R); got != 12 {
		t.Errorf("offsetof(v4l2_selection.r) = %d, kernel says 12", got)
	}
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"VIDIOC_G_SELECTION", IoctlGSelection, 0xc040565e},
		{"VIDIOC_S_SELECTION", IoctlSSelection, 0xc040565f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, kernel says %#x", c.name, c.got, c.want)
		}
	}
	if selType(BufTypeVideoOutputMPlane) != BufTypeVideoOutput || selType(BufTypeVideoCaptureMPlane) != BufTypeVideoCapture || selType(BufTypeVideoOutput) != BufTypeVideoOutput {
		t.Error("selType does not map multi-planar types to single-planar ones")
	}
}
