"""Kafka transport: publishing events and consuming them with bounded parallelism."""
