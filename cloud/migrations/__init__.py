"""Alembic migration scripts of the cloud store (run them with :func:`cloud.store.migrate.upgrade_database`)."""
