package main

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// poller reads every open stream from one goroutine: epoll says which sockets have data, one
// read each, straight into the reader's decoder. A goroutine per stream would cost a wake-up,
// a park and a second (empty) read per event per reader, about as much again as the rest of
// the work; here a burst of events on many sockets is one epoll_wait and one read per socket.
type poller struct {
	epfd    int
	file    *os.File   // the epoll descriptor itself, waited on through Go's own poller
	mu      sync.Mutex // held while a batch of events is handled: a socket is never read after remove
	readers map[int32]*Reader
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Waiting in Go's own poller for the epoll descriptor to be readable (some socket has
	// data) parks this goroutine as any network wait does; a blocking epoll_wait would hold
	// an OS thread and make the runtime hand its processor over on every wait.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), readers: map[int32]*Reader{}}
	raw, err := p.file.SyscallConn()
	if err != nil {
		return nil, err
	}
	go p.loop(raw)
	return p, nil
}

func (p *poller) add(fd int, r *Reader) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers[int32(fd)] = r
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
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

func (p *poller) loop(raw syscall.RawConn) {
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 256<<10)
	for {
		var n int
		var waitErr error
		err := raw.Read(func(uintptr) bool { // false: nothing ready, park until the descriptor is readable
			n, waitErr = syscall.EpollWait(p.epfd, events, 0)
			return waitErr == nil && n > 0 || waitErr != nil && waitErr != syscall.EINTR
		})
		if err == nil {
			err = waitErr
		}
		if err != nil {
			panic("epoll_wait: " + err.Error())
		}
		p.handle(events[:n], buf)
	}
}

// handle reads each socket that has data, once (what remains is reported again).
func (p *poller) handle(events []syscall.EpollEvent, buf []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	{
		for i := range events {
			fd := int(events[i].Fd)
			r := p.readers[int32(fd)]
			if r == nil {
				continue
			}
			m, err := syscall.Read(fd, buf)
			if m > 0 {
				if !r.feed(buf[:m], time.Now()) {
					p.removeLocked(fd, r)
					r.closeSocket()
				}
				continue
			}
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil {
				r.fail(err.Error())
			} else {
				r.fail("stream ended by the server")
			}
			p.removeLocked(fd, r)
			r.closeSocket()
		}
	}
}
