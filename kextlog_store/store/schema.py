"""The store's schema: SQLAlchemy Core tables, the one description of it
(Alembic revisions in migrations/ are the only way it changes), and the
key that packs a record's instance and seq.  Times are integers in
nanoseconds (UTC since the epoch for wall-clock times), so they sort and
compare exactly; the readable view `log` renders them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)

from ..records import INSTANCES_MAX as INSTANCES_MAX
from ..records import SEQ_BITS, SEQ_MASK
from ..records import record_id as record_id

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A 64-bit key that SQLite still treats as its rowid (INTEGER PRIMARY KEY).
RowId = BigInteger().with_variant(Integer, "sqlite")

levels = Table(
    "levels",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)

instances = Table(
    "instances",
    metadata,
    Column("id", RowId, primary_key=True),
    # The machine whose ingest registered it: many hosts share a PostgreSQL store.
    Column("host", Text, nullable=False),
    Column("uuid", Text, nullable=False),  # HELLO's instance id, 32 hex digits
    Column("source", Text, nullable=False),  # where ingest read it, e.g. unix:/run/sim.sock
    Column("name", Text, nullable=False),  # the producer's own name (kext bundle id)
    Column("boot_id", Text, nullable=False),
    Column("producer_version", Text, nullable=False),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    # Every seq up to high_water is stored, lost, filtered or pruned; pruning never lowers it.
    Column("high_water", BigInteger, nullable=False, server_default="0"),
    Column("filtered", BigInteger, nullable=False, server_default="0"),
    Column("pid_indexed_seq", BigInteger, nullable=False, server_default="0"),
    # Where its seqs start: 1 for a kext, 0 for the kernel's own log (kmsg).
    Column("first_seq", BigInteger, nullable=False, server_default="1"),
    # What prune removed of it (records; seqs of loss rows), counted in the
    # transaction of each delete: the accounting compares counts, not a rest.
    Column("pruned_records", BigInteger, nullable=False, server_default="0"),
    Column("pruned_lost", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("host", "uuid"),
)

# A record's key packs (instance, seq) into one 64-bit rowid (records.py
# says how, without SQLAlchemy, for the read path).
# The shift in SQL (instance_id << SEQ_SHIFT): a plain integer literal, as
# PostgreSQL shifts a bigint by an int, not by a bigint parameter.
SEQ_SHIFT = literal_column(str(SEQ_BITS))


records = Table(
    "records",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("instance_id", BigInteger, Computed(f"id >> {SEQ_BITS}", persisted=False)),
    Column("seq", BigInteger, Computed(f"id & {SEQ_MASK}", persisted=False)),
    Column("time_ns", BigInteger, nullable=False),
    Column("mono_ns", BigInteger, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("tid", BigInteger, nullable=False),
    Column("process", Text, nullable=False),
    Column("message", Text, nullable=False),
    # Only records of the kernel's own log (kmsg) have these: NULL costs a
    # kext record one header byte each.
    Column("syslog_priority", SmallInteger),  # 0 emerg .. 7 debug
    Column("facility", SmallInteger),
    Column("fields", Text),  # the record's KEY=value lines, as a JSON object
    Index(None, "time_ns"),
    # Warnings and errors only: the rare levels one searches for.  (Migration
    # 0002 gives PostgreSQL the same WHERE; naming it here would load that
    # dialect, and asyncio with it, at every command's start.)
    Index(None, "level", "time_ns", sqlite_where=text("level >= 4")),
)

# Records by pid, written by ingest in sorted bulk merges; an instance's
# records after its pid_indexed_seq are not in it yet.
pid_index = Table(
    "pid_index",
    metadata,
    Column("pid", Integer, primary_key=True),
    Column("time_ns", BigInteger, primary_key=True),
    Column("id", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

losses = Table(
    "losses",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("instance_id", RowId, ForeignKey("instances.id"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_time_ns", BigInteger),  # NULL when the producer no longer knows
    Column("last_time_ns", BigInteger),
    Column("reason", Text, nullable=False),
    Column("recorded_ns", BigInteger, nullable=False),  # when ingest stored the loss
    UniqueConstraint("instance_id", "first_seq"),
)

# Sealing (kextlog_store.seal, docs/sealing.md; migration 0007): a hash
# chain per host over every batch its ingest commits, and the seals.
seal_chains = Table(
    "seal_chains",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("host", Text, nullable=False, unique=True),
    Column("key_id", LargeBinary, nullable=False),  # names the verification key
    Column("created_ns", BigInteger, nullable=False),
)

seal_entries = Table(
    "seal_entries",
    metadata,
    Column("chain_id", RowId, ForeignKey("seal_chains.id"), primary_key=True),
    Column("position", BigInteger, primary_key=True),  # 1, 2, ... in the chain
    Column("kind", SmallInteger, nullable=False),  # a batch, existing data, a prune
    Column("committed_ns", BigInteger, nullable=False),
    Column("sections", Text, nullable=False),  # JSON: instance, seq range, localisation
    Column("note", Text, nullable=False),  # a prune's checkpoint: what it removed
    Column("digest", LargeBinary, nullable=False),
    Column("head", LargeBinary, nullable=False),
)

seals = Table(
    "seals",
    metadata,
    Column("chain_id", RowId, ForeignKey("seal_chains.id"), primary_key=True),
    Column("epoch", BigInteger, primary_key=True),  # 0, 1, ...: the key's
    Column("position", BigInteger, nullable=False),  # the chain entry it seals
    Column("sealed_ns", BigInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),  # set up, stopped cleanly
    Column("mac", LargeBinary, nullable=False),
)

# Records per (minute, level, instance): kept by ingest in each batch's
# transaction and by prune in each delete's, so that `kextlog stats` and
# the view level_counts add up a row per minute instead of counting records
# (migration 0008).  minute: time_ns floor-divided by NS_PER_MINUTE.  A
# bucket that prune empties is removed, so a row's count is never 0.
NS_PER_MINUTE = 60_000_000_000
record_counts = Table(
    "record_counts",
    metadata,
    Column("minute", BigInteger, primary_key=True),
    Column("level", SmallInteger, primary_key=True),
    Column("instance_id", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Records per (pid, process, instance), for the whole store: kept as
# record_counts is (migration 0009), so that the table per process of
# `kextlog stats` and the view process_counts add up a row per pid instead
# of counting records.  Not per minute: a pid logs in most minutes it
# lives, so per-minute rows would be nearly as many as a minute's records.
pid_counts = Table(
    "pid_counts",
    metadata,
    Column("pid", Integer, primary_key=True),
    Column("process", Text, primary_key=True),
    Column("instance_id", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)


def minute_sql(time_ns: str) -> str:
    """The minute of a time in SQL, floored as Python's // is (both back
    ends truncate integer division towards zero)."""
    m = NS_PER_MINUTE
    return f"(({time_ns}) - ((({time_ns}) % {m}) + {m}) % {m}) / {m}"
