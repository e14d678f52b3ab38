"""Which storage failures are the message's fault (refuse it) and which are the database's (retry).

A message that passed validation can still be refused by a database: PostgreSQL's text and JSONB
cannot hold what SQLite keeps (a NUL character, NaN), a column has a narrower range than the wire
allows, an episode belongs to someone else. Retrying such a message can never succeed, and since the
ingest acknowledges only what it has handled, retrying it would stall the worker's whole
subscription. So the worker asks :func:`refused_by_data` of every storage failure:

- **the data**: the protocol's own errors (:class:`protocol.errors.ProtocolError`, raised by the
  store's checks), the database's data and integrity errors (SQLSTATE classes 22 and 23:
  :class:`sqlalchemy.exc.DataError`, :class:`sqlalchemy.exc.IntegrityError`), and plain Python
  errors while a value is bound (a string that cannot be encoded, an integer too large for the
  driver): the message is rejected, counted and acknowledged;
- **the database** (everything else): connection refused or lost, timeouts, pool exhaustion, a
  missing table, a server error: the message is retried and, if that still fails, left
  unacknowledged for the broker to redeliver. Nothing is ever acknowledged while the database is away.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from protocol.errors import ProtocolError

_DATA_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, KeyError, UnicodeError)
"""Python errors raised while a value is prepared or bound: deterministic for one message."""


def refused_by_data(error: BaseException) -> bool:
    """True when storing failed because of the message itself (see the module docstring)."""
    if isinstance(error, ProtocolError):
        return True
    if isinstance(error, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(error, sa_exc.DBAPIError):  # operational, interface, programming, internal: the database
        return False
    if isinstance(error, sa_exc.StatementError):  # a bind parameter the driver could not take
        return isinstance(error.orig, _DATA_ERRORS)
    if isinstance(error, sa_exc.SQLAlchemyError | OSError | TimeoutError):
        return False
    return isinstance(error, _DATA_ERRORS)


__all__ = ["refused_by_data"]
