package alsa

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
)

// card is what enumeration learns about one sound card.
type card struct {
	index  int
	id     string // "Loopback", "Dummy", "S3" (unique per machine, set by the driver or udev)
	name   string // "Loopback", "Jabra SPEAK 510 USB"
	driver string
	usb    string // "usb-VVVV:PPPP-SERIAL" for USB cards, else ""
	pcms   []pcmEntry
	mixer  []mixerElem
}

// pcmEntry is one direction of one PCM device.
type pcmEntry struct {
	device     int
	capture    bool
	name       string
	subdevices int
}

// pcmPath is the device node of one direction of a PCM device.
func pcmPath(devDir string, cardIndex, device int, capture bool) string {
	dir := 'p'
	if capture {
		dir = 'c'
	}
	return path.Join(devDir, "snd", fmt.Sprintf("pcmC%dD%d%c", cardIndex, device, dir))
}

// ctlPath is a card's control device node.
func ctlPath(devDir string, cardIndex int) string {
	return path.Join(devDir, "snd", fmt.Sprintf("controlC%d", cardIndex))
}

// listCards returns the indices of the cards that have a control node.
func (d *Driver) listCards() ([]int, error) {
	names, err := d.sys.ReadDir(path.Join(d.devDir, "snd"))
	if errors.Is(err, unix.ENOENT) {
		return nil, nil // no sound card at all
	}
	if err != nil {
		return nil, fmt.Errorf("alsa: list cards: %w", err)
	}
	var cards []int
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, "controlC")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil && i >= 0 {
			cards = append(cards, i)
		}
	}
	return cards, nil
}

// openCtl opens a card's control device, read-write for mixer writes, or
// read-only if that is all the permissions allow.
func (d *Driver) openCtl(cardIndex int) (int, error) {
	p := ctlPath(d.devDir, cardIndex)
	fd, err := d.sys.Open(p, unix.O_RDWR)
	if errors.Is(err, unix.EACCES) {
		fd, err = d.sys.Open(p, unix.O_RDONLY)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", p, err)
	}
	return fd, nil
}

// readCard asks a card's control device what it is and which PCM devices and
// mixer elements it has.
func (d *Driver) readCard(cardIndex int) (*card, error) {
	fd, err := d.openCtl(cardIndex)
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.sys.Close(fd) }()

	var ci ctlCardInfo
	if err := d.sys.Ioctl(fd, ctlIoctlCardInfo, unsafe.Pointer(&ci)); err != nil {
		return nil, fmt.Errorf("card %d: card info: %w", cardIndex, err)
	}
	c := &card{index: cardIndex, id: cstr(ci.ID[:]), name: cstr(ci.Name[:]), driver: cstr(ci.Driver[:])}

	dev := int32(-1)
	for {
		if err := d.sys.Ioctl(fd, ctlIoctlPCMNextDevice, unsafe.Pointer(&dev)); err != nil {
			return nil, fmt.Errorf("card %d: next pcm device: %w", cardIndex, err)
		}
		if dev < 0 {
			break
		}
		for _, stream := range []int32{streamPlayback, streamCapture} {
			info := pcmInfo{Device: uint32(dev), Subdevice: 0, Stream: stream}
			err := d.sys.Ioctl(fd, ctlIoctlPCMInfo, unsafe.Pointer(&info))
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) {
				continue // the device has no such direction
			}
			if err != nil {
				return nil, fmt.Errorf("card %d: pcm %d info: %w", cardIndex, dev, err)
			}
			c.pcms = append(c.pcms, pcmEntry{
				device:     int(dev),
				capture:    stream == streamCapture,
				name:       cstr(info.Name[:]),
				subdevices: int(info.SubdevicesCount),
			})
		}
	}

	c.mixer, err = readMixer(d.sys, fd)
	if err != nil {
		// Audio works without volume control; say so and go on.
		d.log.Warn("alsa: cannot read mixer", "card", c.id, "err", err)
	}
	c.usb = d.usbIdentity(cardIndex)
	return c, nil
}

// usbIdentity returns "usb-VVVV:PPPP-SERIAL" when the card is a USB audio
// device, read from the USB device directory above the card's sysfs node.
// Without a serial number, the USB port path ("1-1.2") stands in for it:
// stable as long as the device stays in the same port.
func (d *Driver) usbIdentity(cardIndex int) string {
	dev, err := d.sys.EvalSymlinks(path.Join(d.sysDir, "class", "sound", fmt.Sprintf("card%d", cardIndex), "device"))
	if err != nil {
		return ""
	}
	// The card hangs off a USB interface (1-1.2:1.0); its parent is the
	// USB device with idVendor, idProduct and serial.
	for dir, i := dev, 0; i < 3 && dir != "/" && dir != "."; dir, i = path.Dir(dir), i+1 {
		vendor, err := d.sys.ReadFile(path.Join(dir, "idVendor"))
		if err != nil {
			continue
		}
		product, err := d.sys.ReadFile(path.Join(dir, "idProduct"))
		if err != nil {
			return ""
		}
		serial, err := d.sys.ReadFile(path.Join(dir, "serial"))
		s := sanitize(strings.TrimSpace(string(serial)))
		if err != nil || s == "" {
			s = path.Base(dir)
		}
		return fmt.Sprintf("usb-%s:%s-%s", strings.TrimSpace(string(vendor)), strings.TrimSpace(string(product)), s)
	}
	return ""
}

// sanitize keeps an ID readable and free of separators.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

// deviceID is the stable ID of one direction of a PCM device; see the
// package documentation.
func deviceID(c *card, p pcmEntry) string {
	dir := 'p'
	if p.capture {
		dir = 'c'
	}
	base := c.usb
	if base == "" {
		base = sanitize(c.id)
	}
	return fmt.Sprintf("alsa:%s-pcm%d%c", base, p.device, dir)
}

// deviceName is the human name: card name and PCM name, and the device
// number when the card has several PCMs in that direction.
func deviceName(c *card, p pcmEntry) string {
	name := c.name
	if p.name != "" && p.name != c.name {
		name += ": " + p.name
	}
	n := 0
	for _, q := range c.pcms {
		if q.capture == p.capture {
			n++
		}
	}
	if n > 1 {
		name += fmt.Sprintf(" #%d", p.device)
	}
	return name
}

// kind is the HAL kind for one direction.
func kind(capture bool) hal.Kind {
	if capture {
		return hal.KindMicrophone
	}
	return hal.KindSpeaker
}
