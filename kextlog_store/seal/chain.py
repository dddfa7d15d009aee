"""The chain in the store: extending it in each batch's transaction,
sealing it now and then, checkpoints for what prune removes, and setting
sealing up for a store.  The one reader of a section's rows is here too
(read_section), for setup and for verify."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from ..errors import DatabaseError
from ..store import schema
from ..store.writer import _without_nul
from . import _columns, encoding, keys

log = logging.getLogger("kextlog.seal")

_chains, _entries, _seals = schema.seal_chains, schema.seal_entries, schema.seals
_instances, _records, _losses = schema.instances, schema.records, schema.losses

# Entry kinds: a committed batch, the data already stored at setup, a checkpoint of prune.
BATCH, EXISTING, CHECKPOINT = 1, 2, 3
KINDS = {BATCH: "batch", EXISTING: "existing data", CHECKPOINT: "prune checkpoint"}
# Seal flags: written by setup; the last before ingest stopped cleanly.
SETUP, STOPPED = 1, 2
EXISTING_ROWS = 50_000  # records per entry when setup covers what is stored

_RECORD_COLUMNS = [_records.c[name] for name in ("id", *encoding.RECORD_COLUMNS[1:])]
_LOSS_COLUMNS = [_losses.c[name] for name in encoding.LOSS_COLUMNS]


@dataclass
class Built:
    """A section as packed (seal._columns), with what the chain entry keeps
    to tell what broke: the stored seqs, time window and sums."""

    section: encoding.Section
    first_seq: int
    last_seq: int
    dense: bool  # every seq from first_seq to last_seq, ascending
    time_window: tuple[int, int] | None
    sums: list[int]  # of time_ns and of mono_ns, as int64
    seq_column: bytes

    def seqs(self) -> list[int]:
        return list(struct.unpack(f"<{self.section.records}q", self.seq_column))

    def runs(self) -> list[list[int]]:
        if self.dense:
            return [[self.first_seq, self.last_seq]] if self.section.records else []
        return encoding.runs(self.seqs())

    def stored(self, instance_id: int) -> dict[str, Any]:
        """The section as its entry stores it (JSON): the instance and seq
        range it covers, hashed; runs, tags, times and sums, for reports."""
        return {
            "instance": instance_id,
            "lo": self.section.lo,
            "hi": self.section.hi,
            "runs": self.runs(),
            "losses": self.section.losses,
            "tags": self.section.tags(),
            "time": list(self.time_window) if self.time_window else None,
            "sums": self.sums,
        }


def _built(uuid: str, lo: int, hi: int, packed: tuple, losses: Sequence[Sequence[Any]]) -> Built:
    columns, count, first_seq, last_seq, dense, time_min, time_max, time_sum, mono_sum = packed
    digests = [encoding.sha256(column) for column in columns]
    digests.append(encoding.sha256(encoding.loss_columns(losses)))
    section = encoding.Section(uuid, lo, hi, count, len(losses), tuple(digests))
    window = (time_min, time_max) if count else None
    return Built(
        section, first_seq, last_seq, bool(dense), window, [time_sum, mono_sum], columns[0]
    )


def build(
    uuid: str,
    lo: int,
    hi: int,
    rows: Sequence[tuple],
    losses: Sequence[Sequence[Any]],
    nul_free: bool = False,
) -> Built:
    """A section from rows (records.ROW_FIELDS order, seq first; 9 or 12
    wide) and loss rows (encoding.LOSS_COLUMNS order), both by seq.
    nul_free: text is stored without NUL (PostgreSQL): hashed so too."""
    if nul_free:
        rows = [_without_nul(row) if "\x00" in row[7] + row[8] else row for row in rows]
        losses = [_without_nul(tuple(loss)) for loss in losses]
    return _built(uuid, lo, hi, _columns.pack_rows(rows), losses)


def read_section(
    connection: Connection,
    instance_id: int,
    uuid: str,
    lo: int,
    hi: int,
    packed: _columns.Packed | None = None,
) -> Built:
    """The section of instance's seqs lo..hi as stored now; its records
    packed already (by a SQLite store's C reader, several times faster)
    when given."""
    base = schema.record_id(instance_id, 0)
    losses = connection.execute(
        select(*_LOSS_COLUMNS)
        .where(
            _losses.c.instance_id == instance_id,
            _losses.c.first_seq >= lo,
            _losses.c.first_seq <= hi,
        )
        .order_by(_losses.c.first_seq)
    ).all()
    if packed is not None:
        return _built(uuid, lo, hi, packed, losses)
    rows = connection.execute(
        select(*_RECORD_COLUMNS)
        .where(_records.c.id >= base + lo, _records.c.id <= base + hi)
        .order_by(_records.c.id)
    ).all()
    return build(uuid, lo, hi, [(row[0] - base, *row[1:]) for row in rows], losses)


def _sql(connection: Connection, statement: str, parameters: tuple = ()) -> Any:
    """A statement of ingest's path, at the driver (as store.writer.Writer's
    inserts): SQLAlchemy's statements cost about 0.2 ms each to build,
    which every batch would pay.  Placeholders are written `?`."""
    if connection.dialect.paramstyle != "qmark":
        statement = statement.replace("?", "%s")
    return connection.exec_driver_sql(statement, parameters)


def _last(connection: Connection, chain_id: int) -> tuple[int, bytes, int]:
    """The chain's last position, head and time (0, ZERO_HEAD, 0: none yet)."""
    row = _sql(
        connection,
        "SELECT position, head, committed_ns FROM seal_entries WHERE chain_id = ?"
        " ORDER BY position DESC LIMIT 1",
        (chain_id,),
    ).first()
    return (row[0], bytes(row[1]), row[2]) if row is not None else (0, encoding.ZERO_HEAD, 0)


