"""Kafka: the client factories, offsets, delivery, topics, the embedded broker, and every
patch of a Kafka library (``compat``)."""
