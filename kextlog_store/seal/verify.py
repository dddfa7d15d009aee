"""`kextlog db verify`: walks each host's chain over the store as it is,
recomputing every batch's digest from the rows, every head, and with the
verification key every seal; reports the first place where it breaks.
Read-only: it runs on a read-only engine (store.engine.read_engine)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, func, select

from ..errors import UsageError
from ..store import schema
from . import _columns, encoding
from .chain import CHECKPOINT, KINDS, SETUP, STOPPED, Built, read_section

_chains, _entries, _seals = schema.seal_chains, schema.seal_entries, schema.seals
_instances, _records, _losses = schema.instances, schema.records, schema.losses

COLUMN_NAMES = (*encoding.RECORD_COLUMNS, "loss rows")


@dataclass
class Break:
    """Where a chain stops holding, and how."""

    kind: str  # changed, removed, inserted, reordered, seal missing, seal invalid
    position: int | None  # the chain entry (None: outside the chain)
    detail: str
    instance: str | None = None
    seqs: tuple[int, int] | None = None
    window: tuple[int, int] | None = None  # time_ns of the records concerned


@dataclass
class ChainReport:
    host: str
    keyed: bool  # seals checked with the verification key
    entries: int = 0
    records: int = 0  # verified record by record
    losses: int = 0
    sealed: Any = None  # the last seal reached: epoch, position, sealed_ns, flags
    tail_entries: int = 0  # after the last seal
    tail_records: int = 0
    tail_window: tuple[int, int] | None = None  # committed_ns of the tail's entries
    checkpoints: list[dict] = field(default_factory=list)  # prune's notes
    unverified: int = 0  # records left in entries prune took rows from
    broken: Break | None = None


def parse_key(text: str) -> bytearray:
    try:
        key = bytearray.fromhex(text.strip())
    except ValueError:
        key = bytearray()
    if len(key) != encoding.KEY_SIZE:
        raise UsageError(
            f"invalid verification key: expected {2 * encoding.KEY_SIZE} hex digits, "
            "as `kextlog db seal-setup` printed it"
        )
    return key


def verify_store(url: str, key: str | None) -> list[ChainReport]:
    """`kextlog db verify`: verify() on a read-only engine of the store
    at url; key as the user gave it (parse_key), or None."""
    from ..store.engine import read_engine, sqlite_path

    secret = parse_key(key) if key is not None else None
    engine = read_engine(url)
    try:
        with engine.connect() as connection:
            return verify(connection, secret, sqlite_path(url))
    finally:
        engine.dispose()
        if secret is not None:
            secret[:] = bytes(len(secret))


def verify(
    connection: Connection, key: bytearray | None = None, path: Path | None = None
) -> list[ChainReport]:
    """Every chain in the store; key (the verification key) checks the
    seals of the chain it belongs to.  UsageError if it belongs to none.
    path: the SQLite file behind connection, whose records are then read
    in C, in a snapshot taken after connection's (a store that no one
    writes meanwhile, such as a copy, is the same in both)."""
    chains = connection.execute(select(_chains).order_by(_chains.c.id)).all()
    key_id = encoding.key_id(key) if key is not None else None
    if key_id is not None and all(bytes(chain.key_id) != key_id for chain in chains):
        raise UsageError("the verification key belongs to no chain in this store")
    readers = _Readers(f"file:{quote(str(path))}?mode=ro") if path is not None else None
    try:
        return [
            _Walk(connection, chain, key if bytes(chain.key_id) == key_id else None, readers).run()
            for chain in chains
        ]
    finally:
        if readers is not None:
            readers.close()


class _Readers:
    """C readers of a SQLite store's records, one per thread of a small
    pool, which read the entries ahead of the walk while it hashes."""

    THREADS = 2
    AHEAD = 8  # entries

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="verify")
        self.local = threading.local()
        self.made: list[_columns.Reader] = []
        self.lock = threading.Lock()

    def _read(self, base: int, lo: int, hi: int) -> _columns.Packed:
        reader = getattr(self.local, "reader", None)
        if reader is None:
            reader = self.local.reader = _columns.Reader(self.uri)
            with self.lock:
                self.made.append(reader)
        return reader.read(base, lo, hi)

    def ahead(self, entries: Iterable[Any]) -> Iterator[tuple[Any, list[Future]]]:
        """Each entry, with its sections' records being read."""
        waiting: deque[tuple[Any, list[Future]]] = deque()
        for entry in entries:
            reads: list[Future] = []
            for stored in sections_of(entry.sections) or []:  # a bad one: reported by the walk
                base = schema.record_id(stored["instance"], 0)
                reads.append(self.pool.submit(self._read, base, stored["lo"], stored["hi"]))
            waiting.append((entry, reads))
            if len(waiting) > self.AHEAD:
                yield waiting.popleft()
        yield from waiting

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        for reader in self.made:
            reader.close()


