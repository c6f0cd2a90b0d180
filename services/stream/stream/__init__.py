"""stream: Server-Sent Events to browsers, from Redis (live pub/sub and per-room history),
with exact resume by Last-Event-ID, presence, and deep history read from Kafka."""
