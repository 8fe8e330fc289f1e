"""Sinks: where enriched records and dead letters go (ClickHouse, Kafka)."""