# The types ingest writes in each column: SQLite stores whatever an intruder
# writes, so a row is checked before any of it is used.
_BYTES = (bytes, memoryview)
ENTRY_TYPES = {"position": int, "kind": int, "committed_ns": int, "sections": str,
               "note": str, "digest": _BYTES, "head": _BYTES}  # fmt: skip
SEAL_TYPES = {"epoch": int, "position": int, "sealed_ns": int, "flags": int, "mac": _BYTES}


def well_typed(row: Any, types: dict[str, Any]) -> bool:
    """Whether each named column of row holds a value of its type."""
    return all(isinstance(getattr(row, name), kind) for name, kind in types.items())


def sections_of(text: str) -> list[dict] | None:
    """An entry's sections as ingest writes them: a list of {instance, lo,
    hi, ...} with an instance id and seqs in the store's ranges; None for
    anything else.  The text is the intruder's to write, so what does not
    parse is a change to report, never a failure of verify."""
    try:
        sections = json.loads(text)
    except ValueError:
        return None
    if not isinstance(sections, list):
        return None
    for section in sections:
        if not (
            isinstance(section, dict)
            and all(type(section.get(name)) is int for name in ("instance", "lo", "hi"))
            and 0 < section["instance"] <= schema.INSTANCES_MAX
            and 0 <= section["lo"] <= schema.SEQ_MASK
            and 0 <= section["hi"] <= schema.SEQ_MASK
        ):
            return None
    return sections


