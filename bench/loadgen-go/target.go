package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Target is how the load generator talks to one system under test.
//
// Kind        readers                              senders (acknowledged when)
// ours        GET /stream/rooms/<room>?history=0   POST /api/rooms/<room>/messages (201)
// seed        GET /stream?channel=<room>           POST /sendmsg (200)
// ours-redis  as ours                              the bridge's Lua script into Redis (1)
// centrifugo  GET /connection/uni_sse              POST <publish_url>/api/publish (a result)
// centrifugo-kafka  as centrifugo                  POST /api/rooms/<room>/messages (201)
type Target struct {
	Name       string       `json:"name"`
	Kind       string       `json:"kind"`
	BaseURL    string       `json:"base_url"`
	PublishURL string       `json:"publish_url"`
	APIKey     string       `json:"api_key"`
	Redis      *RedisBridge `json:"redis"`
}

// Greets says whether a stream writes something as soon as it is open (flask-sse's
// writes nothing before the first event).
func (t *Target) Greets() bool { return t.Kind != "seed" }

func (t *Target) StreamURL(room string) string {
	switch t.Kind {
	case "seed":
		return t.BaseURL + "/stream?channel=" + url.QueryEscape(room)
	case "centrifugo", "centrifugo-kafka":
		connect := `{"subs":{` + strconv.Quote(room) + `:{}}}`
		return t.BaseURL + "/connection/uni_sse?cf_connect=" + url.QueryEscape(connect)
	default:
		return t.BaseURL + "/stream/rooms/" + room + "?history=0"
	}
}

// Publisher sends one message and says whether the system acknowledged it.
type Publisher interface {
	Publish(ctx context.Context, room, user, text string) bool
}

func (t *Target) publisher(client *http.Client, rooms *roomOffsets) (Publisher, error) {
	switch t.Kind {
	case "ours", "centrifugo-kafka":
		return &httpPublisher{client: client, ok: 201, url: func(room string) string {
			return t.BaseURL + "/api/rooms/" + room + "/messages"
		}, body: func(room, user, text string) any {
			return map[string]string{"user": user, "text": text}
		}}, nil
	case "seed":
		return &httpPublisher{client: client, ok: 200, url: func(string) string { return t.BaseURL + "/sendmsg" },
			body: func(room, user, text string) any {
				return map[string]string{"room": room, "user": user, "message": text}
			}}, nil
	case "centrifugo":
		return &httpPublisher{client: client, ok: 200, header: map[string]string{"X-API-Key": t.APIKey},
			needResult: true,
			url:        func(string) string { return t.PublishURL + "/api/publish" },
			body: func(room, user, text string) any {
				return map[string]any{"channel": room, "data": map[string]any{
					"room": room, "user": user, "text": text, "ts": time.Now().UnixMilli()}}
			}}, nil
	case "ours-redis":
		if t.Redis == nil || len(t.Redis.RoomKeys) != 6 || t.Redis.RoomMark == "" {
			return nil, fmt.Errorf("target %s: kind ours-redis needs redis, with 6 room keys and their mark", t.Name)
		}
		return &redisPublisher{cfg: t.Redis, rooms: rooms}, nil
	}
	return nil, fmt.Errorf("target %s: unknown kind %q", t.Name, t.Kind)
}

type httpPublisher struct {
	client     *http.Client
	ok         int
	header     map[string]string
	needResult bool // Centrifugo's API answers 200 with {"error": ...} on failure
	url        func(room string) string
	body       func(room, user, text string) any
}

func (p *httpPublisher) Publish(ctx context.Context, room, user, text string) bool {
	payload, _ := json.Marshal(p.body(room, user, text))
	req, err := http.NewRequestWithContext(ctx, "POST", p.url(room), bytes.NewReader(payload))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != p.ok {
		return false
	}
	return !p.needResult || bytes.Contains(body, []byte(`"result"`)) && !bytes.Contains(body, []byte(`"error"`))
}

func senderText(sender, seq int, sentUs int64) string {
	var b strings.Builder
	b.WriteString("S:")
	b.WriteString(strconv.Itoa(sender))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(seq))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(sentUs, 10))
	return b.String()
}