def _lock(connection: Connection, chain_id: int) -> None:
    """Serialises appends to one chain (PostgreSQL; SQLite has one writer)."""
    if connection.dialect.name == "postgresql":
        _sql(connection, "SELECT id FROM seal_chains WHERE id = ? FOR UPDATE", (chain_id,))


def append(
    connection: Connection,
    chain_id: int,
    kind: int,
    sections: Sequence[tuple[int, Built]] = (),
    note: str = "",
) -> tuple[int, bytes]:
    """One entry at the end of the chain, in connection's transaction.  Its
    time is taken once the chain is locked, and never before the last
    entry's (a clock set back): the chain's times only go forward, so that
    verify can take one that goes back for entries moved."""
    _lock(connection, chain_id)
    position, head, last_ns = _last(connection, chain_id)
    position += 1
    now_ns = max(time.time_ns(), last_ns)
    digest = encoding.batch_digest(
        position, now_ns, kind, note, [built.section.digest() for _, built in sections]
    )
    head = encoding.next_head(head, digest)
    stored = json.dumps([built.stored(instance) for instance, built in sections])
    _sql(
        connection,
        "INSERT INTO seal_entries (chain_id, position, kind, committed_ns, sections, note,"
        " digest, head) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (chain_id, position, kind, now_ns, stored, note, digest, head),
    )
    return position, head


def chain_of(connection: Connection, host: str) -> Any:
    return connection.execute(select(_chains).where(_chains.c.host == host)).first()


