"""Plumbing every service uses: database and migrations, Kafka producers and consumers, the outbox
relay, batch consumption with dead letters, credentials and HTTP auth, telemetry, settings."""
