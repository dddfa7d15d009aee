"""Hosts: many machines' daemons share one (PostgreSQL) store.

instances.host names the machine whose ingest registered the instance;
instances are unique per (host, uuid) instead of uuid alone.  Existing rows
get this machine's name: until now a store was one machine's.  The views
log, lost and instance_accounting show the host.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import socket
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kextlog_store.migrations.dialect import iso_time as iso

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ_BITS = 44
VIEWS = ("log", "lost", "instance_accounting")
HOST_COLUMN = ",\n       i.host AS host"


def log_view(host: bool) -> str:
    return f"""
CREATE VIEW log AS
SELECT r.id AS id,
       {iso("r.time_ns")} AS time,
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
       r.level AS level_number,
       r.syslog_priority AS syslog_priority,
       r.facility AS facility,
       r.fields AS fields{HOST_COLUMN if host else ""}
FROM records r
JOIN levels l ON l.level = r.level
JOIN instances i ON i.id = r.instance_id
"""


def lost_view(host: bool) -> str:
    return f"""
CREATE VIEW lost AS
SELECT s.id AS id,
       i.uuid AS instance,
       i.source AS source,
       s.first_seq AS first_seq,
       s.last_seq AS last_seq,
       s.count AS count,
       {iso("s.first_time_ns")} AS first_time,
       {iso("s.last_time_ns")} AS last_time,
       s.reason AS reason,
       {iso("s.recorded_ns")} AS recorded{HOST_COLUMN if host else ""}
FROM losses s
JOIN instances i ON i.id = s.instance_id
"""


def instance_accounting(host: bool) -> str:
    return f"""
CREATE VIEW instance_accounting AS
SELECT {"host, " if host else ""}instance, source, name, boot_id, producer_version,
       first_seen, last_seen, first_seq, high_water, stored, lost, filtered,
       high_water - first_seq + 1 - stored - lost - filtered AS pruned, ahead
FROM (SELECT {"i.host AS host, " if host else ""}i.uuid AS instance, i.source AS source,
             i.name AS name, i.boot_id AS boot_id, i.producer_version AS producer_version,
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


def _views(host: bool) -> None:
    op.execute(log_view(host))
    op.execute(lost_view(host))
    op.execute(instance_accounting(host))


def upgrade() -> None:
    # The views go first: SQLite rebuilds instances (batch mode) to change
    # its unique key, and will not rename a table that views name.
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    op.add_column(
        "instances",
        sa.Column("host", sa.Text, nullable=False, server_default=socket.gethostname()),
    )
    with op.batch_alter_table("instances") as batch:
        batch.alter_column("host", server_default=None)
        batch.drop_constraint("uq_instances_uuid", type_="unique")
        batch.create_unique_constraint("uq_instances_host_uuid", ["host", "uuid"])
    _views(host=True)


def downgrade() -> None:
    # Refused by the unique key when two hosts' instances share a uuid.
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("instances") as batch:
        batch.drop_constraint("uq_instances_host_uuid", type_="unique")
        batch.create_unique_constraint("uq_instances_uuid", ["uuid"])
        batch.drop_column("host")
    _views(host=False)
