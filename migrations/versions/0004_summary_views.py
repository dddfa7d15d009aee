"""Views that make common questions one line of SQL: level_counts,
process_counts, instance_accounting; and instances.first_seq, the seq an
instance's records start at (1 for a kext, 0 for the kernel's own log), so
that every seq from first_seq to high_water can be accounted for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time as iso

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44


def level_counts() -> str:
    return f"""
CREATE VIEW level_counts AS
SELECT l.name AS level, l.level AS level_number, count(r.id) AS records,
       {iso("min(r.time_ns)")} AS first_time, {iso("max(r.time_ns)")} AS last_time
FROM levels l LEFT JOIN records r ON r.level = l.level
GROUP BY l.level
"""


def process_counts() -> str:
    # count(CASE ...), not sum(level = 5): PostgreSQL does not add booleans.
    return f"""
CREATE VIEW process_counts AS
SELECT process, count(*) AS records, count(DISTINCT pid) AS pids,
       count(CASE WHEN level = 5 THEN 1 END) AS errors,
       count(CASE WHEN level = 4 THEN 1 END) AS warnings,
       {iso("min(time_ns)")} AS first_time, {iso("max(time_ns)")} AS last_time
FROM records GROUP BY process
"""


# Every seq from first_seq to high_water is stored, lost, filtered, or was
# stored and pruned since; `ahead` counts records stored beyond it (none,
# normally).  Record ids are instance << 44 | seq; a kernel log's seqs start
# at 0, so before its first record its high_water is -1 (hence + not |).
def instance_accounting() -> str:
    return f"""
CREATE VIEW instance_accounting AS
SELECT instance, source, name, boot_id, producer_version, first_seen, last_seen,
       first_seq, high_water, stored, lost, filtered,
       high_water - first_seq + 1 - stored - lost - filtered AS pruned, ahead
FROM (SELECT i.uuid AS instance, i.source AS source, i.name AS name, i.boot_id AS boot_id,
             i.producer_version AS producer_version,
             {iso("i.first_seen_ns")} AS first_seen, {iso("i.last_seen_ns")} AS last_seen,
             i.first_seq AS first_seq, i.high_water AS high_water, i.filtered AS filtered,
             (SELECT count(*) FROM records r WHERE r.id >= (i.id << {SEQ_BITS})
                AND r.id <= (i.id << {SEQ_BITS}) + i.high_water) AS stored,
             (SELECT count(*) FROM records r WHERE r.id > (i.id << {SEQ_BITS}) + i.high_water
                AND r.id < ((i.id + 1) << {SEQ_BITS})) AS ahead,
             (SELECT coalesce(sum(s.count), 0) FROM losses s WHERE s.instance_id = i.id) AS lost,
             i.first_seen_ns AS first_seen_ns, i.id AS id
      FROM instances i) AS accounting
ORDER BY first_seen_ns, id
"""


def upgrade() -> None:
    op.add_column(
        "instances", sa.Column("first_seq", sa.BigInteger, nullable=False, server_default="1")
    )
    # A kernel log's instance (kmsg) is its boot; its seqs start at 0.
    op.execute("UPDATE instances SET first_seq = 0 WHERE source = 'kmsg'")
    op.execute(level_counts())
    op.execute(process_counts())
    op.execute(instance_accounting())


def downgrade() -> None:
    for view in ("instance_accounting", "process_counts", "level_counts"):
        op.execute(f"DROP VIEW {view}")
    op.execute("ALTER TABLE instances DROP COLUMN first_seq")
