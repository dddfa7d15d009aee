"""Fast ingest: the record key packs (instance, seq) into the rowid; cheap
indexes for the level and pid queries.

- records.id = instance_id << 44 | seq.  The key the delivery contract
  identifies a record by becomes the table's own B-tree, instead of a rowid
  plus a second, unique (instance_id, seq) index written for every record.
  instance_id and seq stay readable as virtual (computed) columns.
- The level index only covers warnings and errors (partial): the levels one
  searches for among many records; trace/debug/info rows no longer pay for it.
- pid_index (pid, time_ns, id) is kept by ingest in sorted bulk merges
  instead of one random B-tree insert per record; instances.pid_indexed_seq
  says up to which seq an instance's records are in it (the rest is a short
  rowid range that queries scan).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import computed, iso_time

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44
SEQ_MASK = (1 << SEQ_BITS) - 1
COLUMNS = "time_ns, mono_ns, level, flags, pid, tid, process, message"


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


def _records_table(name: str, packed: bool) -> None:
    if packed:
        key = [
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("instance_id", sa.BigInteger, computed(f"id >> {SEQ_BITS}")),
            sa.Column("seq", sa.BigInteger, computed(f"id & {SEQ_MASK}")),
        ]
    else:
        key = [
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("instance_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                      sa.ForeignKey("instances.id"), nullable=False),
            sa.Column("seq", sa.BigInteger, nullable=False),
        ]  # fmt: skip
    op.create_table(
        name,
        *key,
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("mono_ns", sa.BigInteger, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("tid", sa.BigInteger, nullable=False),
        sa.Column("process", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        *(
            []
            if packed
            else [sa.UniqueConstraint("instance_id", "seq", name="uq_records_instance_id_seq")]
        ),
    )  # fmt: skip


def upgrade() -> None:
    op.execute("DROP VIEW log")
    _records_table("records_packed", packed=True)
    op.execute(
        f"INSERT INTO records_packed (id, {COLUMNS})"
        f" SELECT (instance_id << {SEQ_BITS}) | seq, {COLUMNS} FROM records"
    )
    op.drop_table("records")
    op.rename_table("records_packed", "records")
    op.create_index("ix_records_time_ns", "records", ["time_ns"])
    op.create_index(
        "ix_records_level_time_ns",
        "records",
        ["level", "time_ns"],
        sqlite_where=sa.text("level >= 4"),
        postgresql_where=sa.text("level >= 4"),
    )
    op.create_table(
        "pid_index",
        sa.Column("pid", sa.Integer, primary_key=True),
        sa.Column("time_ns", sa.BigInteger, primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.add_column(
        "instances",
        sa.Column("pid_indexed_seq", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO pid_index (pid, time_ns, id) SELECT pid, time_ns, id FROM records"
        " ORDER BY pid, time_ns, id"
    )
    op.execute("UPDATE instances SET pid_indexed_seq = high_water")
    op.execute(log_view())


def downgrade() -> None:
    op.execute("DROP VIEW log")
    # Plain DDL (SQLite >= 3.35): a batch copy of instances would trip on the views.
    op.execute("ALTER TABLE instances DROP COLUMN pid_indexed_seq")
    op.drop_table("pid_index")
    _records_table("records_unpacked", packed=False)
    op.execute(
        f"INSERT INTO records_unpacked (instance_id, seq, {COLUMNS})"
        f" SELECT id >> {SEQ_BITS}, id & {SEQ_MASK}, {COLUMNS} FROM records ORDER BY id"
    )
    op.drop_table("records")
    op.rename_table("records_unpacked", "records")
    op.create_index("ix_records_time_ns", "records", ["time_ns"])
    op.create_index("ix_records_level_time_ns", "records", ["level", "time_ns"])
    op.create_index("ix_records_pid_time_ns", "records", ["pid", "time_ns"])
    op.execute(log_view())
