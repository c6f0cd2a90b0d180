package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RedisBridge publishes as the project's bridge does, for the fan-out stage on its own: the
// bridge's Lua script (history, de-duplication and the live publish in one call; the harness
// passes its text, the room's keys and the bridge's bounds: bench/kit/fanout.py), a room's
// messages numbered in the order Redis applies them.
type RedisBridge struct {
	Addr            string `json:"addr"`
	Script          string `json:"script"`
	HistoryMax      int    `json:"history_max"`
	HistoryMaxBytes int    `json:"history_max_bytes"`
	ClientIDTTLS    int    `json:"client_id_ttl_s"`
	RoomIdleTTLS    int    `json:"room_idle_ttl_s"`
	Partitions      int    `json:"partitions"`
	// The script's room keys (history, meta, client_id "-", offsets, deletes, deleted), each
	// with RoomMark where the room's name goes: the names chat_common.messages gives them.
	RoomKeys []string `json:"room_keys"`
	RoomMark string   `json:"room_mark"`
}

// roomOffsets: one connection and one id counter per room, kept across steps (a room's ids
// only grow). A room's senders take turns: the script refuses an id below the last applied.
type roomOffsets struct {
	mu    sync.Mutex
	rooms map[string]*redisRoom
}

// The fan-out stage publishes with the bridge's own script, but into a state hash of its own
// (its partitions marked ready there), so that the ids it makes up never move the positions
// the pipeline's rooms hand their readers (chat:state's last:<partition>), and from an id far
// above any real offset, so that its readers' positions (read from chat:state) never hide them.
const (
	fanoutState  = "bench:fanout:state"
	fanoutBaseID = int64(1) << 40
)

type redisRoom struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	next int64
}

func newRoomOffsets() *roomOffsets { return &roomOffsets{rooms: map[string]*redisRoom{}} }

func (o *roomOffsets) get(room string) *redisRoom {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.rooms[room]
	if r == nil {
		r = &redisRoom{next: fanoutBaseID}
		o.rooms[room] = r
	}
	return r
}

func (o *roomOffsets) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.rooms {
		if r.conn != nil {
			r.conn.Close()
			r.conn = nil
		}
	}
}

type redisPublisher struct {
	cfg   *RedisBridge
	rooms *roomOffsets
	once  sync.Once
	sha   string
}

func (p *redisPublisher) Publish(ctx context.Context, room, user, text string) bool {
	p.once.Do(func() {
		sum := sha1.Sum([]byte(p.cfg.Script))
		p.sha = hex.EncodeToString(sum[:])
	})
	r := p.rooms.get(room)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		conn, err := net.DialTimeout("tcp", p.cfg.Addr, 5*time.Second)
		if err != nil {
			return false
		}
		r.conn, r.r = conn, bufio.NewReader(conn)
		partition := strconv.Itoa(roomPartition(room, p.cfg.Partitions))
		if _, err := r.call("HSET", fanoutState, "ready:"+partition, "1"); err != nil {
			r.conn.Close()
			r.conn = nil
			return false
		}
	}
	id := strconv.FormatInt(r.next, 10)
	data := messageJSON(id, room, user, text, time.Now().UnixMilli())
	live := `{"data":` + data + `,"type":"message","id":"` + id + `"}`
	keys := make([]string, len(p.cfg.RoomKeys))
	for i, k := range p.cfg.RoomKeys {
		keys[i] = strings.ReplaceAll(k, p.cfg.RoomMark, room)
	}
	// bridge/lua/message.lua: KEYS history, meta, state, client_id key, offsets, deletes, deleted;
	// ARGV as the bridge's batch passes them for a message without a client_id, with its bounds.
	args := []string{p.sha, "7", keys[0], keys[1], fanoutState, keys[2], keys[3], keys[4], keys[5],
		id, data, live, room, strconv.Itoa(p.cfg.HistoryMax), strconv.Itoa(roomPartition(room, p.cfg.Partitions)),
		"1", "0", strconv.Itoa(p.cfg.ClientIDTTLS), "", strconv.Itoa(p.cfg.HistoryMaxBytes),
		strconv.Itoa(p.cfg.RoomIdleTTLS)}
	_ = r.conn.SetDeadline(time.Now().Add(30 * time.Second))
	res, err := r.call("EVALSHA", args...)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		args[0] = p.cfg.Script
		res, err = r.call("EVAL", args...)
	}
	if err != nil {
		var redisErr replyError
		if !errors.As(err, &redisErr) { // the connection is in an unknown state
			r.conn.Close()
			r.conn = nil
		}
		return false
	}
	if res == 1 {
		r.next++
		return true
	}
	return false
}

type replyError string

func (e replyError) Error() string { return string(e) }

// call sends one command and reads an integer reply.
func (r *redisRoom) call(name string, args ...string) (int64, error) {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)+1) + "\r\n")
	for _, a := range append([]string{name}, args...) {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := r.conn.Write([]byte(b.String())); err != nil {
		return 0, err
	}
	line, err := r.r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return 0, fmt.Errorf("empty reply")
	}
	switch line[0] {
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '-':
		return 0, replyError(line[1:])
	}
	return 0, fmt.Errorf("unexpected reply %q", line)
}

// messageJSON is Message.to_json() of chat_common.messages: the bytes the bridge writes.
func messageJSON(id, room, user, text string, ts int64) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return `{"id":` + q(id) + `,"room":` + q(room) + `,"user":` + q(user) + `,"text":` + q(text) +
		`,"ts":` + strconv.FormatInt(ts, 10) + `,"client_id":null}`
}

// roomPartition is the Kafka producer's default partitioner (murmur2 of the key), as
// chat_common.messages.room_partition computes it.
func roomPartition(room string, partitions int) int {
	if partitions <= 0 {
		return 0
	}
	return int(uint32(murmur2([]byte(room)))&0x7fffffff) % partitions
}

func murmur2(data []byte) int32 {
	const m = 0x5bd1e995
	const r = 24
	length := len(data)
	h := uint32(0x9747b28c) ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
