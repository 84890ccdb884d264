"""Database adapter: engine, ORM models, migrations and repositories."""
