"""The kernel's own log (kmsg): syslog priority, facility and fields.

Only kmsg records fill them; for a kext's records they are NULL, which
costs one header byte each.  The log view shows them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def log_view(kmsg: bool) -> str:
    extra = (
        ",\n       r.syslog_priority AS syslog_priority,\n       r.facility AS facility,"
        "\n       r.fields AS fields"
        if kmsg
        else ""
    )
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
       r.level AS level_number{extra}
FROM records r
JOIN levels l ON l.level = r.level
JOIN instances i ON i.id = r.instance_id
"""


def upgrade() -> None:
    op.execute("DROP VIEW log")
    op.add_column("records", sa.Column("syslog_priority", sa.SmallInteger))
    op.add_column("records", sa.Column("facility", sa.SmallInteger))
    op.add_column("records", sa.Column("fields", sa.Text))
    op.execute(log_view(kmsg=True))


def downgrade() -> None:
    op.execute("DROP VIEW log")
    # Plain DDL (SQLite >= 3.35): a batch copy of records would lose its
    # virtual columns' definitions to nothing but trouble.
    for column in ("fields", "facility", "syslog_priority"):
        op.execute(f"ALTER TABLE records DROP COLUMN {column}")
    op.execute(log_view(kmsg=False))
