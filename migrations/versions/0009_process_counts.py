"""Process counters: records per (pid, process, instance) in pid_counts,
filled here from the stored records, then kept as record_counts is: by
ingest in the transaction of each batch and by prune in the transaction
of each delete (kextlog_store.store.writer.add_counts).  For the whole
store, not per minute: a pid logs in most of the minutes it lives, so
per-minute rows would be nearly as many as the records of a minute.

The view process_counts takes its records and pids from them; its errors,
warnings and times still count the records, in one pass made only when a
query asks for one of those columns.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time as iso

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44


def process_counts() -> str:
    # The pass over the records is a CTE read by scalar subqueries: both
    # back ends leave it out when no column of it is selected.
    def scanned(column: str) -> str:
        return f"(SELECT s.{column} FROM scanned s WHERE s.process = c.process)"

    return f"""
CREATE VIEW process_counts AS
WITH scanned AS MATERIALIZED (
    SELECT process, count(CASE WHEN level = 5 THEN 1 END) AS errors,
           count(CASE WHEN level = 4 THEN 1 END) AS warnings,
           min(time_ns) AS first_ns, max(time_ns) AS last_ns
    FROM records GROUP BY process)
SELECT c.process, c.records, c.pids, {scanned("errors")} AS errors,
       {scanned("warnings")} AS warnings, {iso(scanned("first_ns"))} AS first_time,
       {iso(scanned("last_ns"))} AS last_time
FROM (SELECT process, CAST(sum(count) AS BIGINT) AS records, count(DISTINCT pid) AS pids
      FROM pid_counts GROUP BY process) c
"""


def upgrade() -> None:
    op.create_table(
        "pid_counts",
        sa.Column("pid", sa.Integer),
        sa.Column("process", sa.Text),
        sa.Column("instance_id", sa.BigInteger),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("pid", "process", "instance_id", name="pk_pid_counts"),
        sqlite_with_rowid=False,
    )
    op.execute(
        f"INSERT INTO pid_counts (pid, process, instance_id, count)"
        f" SELECT pid, process, id >> {SEQ_BITS}, count(*)"
        f" FROM records GROUP BY pid, process, id >> {SEQ_BITS}"
    )
    op.execute("DROP VIEW process_counts")
    op.execute(process_counts())


def downgrade() -> None:
    op.execute("DROP VIEW process_counts")
    op.execute(
        import_module("kextlog_store.migrations.versions.0004_summary_views").process_counts()
    )
    op.drop_table("pid_counts")
