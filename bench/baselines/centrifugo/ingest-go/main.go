// The front of Centrifugo's whole pipeline in the benchmark: what a user of Centrifugo would
// put before its Kafka consumer to accept chat posts as the project's ingest does.
//
//	POST /api/rooms/<room>/messages {"user": ..., "text": ...}
//	  -> a Kafka record (key: the room; value: {"room", "user", "text", "ts"}; header
//	     centrifugo-channels: the room), produced with acks=all
//	  -> 201 {"ts": ...} once the broker has acknowledged it.
//
// Centrifugo's consumer (publication_data_mode) publishes each record's value as it is to
// the channels of its header. Configured from the environment: INGEST_BIND (127.0.0.1:8001),
// KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092), KAFKA_TOPIC (centrifugo.chat).
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var roomPattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	topic := env("KAFKA_TOPIC", "centrifugo.chat")
	client, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), ",")...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	http.HandleFunc("POST /api/rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		var body struct {
			User string `json:"user"`
			Text string `json:"text"`
		}
		if !roomPattern.MatchString(room) || json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&body) != nil ||
			body.User == "" || body.Text == "" {
			http.Error(w, `{"error":{"code":"bad_request"}}`, http.StatusBadRequest)
			return
		}
		ts := time.Now().UnixMilli()
		value, _ := json.Marshal(map[string]any{"room": room, "user": body.User, "text": body.Text, "ts": ts})
		record := &kgo.Record{Key: []byte(room), Value: value,
			Headers: []kgo.RecordHeader{{Key: "centrifugo-channels", Value: []byte(room)}}}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := client.ProduceSync(ctx, record).FirstErr(); err != nil {
			http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ts":` + strconv.FormatInt(ts, 10) + `}`))
	})
	bind := env("INGEST_BIND", "127.0.0.1:8001")
	log.Printf("listening on %s, producing to %s", bind, topic)
	log.Fatal(http.ListenAndServe(bind, nil))
}
