package osconfig

import "golang.org/x/sys/unix"

// closeFD closes a raw file descriptor received over the bus.
func closeFD(fd int) { _ = unix.Close(fd) }
