package main

import (
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// batchInterval: after handling what was ready, the poller waits this long before it looks
// again, so that one wake-up serves the events of about a millisecond (tens to hundreds at
// the benchmark's rates) rather than one or two. Latency does not suffer from the wait: an
// event's receive time is the kernel's (when its bytes reached the socket), not the read's.
const batchInterval = time.Millisecond

const epollET = 1 << 31 // syscall.EPOLLET, which the package declares negative

// idleWait: how long one wait for data lasts when nothing is ready (then the poller looks
// again): it bounds how long a collection's stop-the-world waits for an idle poller.
const idleWait = 10 * time.Millisecond

// poller reads every open stream from one goroutine: epoll says which sockets have data, one
// read each (a second only when the first filled the buffer), straight into the reader's
// decoder. A goroutine per stream would cost a wake-up, a park and a second (empty) read per
// event per reader, about as much again as the rest of the work; here a burst of events on
// many sockets is one epoll_wait and one read per socket.
//
// Its system calls (epoll_wait, recvmsg, the pause between batches) are raw: the goroutine
// keeps its processor throughout, as if it were computing, and the runtime is never told.
// Told (a blocking call, or a park), the runtime's monitor thread (sysmon) wakes and polls
// every 20 µs: a third of the process's CPU in a profile. So the load generator runs two
// processors (main.go): this goroutine holds one, everything else (the senders, the
// commands) the other. The runtime can still stop it (a collection's stop-the-world): at
// the call to handle after each batch, and at the yield after each idle wait. Its epoll
// descriptor is not in Go's poller either: nested in the runtime's epoll, every packet
// arriving during a pause would wake the runtime's epoll_wait.
type poller struct {
	epfd    int
	mu      sync.Mutex // held while a batch of events is handled: a socket is never read after remove
	readers map[int32]*Reader
	stats   pollStats
}

// pollStats: what the poller did, for the step's report (the poller's goroutine writes them
// under mu).
type pollStats struct {
	batches int64 // wake-ups that found something to read
	reads   int64 // socket reads
	stamped int64 // reads that carried the kernel's receive stamp
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, readers: map[int32]*Reader{}}
	go p.loop()
	return p, nil
}

func (p *poller) add(fd int, r *Reader) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers[int32(fd)] = r
	// Edge-triggered: a socket is reported once when data arrives (then read until the read
	// comes short), not again on the next wait to find it empty: half the kernel's polls.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(p.readers, int32(fd))
		return err
	}
	return nil
}

// remove stops reading r's socket; once it returns, the socket may be closed.
func (p *poller) remove(r *Reader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(r.fd, r)
}

func (p *poller) removeLocked(fd int, r *Reader) {
	if p.readers[int32(fd)] == r { // not a later socket that got the same number
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		delete(p.readers, int32(fd))
	}
}

func (p *poller) snapshot() pollStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 1024)
	rx := newReceiver(256 << 10)
	pause := syscall.NsecToTimespec(int64(batchInterval))
	for {
		n, err := epollWait(p.epfd, events, idleWait)
		if err == syscall.EINTR || err == nil && n == 0 {
			runtime.Gosched()
			continue
		}
		if err != nil {
			panic("epoll_wait: " + err.Error())
		}
		p.handle(events[:n], rx)
		// The pause; a signal only shortens it.
		syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&pause)), 0, 0)
	}
}

// handle reads each socket that has data, until a read comes short of the buffer (all
// there was: the next arrival is reported again).
func (p *poller) handle(events []syscall.EpollEvent, rx *receiver) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.batches++
	for i := range events {
		fd := int(events[i].Fd)
		if r := p.readers[int32(fd)]; r != nil {
			p.drain(fd, r, rx)
		}
	}
}

func (p *poller) drain(fd int, r *Reader, rx *receiver) {
	for {
		p.stats.reads++
		data, atUs, stamped, err := rx.read(fd)
		if stamped {
			p.stats.stamped++
		}
		if len(data) > 0 {
			if !r.feed(data, atUs) {
				p.removeLocked(fd, r)
				r.closeSocket()
				return
			}
			if len(data) < len(rx.buf) {
				return
			}
			continue
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return
		}
		if err != 0 {
			r.fail(err.Error())
		} else {
			r.fail("stream ended by the server")
		}
		p.removeLocked(fd, r)
		r.closeSocket()
		return
	}
}

// epollWait says which sockets have data, waiting at most timeout for one.
func epollWait(epfd int, events []syscall.EpollEvent, timeout time.Duration) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeout.Milliseconds()), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// receiver reads a socket with recvmsg into one buffer, with the kernel's receive stamp.
type receiver struct {
	buf []byte
	oob []byte
	iov syscall.Iovec
	msg syscall.Msghdr
}

func newReceiver(size int) *receiver {
	rx := &receiver{buf: make([]byte, size), oob: make([]byte, 64)}
	rx.iov.Base = &rx.buf[0]
	rx.iov.SetLen(len(rx.buf))
	rx.msg.Iov = &rx.iov
	rx.msg.Iovlen = 1
	rx.msg.Control = &rx.oob[0]
	return rx
}

// read returns what one recvmsg read and its receive time (epoch µs): the kernel's stamp
// of the last packet read (stamped), or the time now if there is none. The socket is
// non-blocking.
func (rx *receiver) read(fd int) (data []byte, atUs int64, stamped bool, err syscall.Errno) {
	rx.msg.SetControllen(len(rx.oob))
	rx.msg.Flags = 0
	n, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&rx.msg)), 0)
	if errno != 0 || n == 0 {
		return nil, 0, false, errno
	}
	atUs, stamped = rx.stamp()
	return rx.buf[:n], atUs, stamped, 0
}

func (rx *receiver) stamp() (int64, bool) {
	const header = syscall.SizeofCmsghdr // 16 on 64-bit Linux: already aligned
	if int(rx.msg.Controllen) >= header+int(unsafe.Sizeof(syscall.Timespec{})) {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&rx.oob[0]))
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS {
			ts := (*syscall.Timespec)(unsafe.Pointer(&rx.oob[header]))
			return ts.Sec*1_000_000 + ts.Nsec/1000, true
		}
	}
	return time.Now().UnixMicro(), false
}
