package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const maxPendingGaps = 100_000 // per reader: bounds memory if a pipeline loses everything

// Reader is one SSE connection: it reads, checks and records every event.
type Reader struct {
	room string
	url  string
	set  *ReaderSet

	opened     chan struct{}
	openedOnce sync.Once
	isOpen     atomic.Bool

	// The socket, once the poller reads it, and the state of its reading (the poller's only).
	file      *os.File
	fd        int
	closeOnce sync.Once
	chunked   bool
	cstate    int
	remaining int
	skip      int
	line      []byte
	body      []byte // decoded bytes not yet consumed: the start of an incomplete event

	mu         sync.Mutex
	err        string
	expect     map[int]int              // sender -> next sequence number expected
	gaps       map[int]map[int]struct{} // sender -> sequence numbers skipped so far
	duplicates int
	reordered  int
	received   int
	epoch      int64   // the step the latencies below belong to
	latSendUs  []int32 // receive time - send time
	latTsUs    []int32 // receive time - ts, for events that carry one
	latSentS   []int16 // for a step by second: the second of the step each latSendUs was sent in
}

// ReaderSet is a set of readers spread round-robin over rooms, kept open across steps.
type ReaderSet struct {
	target   *Target
	rooms    []string
	readers  []*Reader
	ctx      context.Context
	cancel   context.CancelFunc
	epoch    atomic.Int64 // bumped by each step (and quiesce): a new collector
	received atomic.Int64 // events received since the last bump
	originUs atomic.Int64 // a step by second: its start (epoch µs); 0 otherwise
	wg       sync.WaitGroup
}

func newReaderSet(target *Target, rooms []string, clients int) *ReaderSet {
	ctx, cancel := context.WithCancel(context.Background())
	s := &ReaderSet{target: target, rooms: rooms, ctx: ctx, cancel: cancel}
	for i := 0; i < clients; i++ {
		room := rooms[i%len(rooms)]
		s.readers = append(s.readers, &Reader{room: room, url: target.StreamURL(room), set: s,
			opened: make(chan struct{}), expect: map[int]int{}, gaps: map[int]map[int]struct{}{}})
	}
	return s
}

func (s *ReaderSet) newStep() {
	s.epoch.Add(1)
	s.received.Store(0)
}

func (r *Reader) markOpened() {
	if !r.isOpen.Load() {
		r.openedOnce.Do(func() { close(r.opened) })
		r.isOpen.Store(true)
	}
}

func (r *Reader) fail(text string) {
	r.mu.Lock()
	if r.err == "" {
		r.err = text
	}
	r.mu.Unlock()
}

func (r *Reader) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != ""
}

// run connects, sends the request and reads the response's head; from then on the poller
// reads the socket. It returns once the stream is open (or has failed).
func (r *Reader) run(p *poller) {
	defer r.set.wg.Done()
	ctx := r.set.ctx
	failed := func(text string) {
		if ctx.Err() == nil {
			r.fail(text)
		}
		r.markOpened()
	}
	u, err := url.Parse(r.url)
	if err != nil {
		failed(err.Error())
		return
	}
	dialer := net.Dialer{Timeout: 30 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		failed(err.Error())
		return
	}
	// The kernel stamps each packet received from now on with its arrival time
	// (CLOCK_REALTIME); the poller's recvmsg hands the stamp of the last one it read.
	if raw, err := conn.(*net.TCPConn).SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		})
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	request := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := conn.Write([]byte(request)); err != nil {
		stop()
		conn.Close()
		failed(err.Error())
		return
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		stop()
		conn.Close()
		failed(err.Error())
		return
	}
	if resp.StatusCode != 200 {
		stop()
		conn.Close()
		failed(fmt.Sprintf("status %d", resp.StatusCode))
		return
	}
	r.chunked = len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	head, _ := br.Peek(br.Buffered()) // the first bytes of the body may have come with the head
	pending := append([]byte(nil), head...)
	if !stop() { // closed meanwhile
		conn.Close()
		r.markOpened()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	file, err := conn.(*net.TCPConn).File() // a descriptor of our own, for the poller
	conn.Close()
	if err != nil {
		failed(err.Error())
		return
	}
	r.file = file
	r.fd = int(file.Fd())
	if err := syscall.SetNonblock(r.fd, true); err != nil {
		r.closeSocket()
		failed(err.Error())
		return
	}
	if len(pending) > 0 && !r.feed(pending, time.Now().UnixMicro()) {
		r.closeSocket()
		return
	}
	if err := p.add(r.fd, r); err != nil {
		r.closeSocket()
		failed(err.Error())
	}
}

func (r *Reader) closeSocket() {
	r.closeOnce.Do(func() {
		if r.file != nil {
			r.file.Close()
		}
	})
}

const (
	chunkSize = iota // reading a chunk's size line
	chunkData        // reading its data
	chunkEnd         // skipping the CRLF after it
)

