"""Initial schema: levels, instances, records, losses and the readable views.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RowId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

LEVELS = [(1, "trace"), (2, "debug"), (3, "info"), (4, "warning"), (5, "error")]


def log_view() -> str:
    return f"""
CREATE VIEW log AS
SELECT r.id AS id,
       {iso_time("r.time_ns")} AS time,
       l.name AS level,
       r.pid AS pid,
       r.tid AS tid,
       r.process AS process,
       r.message AS message,
       r.seq AS seq,
       i.uuid AS instance,
       i.source AS source,
       r.flags AS flags,
       r.time_ns AS time_ns,
       r.level AS level_number
FROM records r
JOIN levels l ON l.level = r.level
JOIN instances i ON i.id = r.instance_id
"""


def lost_view() -> str:
    return f"""
CREATE VIEW lost AS
SELECT s.id AS id,
       i.uuid AS instance,
       i.source AS source,
       s.first_seq AS first_seq,
       s.last_seq AS last_seq,
       s.count AS count,
       {iso_time("s.first_time_ns")} AS first_time,
       {iso_time("s.last_time_ns")} AS last_time,
       s.reason AS reason,
       {iso_time("s.recorded_ns")} AS recorded
FROM losses s
JOIN instances i ON i.id = s.instance_id
"""


def upgrade() -> None:
    levels = op.create_table(
        "levels",
        sa.Column("level", sa.SmallInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.UniqueConstraint("name", name="uq_levels_name"),
    )
    op.bulk_insert(levels, [{"level": number, "name": name} for number, name in LEVELS])
    op.create_table(
        "instances",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("uuid", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("boot_id", sa.Text, nullable=False),
        sa.Column("producer_version", sa.Text, nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("high_water", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("filtered", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("uuid", name="uq_instances_uuid"),
    )
    op.create_table(
        "records",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("instance_id", RowId, sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("mono_ns", sa.BigInteger, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("tid", sa.BigInteger, nullable=False),
        sa.Column("process", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.UniqueConstraint("instance_id", "seq", name="uq_records_instance_id_seq"),
    )
    op.create_index("ix_records_time_ns", "records", ["time_ns"])
    op.create_index("ix_records_level_time_ns", "records", ["level", "time_ns"])
    op.create_index("ix_records_pid_time_ns", "records", ["pid", "time_ns"])
    op.create_table(
        "losses",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("instance_id", RowId, sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_time_ns", sa.BigInteger),
        sa.Column("last_time_ns", sa.BigInteger),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("instance_id", "first_seq", name="uq_losses_instance_id_first_seq"),
    )
    op.execute(log_view())
    op.execute(lost_view())


def downgrade() -> None:
    op.execute("DROP VIEW lost")
    op.execute("DROP VIEW log")
    op.drop_table("losses")
    op.drop_table("records")
    op.drop_table("instances")
    op.drop_table("levels")
