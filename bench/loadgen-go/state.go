package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type state struct {
	sets    map[int]*ReaderSet
	nextSet int
	offsets map[string]*roomOffsets // target name -> its rooms' Redis ids (kind ours-redis)
	poller  *poller                 // reads every stream
	posts   *http.Client            // senders: kept-alive connections
}

func newState() *state {
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	p, err := newPoller()
	if err != nil {
		panic(err)
	}
	return &state{
		sets:    map[int]*ReaderSet{},
		offsets: map[string]*roomOffsets{},
		poller:  p,
		posts: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: dialer.DialContext, DisableCompression: true,
			MaxIdleConns: 10000, MaxIdleConnsPerHost: 10000, IdleConnTimeout: 90 * time.Second,
		}},
	}
}

func (s *state) closeAll() {
	for id, set := range s.sets {
		set.close(s.poller)
		delete(s.sets, id)
	}
	for _, o := range s.offsets {
		o.close()
	}
}

func (s *state) handle(cmd string, raw json.RawMessage) (any, error) {
	switch cmd {
	case "open":
		var a struct {
			Target      Target   `json:"target"`
			Rooms       []string `json:"rooms"`
			Clients     int      `json:"clients"`
			Concurrency int      `json:"concurrency"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		return s.open(&a.Target, a.Rooms, a.Clients, a.Concurrency)
	case "step":
		var a stepArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		set, err := s.set(a.Set)
		if err != nil {
			return nil, err
		}
		return s.step(set, a)
	case "quiesce":
		var a struct {
			Set     int     `json:"set"`
			QuietS  float64 `json:"quiet_s"`
			Timeout float64 `json:"timeout"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		set, err := s.set(a.Set)
		if err != nil {
			return nil, err
		}
		return quiesce(set, seconds(a.QuietS), seconds(a.Timeout)), nil
	case "reset":
		var a struct {
			Set int `json:"set"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		set, err := s.set(a.Set)
		if err != nil {
			return nil, err
		}
		for _, r := range set.readers {
			r.mu.Lock()
			r.duplicates, r.reordered, r.received = 0, 0, 0
			r.mu.Unlock()
		}
		return nil, nil
	case "status":
		var a struct {
			Set int `json:"set"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		set, err := s.set(a.Set)
		if err != nil {
			return nil, err
		}
		return set.status(), nil
	case "close":
		var a struct {
			Set int `json:"set"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		set, err := s.set(a.Set)
		if err != nil {
			return nil, err
		}
		set.close(s.poller)
		delete(s.sets, a.Set)
		return nil, nil
	case "ingest":
		var a struct {
			Target      Target   `json:"target"`
			Rooms       []string `json:"rooms"`
			Concurrency int      `json:"concurrency"`
			Duration    float64  `json:"duration"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		return s.ingest(&a.Target, a.Rooms, a.Concurrency, seconds(a.Duration))
	}
	return nil, fmt.Errorf("unknown command %q", cmd)
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

func (s *state) set(id int) (*ReaderSet, error) {
	set := s.sets[id]
	if set == nil {
		return nil, fmt.Errorf("no reader set %d", id)
	}
	return set, nil
}

func (s *state) offsetsFor(t *Target) *roomOffsets {
	o := s.offsets[t.Name]
	if o == nil {
		o = newRoomOffsets()
		s.offsets[t.Name] = o
	}
	return o
}

// open starts every reader, “concurrency“ at a time; a stream that greets holds its slot
// until its first bytes (or an error), one that stays silent for 2 ms (the harness then
// waits for the subscriptions in Redis).
func (s *state) open(t *Target, rooms []string, clients, concurrency int) (any, error) {
	if len(rooms) == 0 {
		return nil, fmt.Errorf("no rooms")
	}
	if concurrency <= 0 {
		concurrency = 200
	}
	started := time.Now()
	set := newReaderSet(t, rooms, clients)
	s.nextSet++
	s.sets[s.nextSet] = set
	gate := make(chan struct{}, concurrency)
	var waiting sync.WaitGroup
	for _, r := range set.readers {
		gate <- struct{}{}
		set.wg.Add(1)
		go r.run(s.poller)
		waiting.Add(1)
		go func(r *Reader) {
			defer waiting.Done()
			defer func() { <-gate }()
			if t.Greets() {
				select {
				case <-r.opened:
				case <-time.After(60 * time.Second):
				}
			} else {
				time.Sleep(2 * time.Millisecond)
			}
		}(r)
	}
	waiting.Wait()
	status := set.status()
	status["set"] = s.nextSet
	status["seconds"] = time.Since(started).Seconds()
	return status, nil
}

func (set *ReaderSet) status() map[string]any {
	failed := 0
	errors := map[string]bool{}
	for _, r := range set.readers {
		r.mu.Lock()
		if r.err != "" {
			failed++
			errors[r.err] = true
		}
		r.mu.Unlock()
	}
	list := []string{}
	for e := range errors {
		list = append(list, e)
	}
	sort.Strings(list)
	if len(list) > 5 {
		list = list[:5]
	}
	return map[string]any{"failed": failed, "errors": list, "clients": len(set.readers)}
}

// Sender posts “count“ messages at “rate“, one in flight.
type Sender struct {
	id     int
	room   string
	rate   float64
	count  int
	sent   int
	acked  []bool
	nAcked int
	errors int
	postMs []float64
}

func (s *Sender) isAcked(seq int) bool { return seq >= 0 && seq < len(s.acked) && s.acked[seq] }

func (s *Sender) run(ctx context.Context, pub Publisher, startAt time.Time) {
	for seq := 0; seq < s.count; seq++ {
		due := startAt.Add(time.Duration(float64(seq) / s.rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		sent := time.Now()
		text := senderText(s.id, seq, sent.UnixMicro())
		s.sent = seq + 1
		if pub.Publish(ctx, s.room, fmt.Sprintf("u%d", s.id), text) {
			s.acked[seq] = true
			s.nAcked++
		} else {
			s.errors++
		}
		s.postMs = append(s.postMs, float64(time.Since(sent).Microseconds())/1000)
	}
}

type stepArgs struct {
	Set           int     `json:"set"`
	Rate          float64 `json:"rate"`
	Duration      float64 `json:"duration"`
	SenderBase    int     `json:"sender_base"`
	PerSenderRate float64 `json:"per_sender_rate"`
	DrainTimeout  float64 `json:"drain_timeout"`
	StallS        float64 `json:"stall_s"`
	// BySecond: also the send latencies grouped by the second of the step they were sent in.
	BySecond bool `json:"by_second"`
}

// step posts “rate“ messages/s for “duration“ s over the set's rooms and waits until every
// reader has what was acknowledged, or “drain_timeout“ passes, or nothing arrived for
// “stall_s“. What has not arrived by then counts as lost.
func (s *state) step(set *ReaderSet, a stepArgs) (any, error) {
	if a.PerSenderRate <= 0 {
		a.PerSenderRate = 2.5
	}
	if a.DrainTimeout <= 0 {
		a.DrainTimeout = 30
	}
	if a.StallS <= 0 {
		a.StallS = 3
	}
	pub, err := set.target.publisher(s.posts, s.offsetsFor(set.target))
	if err != nil {
		return nil, err
	}
	rooms := set.rooms
	n := len(rooms)
	if need := int(math.Ceil(a.Rate / a.PerSenderRate)); need > n {
		n = need
	}
	n = (n + len(rooms) - 1) / len(rooms) * len(rooms) // the same number in every room
	rateEach := a.Rate / float64(n)
	countEach := int(math.Max(1, math.Round(rateEach*a.Duration)))
	senders := make([]*Sender, n)
	byRoom := map[string][]*Sender{}
	for i := range senders {
		snd := &Sender{id: a.SenderBase + i, room: rooms[i%len(rooms)], rate: rateEach, count: countEach,
			acked: make([]bool, countEach)}
		senders[i] = snd
		byRoom[snd.room] = append(byRoom[snd.room], snd)
	}
	wallStart := time.Now()
	startAt := wallStart.Add(200 * time.Millisecond)
	if a.BySecond {
		set.originUs.Store(startAt.UnixMicro())
	} else {
		set.originUs.Store(0)
	}
	set.newStep()
	var live []*Reader
	for _, r := range set.readers {
		if !r.failed() {
			live = append(live, r)
		}
	}
	polled := s.poller.snapshot()
	var wg sync.WaitGroup
	for i, snd := range senders {
		wg.Add(1)
		// Spread the senders' phases so the posts of one period do not all leave at once.
		phase := time.Duration(float64(i) / float64(n) / rateEach * float64(time.Second))
		go func(snd *Sender, at time.Time) {
			defer wg.Done()
			snd.run(set.ctx, pub, at)
		}(snd, startAt.Add(phase))
	}
	wg.Wait()
	sendSeconds := time.Since(wallStart).Seconds() - 0.2
	liveIn := map[string]int{}
	for _, r := range live {
		liveIn[r.room]++
	}
	expected := int64(0)
	for _, snd := range senders {
		expected += int64(snd.nAcked * liveIn[snd.room])
	}
	deadline := time.Now().Add(seconds(a.DrainTimeout))
	last, lastProgress := set.received.Load(), time.Now()
	for set.received.Load() < expected && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if now := set.received.Load(); now != last {
			last, lastProgress = now, time.Now()
		} else if time.Since(lastProgress) > seconds(a.StallS) {
			break
		}
	}
	deliverSeconds := time.Since(wallStart).Seconds() - 0.2
	polledAfter := s.poller.snapshot()
	epoch := set.epoch.Load()
	lost, dups, reord, dropped := 0, 0, 0, 0
	latSend, latTs := []float64{}, []float64{}
	bySecond := [][]float64{}
	for _, r := range live {
		lost += r.lost(byRoom[r.room])
		r.mu.Lock()
		dups += r.duplicates
		reord += r.reordered
		if r.err != "" {
			dropped++
		}
		if r.epoch == epoch {
			for _, v := range r.latSendUs {
				latSend = append(latSend, float64(v)/1000)
			}
			for _, v := range r.latTsUs {
				latTs = append(latTs, float64(v)/1000)
			}
			if a.BySecond && len(r.latSentS) == len(r.latSendUs) {
				for i, sec := range r.latSentS {
					for int(sec) >= len(bySecond) && sec >= 0 {
						bySecond = append(bySecond, []float64{})
					}
					if sec >= 0 {
						bySecond[sec] = append(bySecond[sec], float64(r.latSendUs[i])/1000)
					}
				}
			}
		}
		r.mu.Unlock()
	}
	sent, acked, errors := 0, 0, 0
	postMs := []float64{}
	for _, snd := range senders {
		sent += snd.sent
		acked += snd.nAcked
		errors += snd.errors
		postMs = append(postMs, snd.postMs...)
	}
	return map[string]any{
		"offered_rate":         a.Rate,
		"senders":              n,
		"duration_s":           a.Duration,
		"send_seconds":         sendSeconds,
		"deliver_seconds":      deliverSeconds,
		"sent":                 sent,
		"acked":                acked,
		"post_errors":          errors,
		"post_ms":              postMs,
		"expected_deliveries":  expected,
		"received":             set.received.Load(),
		"lost":                 lost,
		"duplicates":           dups,
		"reordered":            reord,
		"readers":              len(live),
		"readers_failed":       len(set.readers) - len(live),
		"readers_dropped":      dropped,
		"drain_seconds":        deliverSeconds - sendSeconds,
		"latency_send_ms":      latSend,
		"latency_ts_ms":        latTs,
		"latency_by_second_ms": bySecond, // empty unless asked for (by_second)
		// How the readers read (every reader of the process): wake-ups that found data,
		// socket reads, and reads stamped with the kernel's receive time.
		"poll_batches":  polledAfter.batches - polled.batches,
		"socket_reads":  polledAfter.reads - polled.reads,
		"stamped_reads": polledAfter.stamped - polled.stamped,
	}, nil
}

// quiesce waits until nothing has arrived for “quiet“ (a backlog from the last step is
// delivered or given up on), at most “timeout“; it returns the seconds waited.
func quiesce(set *ReaderSet, quiet, timeout time.Duration) float64 {
	if quiet <= 0 {
		quiet = 3 * time.Second
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	started := time.Now()
	set.newStep()
	last, since := set.received.Load(), time.Now()
	for time.Since(started) < timeout {
		time.Sleep(100 * time.Millisecond)
		if now := set.received.Load(); now != last {
			last, since = now, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
	}
	return time.Since(started).Seconds()
}

// ingest runs “concurrency“ posters, each posting again as soon as its last post is answered.
func (s *state) ingest(t *Target, rooms []string, concurrency int, duration time.Duration) (any, error) {
	if len(rooms) == 0 {
		return nil, fmt.Errorf("no rooms")
	}
	pub, err := t.publisher(s.posts, s.offsetsFor(t))
	if err != nil {
		return nil, err
	}
	var acked, errors atomic.Int64
	var mu sync.Mutex
	postMs := []float64{}
	started := time.Now()
	stopAt := started.Add(duration)
	var wg sync.WaitGroup
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func(index int) {
			defer wg.Done()
			room := rooms[index%len(rooms)]
			user := fmt.Sprintf("p%d", index)
			mine := []float64{}
			for seq := 0; time.Now().Before(stopAt); seq++ {
				sent := time.Now()
				if pub.Publish(context.Background(), room, user, senderText(900000+index, seq, sent.UnixMicro())) {
					acked.Add(1)
				} else {
					errors.Add(1)
				}
				mine = append(mine, float64(time.Since(sent).Microseconds())/1000)
			}
			mu.Lock()
			postMs = append(postMs, mine...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return map[string]any{"acked": acked.Load(), "errors": errors.Load(),
		"seconds": time.Since(started).Seconds(), "post_ms": postMs}, nil
}
