"""bridge: consumes the chat topic and, for each message, writes the room's history in
Redis and publishes it live, atomically, before committing the Kafka offset."""
