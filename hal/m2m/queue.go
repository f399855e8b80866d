package m2m

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// queue is one of a mem2mem device's two buffer queues with MMAP buffers,
// hiding the difference between single- and multi-planar buffers.
type queue struct {
	dev    *v4l2.Device
	typ    uint32
	mplane bool
	bufs   []mapped
}

// mapped is one buffer: its mapped memory planes, and whether the driver
// has it.
type mapped struct {
	mem    [][]byte
	queued bool
}

// dequeued is what DQBUF returned.
type dequeued struct {
	index  int
	used   []int // bytes of data per plane, after offset
	offset []int // where the data starts in each plane (multi-planar data_offset)
	flags  uint32
	ts     v4l2.Timeval
}

func newQueue(dev *v4l2.Device, typ uint32) *queue {
	return &queue{dev: dev, typ: typ, mplane: v4l2.IsMPlane(typ)}
}

// allocate requests count buffers (the driver may give more or fewer) and
// maps them.
func (q *queue) allocate(count int) error {
	r, err := q.dev.RequestBuffers(q.typ, v4l2.MemoryMMAP, uint32(count))
	if err != nil {
		return err
	}
	if r.Count == 0 {
		return fmt.Errorf("%s: REQBUFS gave no buffers", typeName(q.typ))
	}
	q.bufs = make([]mapped, r.Count)
	for i := range q.bufs {
		if err := q.mapBuffer(i); err != nil {
			return errors.Join(err, q.release())
		}
	}
	return nil
}

func (q *queue) mapBuffer(i int) error {
	if q.mplane {
		planes := make([]v4l2.Plane, v4l2.VideoMaxPlanes)
		b := &v4l2.PlaneBuffer{Index: uint32(i), Type: q.typ, Memory: v4l2.MemoryMMAP, Planes: &planes[0], Length: v4l2.VideoMaxPlanes}
		if err := q.dev.QueryPlaneBuffer(b); err != nil {
			return err
		}
		for p := range int(b.Length) {
			m, err := q.dev.Mmap(planes[p].Offset(), planes[p].Length)
			if err != nil {
				return err
			}
			q.bufs[i].mem = append(q.bufs[i].mem, m)
		}
		return nil
	}
	b := &v4l2.Buffer{Index: uint32(i), Type: q.typ, Memory: v4l2.MemoryMMAP}
	if err := q.dev.QueryBuffer(b); err != nil {
		return err
	}
	m, err := q.dev.Mmap(b.Offset(), b.Length)
	if err != nil {
		return err
	}
	q.bufs[i].mem = [][]byte{m}
	return nil
}

// release unmaps the buffers and frees them (REQBUFS 0). The queue must
// not be streaming.
func (q *queue) release() error {
	var errs []error
	for _, b := range q.bufs {
		for _, m := range b.mem {
			if err := q.dev.Munmap(m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	had := q.bufs != nil
	q.bufs = nil
	if had {
		if _, err := q.dev.RequestBuffers(q.typ, v4l2.MemoryMMAP, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// free returns the index of a buffer the driver does not have, or -1.
func (q *queue) free() int {
	for i, b := range q.bufs {
		if !b.queued {
			return i
		}
	}
	return -1
}

// put queues buffer i with used bytes in each plane and timestamp ts.
func (q *queue) put(i int, used []uint32, ts v4l2.Timeval) error {
	if q.mplane {
		planes := make([]v4l2.Plane, len(q.bufs[i].mem))
		for p := range planes {
			if p < len(used) {
				planes[p].BytesUsed = used[p]
			}
			planes[p].Length = uint32(len(q.bufs[i].mem[p]))
		}
		b := &v4l2.PlaneBuffer{Index: uint32(i), Type: q.typ, Memory: v4l2.MemoryMMAP, Field: v4l2.FieldNone,
			Timestamp: ts, Planes: &planes[0], Length: uint32(len(planes))}
		if err := q.dev.QueuePlaneBuffer(b); err != nil {
			return err
		}
	} else {
		b := &v4l2.Buffer{Index: uint32(i), Type: q.typ, Memory: v4l2.MemoryMMAP, Field: v4l2.FieldNone, Timestamp: ts}
		if len(used) > 0 {
			b.BytesUsed = used[0]
		}
		if err := q.dev.QueueBuffer(b); err != nil {
			return err
		}
	}
	q.bufs[i].queued = true
	return nil
}

// putAll queues every buffer the driver does not have, empty (a capture
// queue's buffers).
func (q *queue) putAll() error {
	for i, b := range q.bufs {
		if !b.queued {
			if err := q.put(i, nil, v4l2.Timeval{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// get dequeues one buffer; ok is false when none is ready (EAGAIN).
func (q *queue) get() (d dequeued, ok bool, err error) {
	if q.mplane {
		planes := make([]v4l2.Plane, v4l2.VideoMaxPlanes)
		b := &v4l2.PlaneBuffer{Type: q.typ, Memory: v4l2.MemoryMMAP, Planes: &planes[0], Length: v4l2.VideoMaxPlanes}
		if err := q.dev.DequeuePlaneBuffer(b); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return d, false, nil
			}
			return d, false, err
		}
		d = dequeued{index: int(b.Index), flags: b.Flags, ts: b.Timestamp}
		for p := range int(b.Length) {
			off := int(planes[p].DataOffset)
			d.offset = append(d.offset, off)
			d.used = append(d.used, max(int(planes[p].BytesUsed)-off, 0))
		}
	} else {
		b := &v4l2.Buffer{Type: q.typ, Memory: v4l2.MemoryMMAP}
		if err := q.dev.DequeueBuffer(b); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return d, false, nil
			}
			return d, false, err
		}
		d = dequeued{index: int(b.Index), flags: b.Flags, ts: b.Timestamp, used: []int{int(b.BytesUsed)}, offset: []int{0}}
	}
	if d.index < 0 || d.index >= len(q.bufs) {
		return d, false, fmt.Errorf("%s: driver returned buffer %d of %d", typeName(q.typ), d.index, len(q.bufs))
	}
	q.bufs[d.index].queued = false
	return d, true, nil
}

// data returns the dequeued buffer's planes, from their data offsets.
func (q *queue) data(d dequeued) [][]byte {
	mem := q.bufs[d.index].mem
	out := make([][]byte, len(mem))
	for p, m := range mem {
		off := 0
		if p < len(d.offset) {
			off = min(d.offset[p], len(m))
		}
		out[p] = m[off:]
	}
	return out
}

// streamOn and streamOff switch the queue; after streamOff the driver
// holds no buffer.
func (q *queue) streamOn() error { return q.dev.StreamOn(q.typ) }

func (q *queue) streamOff() error {
	err := q.dev.StreamOff(q.typ)
	for i := range q.bufs {
		q.bufs[i].queued = false
	}
	return err
}

func typeName(t uint32) string {
	switch t {
	case v4l2.BufTypeVideoOutput, v4l2.BufTypeVideoOutputMPlane:
		return "OUTPUT queue"
	case v4l2.BufTypeVideoCapture, v4l2.BufTypeVideoCaptureMPlane:
		return "CAPTURE queue"
	}
	return fmt.Sprintf("queue type %d", t)
}