class _Walk:
    def __init__(
        self,
        connection: Connection,
        chain: Any,
        key: bytearray | None,
        readers: _Readers | None,
    ) -> None:
        self.connection = connection
        self.readers = readers
        self.chain = chain
        self.key = bytearray(key) if key is not None else None
        self.epoch = 0  # of self.key
        self.report = ChainReport(chain.host, key is not None)
        self.instances = {
            row.id: row
            for row in connection.execute(
                select(
                    _instances.c.id, _instances.c.uuid, _instances.c.first_seq,
                    _instances.c.high_water,
                ).where(_instances.c.host == chain.host)
            )
        }  # fmt: skip
        self.upto = self._checkpoints()
        self.next_seq = {instance.id: instance.first_seq for instance in self.instances.values()}

    def _checkpoints(self) -> dict[int, int]:
        """By instance id: up to which seq prune may have removed rows."""
        by_uuid = {instance.uuid: instance.id for instance in self.instances.values()}
        upto: dict[int, int] = {}
        for committed_ns, note in self.connection.execute(
            select(_entries.c.committed_ns, _entries.c.note).where(
                _entries.c.chain_id == self.chain.id, _entries.c.kind == CHECKPOINT
            )
        ):
            try:
                if type(committed_ns) is not int:
                    continue
                checkpoint = json.loads(note)
                upto_seqs = dict(checkpoint.get("upto", {}))
            except (ValueError, TypeError, AttributeError):
                continue  # not as prune writes it: it excuses no removed row
            self.report.checkpoints.append({"committed_ns": committed_ns, **checkpoint})
            for uuid, seq in upto_seqs.items():
                if uuid in by_uuid and type(seq) is int:
                    upto[by_uuid[uuid]] = max(upto.get(by_uuid[uuid], -1), seq)
        return upto

    def _fail(self, kind: str, position: int | None, detail: str, **where: Any) -> ChainReport:
        self.report.broken = Break(kind, position, detail, **where)
        return self.report

    def run(self) -> ChainReport:
        seals = self._seals()
        seal = next(seals, None)
        if self.key is not None and (seal is None or seal.epoch != 0 or not seal.flags & SETUP):
            return self._fail("seal missing", None, "the seal of epoch 0 (made at setup) is gone")
        head, position, previous_ns = encoding.ZERO_HEAD, 0, None
        tail: list[int] = []
        entries: Iterable[tuple[Any, list[Future] | None]] = (
            self.readers.ahead(self._entries())
            if self.readers is not None
            else ((entry, None) for entry in self._entries())
        )
        for entry, reads in entries:
            if not well_typed(entry, ENTRY_TYPES):
                return self._fail(
                    "changed", position + 1, "a chain entry's columns are not as ingest writes them"
                )
            if entry.position != position + 1:
                return self._fail(
                    "removed", position + 1,
                    f"chain entries {position + 1}..{entry.position - 1} are gone",
                )  # fmt: skip
            position = entry.position
            if previous_ns is not None and entry.committed_ns < previous_ns:
                return self._fail(
                    "reordered", position, "committed before the entry ahead of it",
                    window=(entry.committed_ns, previous_ns),
                )  # fmt: skip
            previous_ns = entry.committed_ns
            digest = self._entry(entry, reads)
            if self.report.broken is not None:
                return self.report
            head = encoding.next_head(head, digest)
            if head != bytes(entry.head):
                return self._fail("changed", position, "the chain entry's stored head differs")
            self.report.entries += 1
            tail.append(entry.committed_ns)
            self.report.tail_records += self._last_records
            while seal is not None and seal.position == position:
                if not self._check_seal(seal, head):
                    return self.report
                self.report.sealed = seal
                tail, self.report.tail_records = [], 0
                seal = next(seals, None)
        if seal is not None:
            return self._fail(
                "removed", position + 1,
                f"the seal of epoch {seal.epoch} covers chain entries up to {seal.position}, "
                f"but the chain ends at {position}: its tail was cut",
                window=(seal.sealed_ns, seal.sealed_ns),
            )  # fmt: skip
        self.report.tail_entries = len(tail)
        self.report.tail_window = (tail[0], tail[-1]) if tail else None
        self._outside()
        return self.report

    def _seals(self) -> Iterator[Any]:
        expected = 0
        for seal in self.connection.execute(
            select(_seals).where(_seals.c.chain_id == self.chain.id).order_by(_seals.c.epoch)
        ):
            if not well_typed(seal, SEAL_TYPES):
                where = seal.position if isinstance(seal.position, int) else None
                self._fail("seal invalid", where, "a seal's columns are not as ingest writes them")
                return
            if seal.epoch != expected and self.key is not None:
                self._fail(
                    "seal missing", seal.position,
                    f"no seal of epoch {expected}" + (
                        f"..{seal.epoch - 1}" if seal.epoch - 1 > expected else ""
                    ) + f" (the next, epoch {seal.epoch}, seals entry {seal.position})",
                    window=(seal.sealed_ns, seal.sealed_ns),
                )  # fmt: skip
                return
            expected = seal.epoch + 1
            yield seal

    def _entries(self) -> Iterator[Any]:
        yield from self.connection.execute(
            select(_entries)
            .where(_entries.c.chain_id == self.chain.id)
            .order_by(_entries.c.position)
        )

    def _check_seal(self, seal: Any, head: bytes) -> bool:
        if self.report.broken is not None:  # a missing epoch, found by _seals
            return False
        if self.key is None:
            return True
        while self.epoch < seal.epoch:
            encoding.evolve(self.key)
            self.epoch += 1
        mac = encoding.seal_mac(
            self.key, seal.epoch, seal.position, seal.sealed_ns, seal.flags, head
        )
        if mac != bytes(seal.mac):
            since = self.report.sealed.position + 1 if self.report.sealed is not None else 1
            self._fail(
                "seal invalid", seal.position,
                f"the seal of epoch {seal.epoch} does not match chain entries {since}.."
                f"{seal.position}: they were changed after they were sealed",
                window=(seal.sealed_ns, seal.sealed_ns),
            )  # fmt: skip
            return False
        return True

    def _entry(self, entry: Any, reads: list[Future] | None) -> bytes:
        """The entry's digest, recomputed from the rows; where prune took
        rows from a section, the stored one (if what is left fits)."""
        self._last_records = 0
        sections = sections_of(entry.sections)
        if sections is None:
            self._fail("changed", entry.position, "its sections are not as ingest writes them")
            return b""
        built: list[tuple[dict, Built]] = []
        for stored, read in zip(sections, reads or [None] * len(sections), strict=True):
            instance = self.instances.get(stored["instance"])
            if instance is None:
                self._fail("changed", entry.position, f"instance {stored['instance']} is gone")
                return b""
            expected = self.next_seq[instance.id]
            if stored["lo"] != expected:
                self._misplaced(entry, instance, stored, expected)
                return b""
            self.next_seq[instance.id] = stored["hi"] + 1
            try:
                built.append((stored, read_section(
                    self.connection, instance.id, instance.uuid, stored["lo"], stored["hi"],
                    read.result() if read is not None else None,
                )))  # fmt: skip
            except ValueError as error:  # a value ingest never writes
                self._fail("changed", entry.position, str(error), instance=instance.uuid,
                           seqs=(stored["lo"], stored["hi"]))  # fmt: skip
                return b""
        digest = encoding.batch_digest(
            entry.position, entry.committed_ns, entry.kind, entry.note,
            [each.section.digest() for _, each in built],
        )  # fmt: skip
        if digest == bytes(entry.digest):
            for _, each in built:
                self.report.records += each.section.records
                self.report.losses += each.section.losses
                self._last_records += each.section.records
            return digest
        states = [self._section(entry, stored, each) for stored, each in built]
        if self.report.broken is not None:
            return b""
        if "pruned" not in states:
            self._fail("changed", entry.position, f"the {KINDS.get(entry.kind, 'entry')}'s "
                       "own fields (time, kind, note) or stored digest differ")  # fmt: skip
            return b""
        for _, each in built:
            self.report.unverified += each.section.records
        return bytes(entry.digest)

    def _misplaced(self, entry: Any, instance: Any, stored: dict, expected: int) -> None:
        """A section that does not start where the instance's last ended:
        its batch was moved (the one that does start there comes later),
        entries were removed, or a batch was inserted."""
        where = {"instance": instance.uuid, "seqs": (min(expected, stored["lo"]), stored["hi"])}
        if stored["lo"] < expected:
            detail = f"seqs {stored['lo']}..{expected - 1} accounted for twice"
            self._fail("inserted", entry.position, detail, **where)
            return
        for later in self.connection.execute(
            select(_entries.c.position, _entries.c.sections).where(
                _entries.c.chain_id == self.chain.id, _entries.c.position > entry.position
            )
        ):
            if any(
                section["instance"] == instance.id and section["lo"] == expected
                for section in sections_of(later.sections) or []
            ):
                detail = f"the batch of seqs from {expected} on is at entry {later.position}"
                self._fail("reordered", entry.position, detail, **where)
                return
        detail = f"the chain accounts for seqs {expected}..{stored['lo'] - 1} nowhere"
        self._fail("removed", entry.position, detail, **where)

    def _section(self, entry: Any, stored: dict, built: Built) -> str:
        """Whether a section is intact, lost rows to prune ("pruned": what
        is left is not checked), or is broken (the first break, reported)."""
        if self.report.broken is not None:
            return "broken"
        uuid = self.instances[stored["instance"]].uuid
        where: dict[str, Any] = {"instance": uuid, "seqs": (stored["lo"], stored["hi"])}
        where["window"] = tuple(stored["time"]) if stored.get("time") else None
        have = set(built.seqs())
        had = {seq for first, last in stored["runs"] for seq in range(first, last + 1)}
        extra, missing = sorted(have - had), sorted(had - have)
        if extra:
            where["window"] = built.time_window
            self._fail("inserted", entry.position, _seqs("records", extra), **where)
            return "broken"
        fewer_losses = built.section.losses < stored["losses"]
        if stored["lo"] <= self.upto.get(stored["instance"], -1) and (missing or fewer_losses):
            return "pruned"
        if missing:
            self._fail("removed", entry.position, _seqs("records", missing), **where)
            return "broken"
        size = 2 * encoding.TAG_SIZE
        now, then = built.section.tags(), stored["tags"]
        columns = [
            name
            for index, name in enumerate(COLUMN_NAMES)
            if now[index * size : (index + 1) * size] != then[index * size : (index + 1) * size]
        ]
        if not columns:
            return "intact"
        if {"time_ns", "mono_ns"} <= set(columns) and built.sums == stored["sums"]:
            detail = "the same records, at other seqs (" + ", ".join(columns) + " moved)"
            self._fail("reordered", entry.position, detail, **where)
        elif columns == ["loss rows"] and built.section.losses != stored["losses"]:
            kind = "removed" if fewer_losses else "inserted"
            self._fail(kind, entry.position, f"loss rows: {stored['losses']} committed, "
                       f"{built.section.losses} stored", **where)  # fmt: skip
        else:
            self._fail("changed", entry.position, ", ".join(columns), **where)
        return "broken"

    def _outside(self) -> None:
        """Rows no entry covers: records or losses past the seqs the chain
        accounts for, a high-water mark that is not the chain's."""
        for instance in self.instances.values():
            last = self.next_seq[instance.id] - 1
            base = schema.record_id(instance.id, 0)
            records = self.connection.execute(
                select(func.count(), func.min(_records.c.id), func.max(_records.c.id)).where(
                    _records.c.id > base + last, _records.c.id <= base + schema.SEQ_MASK
                )
            ).one()
            losses = self.connection.execute(
                select(func.count()).where(
                    _losses.c.instance_id == instance.id, _losses.c.first_seq > last
                )
            ).scalar_one()
            where = {"instance": instance.uuid}
            if records[0] or losses:
                seqs = (records[1] - base, records[2] - base) if records[0] else None
                self._fail("inserted", None, f"{records[0]} records and {losses} loss rows "
                           f"after seq {last}, the chain's last", seqs=seqs, **where)  # fmt: skip
                return
            if instance.high_water != last:
                self._fail("changed", None, f"the instance's high-water mark is "
                           f"{instance.high_water}, the chain's {last}", **where)  # fmt: skip
                return


def _seqs(what: str, seqs: list[int]) -> str:
    shown = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in encoding.runs(seqs)[:5])
    more = "" if len(encoding.runs(seqs)) <= 5 else ", ..."
    return f"{len(seqs)} {what}: seqs {shown}{more}"


def stopped_cleanly(report: ChainReport) -> bool:
    return report.sealed is not None and bool(report.sealed.flags & STOPPED)
