package ldapconn_test

import (
	"net"
	"syscall"
	"unsafe"
)

const canSeeTCPState = true

// tcpEstablished reports whether the kernel has c established: neither side
// has closed it. The state is the first byte of Linux's struct tcp_info.
func tcpEstablished(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var info [256]byte
	size := uint32(len(info))
	var errno syscall.Errno
	if rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	}) != nil || errno != 0 {
		return false
	}
	const established = 1
	return info[0] == established
}
