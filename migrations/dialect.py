"""What the revisions write differently for SQLite and PostgreSQL, in one
place; everything else in them is the same SQL on both.

Revisions call these inside upgrade()/downgrade(), where the connection
(and so the back end) is known.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def iso_time(ns: str) -> str:
    """Wall-clock nanoseconds (UTC since the epoch) as ISO 8601 text with
    microseconds, the same text on both: 2026-11-27T10:00:00.123456Z (NULL
    stays NULL)."""
    if postgresql():
        return (
            f"to_char(to_timestamp({ns} / 1000000000) AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" || '.' || lpad((({ns} / 1000) % 1000000)::text, 6, '0') || 'Z'"
        )
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {ns} / 1000000000, 'unixepoch')"
        f" || printf('.%06dZ', ({ns} / 1000) % 1000000)"
    )


def computed(expression: str) -> sa.Computed:
    """A column computed from the row's others.  Virtual on SQLite: nothing
    stored.  PostgreSQL (before 18) has only STORED generated columns; we
    take those rather than leaving the columns out there, so that the
    views, `kextlog sql` users and the queries see the same records table
    on both back ends, for 16 bytes a row."""
    return sa.Computed(expression, persisted=postgresql())
