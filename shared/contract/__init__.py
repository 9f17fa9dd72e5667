"""The event contract: the one place the services meet (events, topics)."""
