package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// A stream that loses, repeats and reorders events: every reader reports each of them, through
// the real path (a socket, the poller, chunked decoding, the checks).
func TestReadersReportLossDuplicatesAndReordering(t *testing.T) {
	events := make(chan string)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasPrefix(req.URL.Path, "/stream/rooms/") {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 1000\n\n") // the project's stream greets at once
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-events:
				fmt.Fprint(w, ev)
				w.(http.Flusher).Flush()
			case <-req.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()

	st := newState()
	defer st.closeAll()
	target := &Target{Name: "t", Kind: "ours", BaseURL: srv.URL}
	status, err := st.open(target, []string{"r"}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if failed := status.(map[string]any)["failed"]; failed != 0 {
		t.Fatalf("the reader failed to open: %v", status)
	}
	set := st.sets[status.(map[string]any)["set"].(int)]
	set.newStep()
	waitFor(t, func() bool { // the poller reads the socket from now on
		st.poller.mu.Lock()
		defer st.poller.mu.Unlock()
		return len(st.poller.readers) == 1
	})

	// Sender 7 had 0..5 acknowledged; the stream sends 0, 1, 3, 2, 2: 4 and 5 never come,
	// 2 comes late (reordered), then again (a duplicate).
	sender := &Sender{id: 7, sent: 6, acked: []bool{true, true, true, true, true, true}}
	sentUs := time.Now().UnixMicro()
	for _, seq := range []int{0, 1, 3, 2, 2} {
		data := fmt.Sprintf(`{"id":"%d","room":"r","user":"u7","text":"%s","ts":%d,"client_id":null}`,
			seq, senderText(7, seq, sentUs), sentUs/1000)
		events <- "id: " + fmt.Sprint(seq) + "\nevent: message\ndata: " + data + "\n\n"
	}
	waitFor(t, func() bool { return set.received.Load() == 5 })

	// A collection while the poller waits with nothing to read must not hang (its calls are
	// raw: it yields at each wait).
	collected := make(chan struct{})
	go func() { runtime.GC(); close(collected) }()
	select {
	case <-collected:
	case <-time.After(10 * time.Second):
		t.Fatal("a collection did not complete while the poller was idle")
	}

	r := set.readers[0]
	if lost := r.lost([]*Sender{sender}); lost != 2 {
		t.Errorf("lost = %d, want 2 (4 and 5)", lost)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.duplicates != 1 || r.reordered != 1 || r.received != 5 {
		t.Errorf("duplicates %d, reordered %d, received %d; want 1, 1, 5", r.duplicates, r.reordered, r.received)
	}
	if len(r.latSendUs) != 5 || len(r.latTsUs) != 5 {
		t.Errorf("latencies: %d send, %d ts; want 5 each", len(r.latSendUs), len(r.latTsUs))
	}
	for _, us := range r.latSendUs {
		if us < 0 || us > 60_000_000 {
			t.Errorf("a receive time %d µs from its send time: not this host's clock", us)
		}
	}
}

// A read's receive time is the kernel's stamp when the read carries one, else the time now.
func TestReceiveTimeIsTheKernelsStamp(t *testing.T) {
	rx := newReceiver(64)
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&rx.oob[0]))
	h.Level, h.Type = syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS
	h.SetLen(syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))))
	*(*syscall.Timespec)(unsafe.Pointer(&rx.oob[syscall.SizeofCmsghdr])) = syscall.Timespec{Sec: 1700000000, Nsec: 123456789}
	rx.msg.SetControllen(syscall.CmsgSpace(int(unsafe.Sizeof(syscall.Timespec{}))))
	if us, stamped := rx.stamp(); !stamped || us != 1700000000_123456 {
		t.Errorf("stamp %d (stamped %v), want 1700000000123456", us, stamped)
	}
	rx.msg.SetControllen(0) // no control message: the time now
	before := time.Now().UnixMicro()
	if us, stamped := rx.stamp(); stamped || us < before || us > time.Now().UnixMicro() {
		t.Errorf("without a stamp: %d (stamped %v), want the time now", us, stamped)
	}
}

// Events split anywhere (mid-event, mid-chunk-header) are reassembled before they are checked.
func TestFeedReassemblesSplitChunks(t *testing.T) {
	set := &ReaderSet{}
	r := &Reader{set: set, chunked: true, opened: make(chan struct{}), expect: map[int]int{},
		gaps: map[int]map[int]struct{}{}}
	var stream strings.Builder
	for seq := 0; seq < 3; seq++ {
		ev := "data: " + senderText(3, seq, 1) + "\n\n"
		fmt.Fprintf(&stream, "%x\r\n%s\r\n", len(ev), ev)
	}
	raw := []byte(stream.String())
	for i := 0; i < len(raw); i += 5 {
		if !r.feed(raw[i:min(i+5, len(raw))], 2) {
			t.Fatalf("the stream ended at byte %d: %s", i, r.err)
		}
	}
	if r.received != 3 || r.expect[3] != 3 || r.duplicates != 0 || r.reordered != 0 || len(r.gaps[3]) != 0 {
		t.Errorf("received %d, next expected %d, dup %d, reordered %d, gaps %v", r.received, r.expect[3],
			r.duplicates, r.reordered, r.gaps[3])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