// feed takes bytes read from the socket (the poller's goroutine, or run before the socket is
// handed over) and their receive time (epoch µs); it returns false once the stream is over.
func (r *Reader) feed(data []byte, nowUs int64) bool {
	r.markOpened()
	if !r.chunked {
		r.body = append(r.body, data...)
		r.scan(nowUs)
		return true
	}
	for len(data) > 0 {
		switch r.cstate {
		case chunkSize:
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				r.line = append(r.line, data...)
				return true
			}
			r.line = append(r.line, data[:i]...)
			data = data[i+1:]
			size, ok := chunkLength(r.line)
			r.line = r.line[:0]
			if !ok {
				r.scan(nowUs)
				r.fail("a malformed chunk")
				return false
			}
			if size == 0 {
				r.scan(nowUs)
				r.fail("stream ended by the server")
				return false
			}
			r.remaining, r.cstate = size, chunkData
		case chunkData:
			n := min(len(data), r.remaining)
			r.body = append(r.body, data[:n]...)
			data = data[n:]
			if r.remaining -= n; r.remaining == 0 {
				r.cstate, r.skip = chunkEnd, 2
			}
		case chunkEnd:
			for r.skip > 0 && len(data) > 0 {
				data = data[1:]
				r.skip--
			}
			if r.skip == 0 {
				r.cstate = chunkSize
			}
		}
	}
	r.scan(nowUs)
	return true
}

func chunkLength(line []byte) (int, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(line), 16, 32)
	return int(n), err == nil
}

// scan hands every complete event received so far to consume.
func (r *Reader) scan(nowUs int64) {
	end := bytes.LastIndex(r.body, []byte("\n\n"))
	if end < 0 {
		return
	}
	r.consume(r.body[:end+2], nowUs)
	r.body = append(r.body[:0], r.body[end+2:]...)
}

// consume checks every event in data (complete events only), received at nowUs.
func (r *Reader) consume(data []byte, nowUs int64) {
	epoch := r.set.epoch.Load()
	originUs := r.set.originUs.Load()
	count := 0
	r.mu.Lock()
	if r.epoch != epoch {
		r.epoch = epoch
		r.latSendUs = r.latSendUs[:0]
		r.latTsUs = r.latTsUs[:0]
		r.latSentS = r.latSentS[:0]
	}
	for {
		ev, rest, ok := nextEvent(data)
		if !ok {
			break
		}
		data = rest
		count++
		r.latSendUs = append(r.latSendUs, int32(nowUs-ev.sentUs))
		if originUs != 0 {
			r.latSentS = append(r.latSentS, int16((ev.sentUs-originUs)/1_000_000))
		}
		if ev.ts >= 0 {
			r.latTsUs = append(r.latTsUs, int32(nowUs-ev.ts*1000))
		}
		r.check(ev.sender, ev.seq)
	}
	r.received += count
	r.mu.Unlock()
	r.set.received.Add(int64(count))
}

func (r *Reader) check(sender, seq int) {
	next := r.expect[sender]
	switch {
	case seq == next:
		r.expect[sender] = seq + 1
	case seq > next:
		pending := r.gaps[sender]
		if pending == nil {
			pending = map[int]struct{}{}
			r.gaps[sender] = pending
		}
		for s := next; s < seq && len(pending) < maxPendingGaps; s++ {
			pending[s] = struct{}{}
		}
		r.expect[sender] = seq + 1
	default:
		if _, ok := r.gaps[sender][seq]; ok {
			delete(r.gaps[sender], seq)
			r.reordered++
		} else {
			r.duplicates++
		}
	}
}

// lost counts acknowledged messages of these senders that never arrived.
func (r *Reader) lost(senders []*Sender) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := 0
	for _, s := range senders {
		for seq := range r.gaps[s.id] {
			if s.isAcked(seq) {
				lost++
			}
		}
		for seq := r.expect[s.id]; seq < s.sent; seq++ {
			if s.isAcked(seq) {
				lost++
			}
		}
	}
	return lost
}

type event struct {
	sender, seq int
	sentUs, ts  int64 // ts -1: none
}

var marker = []byte("S:")
var tsField = []byte(`","ts":`)

// nextEvent finds the next "S:<sender>:<seq>:<sent us>" in data, and the "ts" right after
// its text when the event is a chat message's JSON (the project's and Centrifugo's).
func nextEvent(data []byte) (event, []byte, bool) {
	for {
		i := bytes.Index(data, marker)
		if i < 0 {
			return event{}, nil, false
		}
		data = data[i+2:]
		sender, rest, ok := number(data, ':')
		if !ok {
			continue
		}
		seq, rest, ok := number(rest, ':')
		if !ok {
			continue
		}
		sent, rest, ok := number(rest, 0)
		if !ok {
			continue
		}
		ev := event{sender: int(sender), seq: int(seq), sentUs: sent, ts: -1}
		if bytes.HasPrefix(rest, tsField) {
			if ts, after, ok := number(rest[len(tsField):], 0); ok {
				ev.ts = ts
				rest = after
			}
		}
		return ev, rest, true
	}
}

// number reads decimal digits; with a terminator, the byte after them must be it (and is skipped).
func number(data []byte, terminator byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		v = v*10 + int64(data[i]-'0')
		i++
	}
	if i == 0 {
		return 0, data, false
	}
	if terminator != 0 {
		if i >= len(data) || data[i] != terminator {
			return 0, data, false
		}
		i++
	}
	return v, data[i:], true
}

// close ends every reader of the set: those still connecting give up, open sockets are closed.
func (s *ReaderSet) close(p *poller) {
	s.cancel()
	s.wg.Wait()
	for _, r := range s.readers {
		if r.file != nil {
			p.remove(r)
			r.closeSocket()
		}
	}
}
