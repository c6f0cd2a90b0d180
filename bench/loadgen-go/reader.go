package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
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

func (r *Reader) markOpened() { r.openedOnce.Do(func() { close(r.opened) }) }

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

func (r *Reader) run(client *http.Client) {
	defer r.set.wg.Done()
	defer r.markOpened()
	req, err := http.NewRequestWithContext(r.set.ctx, "GET", r.url, nil)
	if err != nil {
		r.fail(err.Error())
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		if r.set.ctx.Err() == nil {
			r.fail(err.Error())
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		r.fail(fmt.Sprintf("status %d", resp.StatusCode))
		return
	}
	buf := make([]byte, 4096)
	n := 0
	for {
		m, err := resp.Body.Read(buf[n:])
		if m > 0 {
			r.markOpened()
			now := time.Now()
			n += m
			if end := bytes.LastIndex(buf[:n], []byte("\n\n")); end >= 0 {
				r.consume(buf[:end+2], now)
				n = copy(buf, buf[end+2:n])
			} else if n == len(buf) {
				bigger := make([]byte, 2*len(buf))
				copy(bigger, buf)
				buf = bigger
			}
		}
		if err != nil {
			if r.set.ctx.Err() != nil {
				return // closed by the harness
			}
			if err == io.EOF {
				r.fail("stream ended by the server")
			} else {
				r.fail(err.Error())
			}
			return
		}
	}
}

// consume checks every event in data (complete events only), received at now.
func (r *Reader) consume(data []byte, now time.Time) {
	nowUs := now.UnixMicro()
	epoch := r.set.epoch.Load()
	count := 0
	r.mu.Lock()
	if r.epoch != epoch {
		r.epoch = epoch
		r.latSendUs = r.latSendUs[:0]
		r.latTsUs = r.latTsUs[:0]
	}
	for {
		ev, rest, ok := nextEvent(data)
		if !ok {
			break
		}
		data = rest
		count++
		r.latSendUs = append(r.latSendUs, int32(nowUs-ev.sentUs))
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
