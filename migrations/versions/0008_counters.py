"""Record counters: records per (minute, level, instance) in record_counts,
filled here from the stored records, then kept by ingest in the
transaction of each batch and by prune in the transaction of each delete
(kextlog_store.store.writer.add_counts).  `kextlog stats` and the view
level_counts add these up instead of counting records: a row per minute
and level, not one per record.  process_counts still counts records: the
counters have no process (see README).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time as iso

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44
NS_PER_MINUTE = 60_000_000_000
MINUTE = f"(time_ns - ((time_ns % {NS_PER_MINUTE}) + {NS_PER_MINUTE}) % {NS_PER_MINUTE})"


def _record_time(extreme: str, minute: str) -> str:
    """The oldest or newest record of a level, searched within its first or
    last minute that has any (the time index), not over the whole store."""
    return iso(
        f"(SELECT {extreme}(r.time_ns) FROM records r WHERE r.level = l.level"
        f" AND r.time_ns >= c.{minute} * {NS_PER_MINUTE}"
        f" AND r.time_ns < (c.{minute} + 1) * {NS_PER_MINUTE})"
    )


def level_counts() -> str:
    return f"""
CREATE VIEW level_counts AS
SELECT l.name AS level, l.level AS level_number, coalesce(c.records, 0) AS records,
       {_record_time("min", "first_minute")} AS first_time,
       {_record_time("max", "last_minute")} AS last_time
FROM levels l LEFT JOIN (SELECT level, CAST(sum(count) AS BIGINT) AS records,
                                min(minute) AS first_minute, max(minute) AS last_minute
                         FROM record_counts GROUP BY level) c ON c.level = l.level
ORDER BY l.level
"""


def upgrade() -> None:
    op.create_table(
        "record_counts",
        sa.Column("minute", sa.BigInteger),
        sa.Column("level", sa.SmallInteger),
        sa.Column("instance_id", sa.BigInteger),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("minute", "level", "instance_id", name="pk_record_counts"),
        sqlite_with_rowid=False,
    )
    op.execute(
        f"INSERT INTO record_counts (minute, level, instance_id, count)"
        f" SELECT {MINUTE} / {NS_PER_MINUTE}, level, id >> {SEQ_BITS}, count(*)"
        f" FROM records GROUP BY {MINUTE} / {NS_PER_MINUTE}, level, id >> {SEQ_BITS}"
    )
    op.execute("DROP VIEW level_counts")
    op.execute(level_counts())


def downgrade() -> None:
    op.execute("DROP VIEW level_counts")
    op.execute(import_module("kextlog_store.migrations.versions.0004_summary_views").level_counts())
    op.drop_table("record_counts")