class Sealer:
    """Ingest's side of sealing, for one store and host: extends the chain
    in every batch's transaction (extend) and seals it every interval
    (seal), evolving the key after each seal."""

    def __init__(self, engine: Engine, chain: Any, path: Path) -> None:
        self.engine = engine
        self.chain_id: int = chain.id
        self.key_id = bytes(chain.key_id)
        self.path = path
        self._nul_free = engine.dialect.name == "postgresql"
        self.key: keys.EpochKey | None = None
        self._sealed_ns = 0
        with engine.connect() as connection:
            last = self._last_seal(connection)
        self._sealed_ns = last[2] if last else 0
        try:
            self.key = self._load(last[0] if last else -1)
        except DatabaseError as error:  # the chain goes on; verify shows no seal after this
            log.error("sealing: %s: the chain goes on, unsealed", error)

    @classmethod
    def open(cls, engine: Engine, host: str) -> Sealer | None:
        """The store's sealer for host, None when sealing is not set up."""
        with engine.connect() as connection:
            chain = chain_of(connection, host)
        if chain is None:
            return None
        url = engine.url.render_as_string(hide_password=False)
        return cls(engine, chain, keys.location(url, host))

    def _load(self, sealed_epoch: int) -> keys.EpochKey:
        key = keys.load(self.path)
        if key.key_id != self.key_id:
            key.erase()
            raise DatabaseError(f"the sealing key {self.path} belongs to another store or host")
        if key.epoch <= sealed_epoch:  # a crash after a seal, before the key moved on
            key.advance(sealed_epoch + 1)
            keys.replace(self.path, key)
        return key

    def _last_seal(self, connection: Connection) -> Any:
        return connection.execute(
            select(_seals.c.epoch, _seals.c.position, _seals.c.sealed_ns, _seals.c.flags)
            .where(_seals.c.chain_id == self.chain_id)
            .order_by(_seals.c.epoch.desc())
            .limit(1)
        ).first()

    def extend(
        self,
        connection: Connection,
        rows: Mapping[int, list[tuple]],
        loss_rows: Sequence[Mapping[str, Any]],
        states: Iterable[Any],
    ) -> None:
        """The entry of the batch about to be committed in connection's
        transaction: for each instance whose high-water mark moves, the
        seqs from the stored mark + 1 to the new one, and what is stored
        of them once the batch is in (what the store keeps, should a row
        be there already, not what was offered)."""
        moving = {state.id: state.high_water for state in states}
        if not moving:
            return
        stored = _sql(
            connection,
            "SELECT id, uuid, high_water FROM instances"
            f" WHERE id IN ({', '.join('?' * len(moving))})",
            tuple(moving),
        ).all()
        by_instance: dict[int, list[tuple]] = {}
        for loss in loss_rows:
            by_instance.setdefault(loss["instance_id"], []).append(
                tuple(loss[name] for name in encoding.LOSS_COLUMNS)
            )
        sections = []
        for instance_id, uuid, high_water in sorted(stored):
            lo, hi = high_water + 1, moving[instance_id]
            if hi < lo:
                continue
            offered = rows.get(instance_id, [])
            losses = sorted(by_instance.get(instance_id, []))
            if self._occupied(connection, instance_id, lo, hi):
                offered, losses = self._merged(connection, instance_id, lo, hi, offered, losses)
            sections.append((instance_id, build(uuid, lo, hi, offered, losses, self._nul_free)))
        if sections:
            append(connection, self.chain_id, BATCH, sections)

    @staticmethod
    def _occupied(connection: Connection, instance_id: int, lo: int, hi: int) -> bool:
        """Whether rows of these seqs are stored already (never, normally)."""
        base = schema.record_id(instance_id, 0)
        return bool(
            _sql(
                connection,
                "SELECT EXISTS (SELECT 1 FROM records WHERE id BETWEEN ? AND ?) OR EXISTS"
                " (SELECT 1 FROM losses WHERE instance_id = ? AND first_seq BETWEEN ? AND ?)",
                (base + lo, base + hi, instance_id, lo, hi),
            ).scalar()
        )

    @staticmethod
    def _merged(
        connection: Connection,
        instance_id: int,
        lo: int,
        hi: int,
        offered: list[tuple],
        losses: list[tuple],
    ) -> tuple[list[tuple], list[tuple]]:
        """What the range holds once the batch is in: a row stored already
        stays (INSERT OR IGNORE), the rest is the batch's."""
        base = schema.record_id(instance_id, 0)
        merged = {row[0]: tuple(row) + (None,) * (12 - len(row)) for row in offered}
        for row in connection.execute(
            select(*_RECORD_COLUMNS).where(_records.c.id >= base + lo, _records.c.id <= base + hi)
        ):
            merged[row[0] - base] = (row[0] - base, *row[1:])
        kept = {loss[0]: loss for loss in losses}
        for loss in connection.execute(
            select(*_LOSS_COLUMNS).where(
                _losses.c.instance_id == instance_id, _losses.c.first_seq.between(lo, hi)
            )
        ):
            kept[loss[0]] = tuple(loss)
        return [merged[seq] for seq in sorted(merged)], [kept[seq] for seq in sorted(kept)]

    def due(self, now_ns: int, interval_ns: int) -> bool:
        return self.key is not None and now_ns - self._sealed_ns >= interval_ns

    def seal(self, now_ns: int | None = None, *, stopping: bool = False) -> bool:
        """Seals the chain head when entries came since the last seal (or,
        stopping, to mark a clean stop); then the key moves on and the old
        one is gone.  True when it sealed."""
        if self.key is None:
            return False
        now_ns = time.time_ns() if now_ns is None else now_ns
        self._sealed_ns = now_ns  # nothing new: look again an interval later
        with self.engine.begin() as connection:
            _lock(connection, self.chain_id)
            position, head, _ = _last(connection, self.chain_id)
            last = self._last_seal(connection)
            nothing_new = last is not None and last.position == position
            if nothing_new and (not stopping or last.flags & STOPPED):
                return False
            epoch = max(self.key.epoch, last.epoch + 1 if last is not None else 0)
            self.key.advance(epoch)
            flags = STOPPED if stopping else 0
            mac = encoding.seal_mac(self.key.key, epoch, position, now_ns, flags, head)
            connection.execute(
                insert(_seals).values(
                    chain_id=self.chain_id,
                    epoch=epoch,
                    position=position,
                    sealed_ns=now_ns,
                    flags=flags,
                    mac=mac,
                )
            )
        self.key.advance(epoch + 1)
        try:
            keys.replace(self.path, self.key)
        except (OSError, DatabaseError) as error:  # the next seal writes it again
            log.error("sealing: cannot replace the key file %s: %s", self.path, error)
        if stopping:
            self.key.erase()
            self.key = None
        return True


