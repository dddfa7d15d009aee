"""Pruned counts: what prune and retention removed, counted per instance.

instances.pruned_records counts the records prune removed, and
instances.pruned_lost the seqs of the loss rows it removed, each raised in
the transaction of its delete (kextlog_store.store.retention).  The accounting
then compares independent counts: every seq from first_seq to high_water
is stored, lost, filtered or pruned, and the view instance_accounting shows
a `discrepancy` (the seqs up to the high-water mark that none of those
counts covers; negative when some are counted twice), which `kextlog db
check` reports.  Until now `pruned` was the remainder, so it matched
whatever happened to the rows.

A store pruned before this revision: its pruned records cannot be told
from records that went another way, so pruned_records starts as that
remainder (never below 0), once, here; pruned_lost starts at 0 (loss rows
pruned before are in pruned_records).  From then on a row that disappears
without prune shows as a discrepancy.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time as iso

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44
COLUMNS = ("pruned_records", "pruned_lost")

# An instance's records are one range of the key, instance << 44 | seq.  A
# kernel log's seqs start at 0, so before its first record its high_water
# is -1 (hence + not |).
STORED = f"""(SELECT count(*) FROM records r WHERE r.id >= (i.id << {SEQ_BITS}) + i.first_seq
                AND r.id <= (i.id << {SEQ_BITS}) + i.high_water)"""
AHEAD = f"""(SELECT count(*) FROM records r WHERE r.id > (i.id << {SEQ_BITS}) + i.high_water
                AND r.id < ((i.id + 1) << {SEQ_BITS}))"""
LOST = "(SELECT coalesce(sum(s.count), 0) FROM losses s WHERE s.instance_id = i.id)"


def instance_accounting() -> str:
    """Every seq from first_seq to high_water is stored, lost, filtered or
    pruned, each counted on its own; discrepancy: the seqs none of them
    covers (negative: counted twice).  `ahead` counts records stored beyond
    high_water (none, normally)."""
    return f"""
CREATE VIEW instance_accounting AS
SELECT host, instance, source, name, boot_id, producer_version, first_seen, last_seen,
       first_seq, high_water, stored, lost, filtered, pruned,
       high_water - first_seq + 1 - stored - lost - filtered - pruned AS discrepancy, ahead
FROM (SELECT i.host AS host, i.uuid AS instance, i.source AS source, i.name AS name,
             i.boot_id AS boot_id, i.producer_version AS producer_version,
             {iso("i.first_seen_ns")} AS first_seen, {iso("i.last_seen_ns")} AS last_seen,
             i.first_seq AS first_seq, i.high_water AS high_water, i.filtered AS filtered,
             i.pruned_records + i.pruned_lost AS pruned,
             {STORED} AS stored, {AHEAD} AS ahead, {LOST} AS lost,
             i.first_seen_ns AS first_seen_ns, i.id AS id
      FROM instances i) AS accounting
ORDER BY first_seen_ns, id
"""


def upgrade() -> None:
    op.execute("DROP VIEW instance_accounting")
    for column in COLUMNS:
        op.add_column(
            "instances", sa.Column(column, sa.BigInteger, nullable=False, server_default="0")
        )
    # Once: what was pruned before this revision is the remainder it left.
    remainder = f"i.high_water - i.first_seq + 1 - {STORED} - {LOST} - i.filtered"
    op.execute(
        f"UPDATE instances SET pruned_records = (SELECT CASE WHEN {remainder} > 0"
        f" THEN {remainder} ELSE 0 END FROM instances i WHERE i.id = instances.id)"
    )
    op.execute(instance_accounting())


def downgrade() -> None:
    op.execute("DROP VIEW instance_accounting")
    for column in COLUMNS:
        op.execute(f"ALTER TABLE instances DROP COLUMN {column}")
    # 0005's view, pruned as the remainder.
    op.execute(
        import_module("kextlog_store.migrations.versions.0005_hosts").instance_accounting(host=True)
    )
