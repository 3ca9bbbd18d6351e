"""Persistence: SQLAlchemy Core schema, migrations and the engine, one code path for SQLite and PostgreSQL."""