def checkpoint(connection: Connection, what: str, pairs: Iterable[tuple[int, int]]) -> None:
    """prune removed rows (what: records or losses; pairs: each one's
    instance id and seq): a checkpoint entry in the chain of each host
    they belong to, in the delete's transaction, naming the highest seq
    removed of each instance, so that verify tells what prune removed from
    what someone else did."""
    chains = dict(connection.execute(select(_chains.c.host, _chains.c.id)).all())
    if not chains:
        return
    removed: dict[int, int] = {}
    count = 0
    for instance_id, seq in pairs:
        count += 1
        if seq > removed.get(instance_id, -1):
            removed[instance_id] = seq
    hosts: dict[str, dict[str, int]] = {}
    for instance_id, host, uuid in connection.execute(
        select(_instances.c.id, _instances.c.host, _instances.c.uuid).where(
            _instances.c.id.in_(sorted(removed))
        )
    ):
        if host in chains:
            hosts.setdefault(host, {})[uuid] = removed[instance_id]
    for host, upto in sorted(hosts.items()):
        note = json.dumps({"pruned": what, "count": count, "upto": upto}, sort_keys=True)
        append(connection, chains[host], CHECKPOINT, note=note)


def setup(engine: Engine, host: str, path: Path) -> bytearray:
    """Turns sealing on for host's instances in the store: a chain whose
    first entries cover what is stored now, sealed with the first key
    (epoch 0), which is returned (the verification key, for the caller
    to show once) while the key file gets epoch 1's."""
    first = bytearray(secrets.token_bytes(encoding.KEY_SIZE))
    key_id = encoding.key_id(first)
    keys.create(path, keys.EpochKey(key_id, 1, encoding.key_at(first, 1)))
    try:
        with engine.begin() as connection:
            if chain_of(connection, host) is not None:
                raise DatabaseError(f"sealing is set up already for host {host} in this store")
            now_ns = time.time_ns()
            chain_id = connection.execute(
                insert(_chains)
                .values(host=host, key_id=key_id, created_ns=now_ns)
                .returning(_chains.c.id)
            ).scalar_one()
            position, head = 0, encoding.ZERO_HEAD
            for instance_id, uuid, lo, hi in _existing(connection, host):
                built = read_section(connection, instance_id, uuid, lo, hi)
                position, head = append(connection, chain_id, EXISTING, [(instance_id, built)])
            if position == 0:  # an empty store: the chain starts with an empty entry
                position, head = append(connection, chain_id, EXISTING)
            mac = encoding.seal_mac(first, 0, position, now_ns, SETUP, head)
            connection.execute(
                insert(_seals).values(
                    chain_id=chain_id, epoch=0, position=position, sealed_ns=now_ns,
                    flags=SETUP, mac=mac,
                )
            )  # fmt: skip
    except BaseException:
        keys.remove(path)
        first[:] = bytes(len(first))
        raise
    return first


def turn_on(url: str, host: str | None) -> tuple[bytearray, str, Path]:
    """`kextlog db seal-setup`: setup() for the store at url (migrated to
    the newest schema) and host (None: this machine's), refused while an
    ingest runs on it.  The verification key, the host and the key file."""
    from .. import status
    from ..store import migrate

    holder = status.starting(url, host)
    if holder is not None:
        raise DatabaseError(f"ingest (pid {holder}) runs on this store: stop it first")
    engine = migrate.upgrade(url)
    try:
        name = host or socket.gethostname()  # as store.writer.Writer names it
        path = keys.location(url, name)
        return setup(engine, name, path), name, path
    finally:
        engine.dispose()


def _existing(connection: Connection, host: str) -> Iterable[tuple[int, str, int, int]]:
    """What setup covers: each of host's instances' seqs up to its
    high-water mark, cut into ranges of EXISTING_ROWS stored records."""
    instances = connection.execute(
        select(_instances.c.id, _instances.c.uuid, _instances.c.first_seq, _instances.c.high_water)
        .where(_instances.c.host == host)
        .order_by(_instances.c.id)
    ).all()
    for instance_id, uuid, first_seq, high_water in instances:
        base = schema.record_id(instance_id, 0)
        lo = first_seq
        while lo <= high_water:
            chunk = (
                select(_records.c.id)
                .where(_records.c.id >= base + lo, _records.c.id <= base + high_water)
                .order_by(_records.c.id)
                .limit(EXISTING_ROWS)
                .subquery()
            )
            count, last = connection.execute(select(func.count(), func.max(chunk.c.id))).one()
            hi = last - base if count == EXISTING_ROWS else high_water
            yield instance_id, uuid, lo, hi
            lo = hi + 1
