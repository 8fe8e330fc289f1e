"""ClickHouse: the client from a DSN, migrations, named queries, per-tenant readers."""
