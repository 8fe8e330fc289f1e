"""The sink role: consume, build rows, insert idempotently, commit."""
