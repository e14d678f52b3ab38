"""The cloud tier: ingest, storage, alert service and dashboard (issue 6).

So far: :mod:`cloud.store`, the database (SQLite by default, PostgreSQL in production) with Alembic
migrations and an async, de-duplicating repository. The cloud imports :mod:`protocol` and
:mod:`models` (inference only), never :mod:`edge` or :mod:`firmware_sim`.
"""
