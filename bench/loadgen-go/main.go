// The benchmark's load generator: many SSE readers and paced senders, every event checked.
//
// The harness (bench/kit/loadgen.py) starts one of these and drives it with one JSON command per
// line on stdin; each command gets one JSON reply per line on stdout, {"ok": true, "result":
// ...} or {"ok": false, "error": "..."}. Commands: open (a set of readers over rooms, kept
// open across steps), step (senders at a rate for a while, then wait for every reader to have
// what was acknowledged), quiesce, reset, close, ingest (closed-loop posters), stop.
//
// Every message carries its sender, a per-sender sequence number and the send time in its
// text, "S:<sender>:<seq>:<send time, epoch microseconds>", so that each reader checks what it
// receives against what was sent, whatever the system: a missing sequence number is lost
// (unless it turns up later: then it was reordered), a repeated one is a duplicate. A sender
// has one message in flight at a time, so its sequence numbers are also the order in which
// the system accepted them. Latency is receive time minus send time (this host's clock), and
// receive time minus the message's "ts" (epoch ms) where the event carries one.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
)

type request struct {
	Cmd string          `json:"cmd"`
	Arg json.RawMessage `json:"arg"`
}

type reply struct {
	OK     bool   `json:"ok"`
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func main() {
	// Latency is measured here: a collection pause would be charged to the system under test.
	debug.SetGCPercent(400)
	// Two processors (at least): the readers' goroutine (poller.go) holds one, the senders
	// and the commands use the other.
	if os.Getenv("GOMAXPROCS") == "" || runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	// LOADGEN_CPUPROFILE=<file>: a Go CPU profile of the whole run (go tool pprof).
	if path := os.Getenv("LOADGEN_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	state := newState()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var rep reply
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			rep = reply{Error: "bad request: " + err.Error()}
		} else if req.Cmd == "stop" {
			state.closeAll()
			_ = enc.Encode(reply{OK: true})
			_ = out.Flush()
			return // (the deferred profile is written)
		} else {
			result, err := state.handle(req.Cmd, req.Arg)
			if err != nil {
				rep = reply{Error: err.Error()}
			} else {
				rep = reply{OK: true, Result: result}
			}
		}
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: writing a reply:", err)
			os.Exit(1)
		}
		_ = out.Flush()
	}
	state.closeAll()
}
