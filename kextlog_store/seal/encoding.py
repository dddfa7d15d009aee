"""The canonical encoding of a committed batch, the hash chain over the
batches, and the sealing keys: pure functions of values, no database.

docs/sealing.md describes every byte.  In short: each column of a batch's
records (per instance) is packed on its own (integers as little-endian
int64, text as uint32 byte lengths then the UTF-8 bytes, nullable values
behind one presence byte each) and hashed with SHA-256; a section digest
binds an instance's column digests to its uuid and the seq range the batch
accounted for; a batch digest binds the sections to the batch's chain
position; each chain head hashes the previous head with the batch digest.
A seal is HMAC-SHA256 of a head under the epoch's key, and the key evolves
one way: key[n+1] = SHA-256(label, key[n]).

The encoding packs columns, not rows: struct and bytes.join run in C over a
whole column, several times faster in Python than a record at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

VERSION = 1
DIGEST_SIZE = 32
KEY_SIZE = 32
ZERO_HEAD = bytes(DIGEST_SIZE)  # what the first entry's head follows

_SECTION = b"kextlog-seal-1 section\0"
_BATCH = b"kextlog-seal-1 batch\0"
_CHAIN = b"kextlog-seal-1 chain\0"
_SEAL = b"kextlog-seal-1 seal\0"
_EVOLVE = b"kextlog-seal-1 evolve\0"
_KEY_ID = b"kextlog-seal-1 key id\0"

# A record's columns in the order they are packed (records.ROW_FIELDS, then
# records.KMSG_FIELDS): what ingest hands the writer and what verify reads.
RECORD_COLUMNS = (
    "seq", "time_ns", "mono_ns", "level", "flags", "pid", "tid", "process", "message",
    "syslog_priority", "facility", "fields",
)  # fmt: skip
KEXT_WIDTH = 9  # a kext's rows stop before the kernel log's three nullable columns
LOSS_COLUMNS = (
    "first_seq", "last_seq", "count", "first_time_ns", "last_time_ns", "reason", "recorded_ns",
)  # fmt: skip
# Localisation only (docs/sealing.md): the first bytes of each column digest.
TAG_SIZE = 4

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_SEAL_FIELDS = struct.Struct("<QQqB")


class EncodingError(ValueError):
    """A stored value that ingest could never have written (a float where
    an integer belongs, a blob for text): the record was changed."""


def _ints(values: Sequence[object]) -> bytes:
    try:
        return struct.pack(f"<{len(values)}q", *values)
    except struct.error as error:
        raise EncodingError(f"not a 64-bit integer ({error})") from None


def _texts(values: Sequence[object]) -> bytes:
    try:
        joined = "".join(values)  # type: ignore[arg-type]
    except TypeError:
        raise EncodingError("not text") from None
    if joined.isascii():  # a flag of the string: no second pass
        lengths: list[int] = list(map(len, values))  # type: ignore[arg-type]
        data = joined.encode("ascii")
    else:
        encoded = [value.encode("utf-8") for value in values]  # type: ignore[union-attr]
        lengths = list(map(len, encoded))
        data = b"".join(encoded)
    return struct.pack(f"<{len(lengths)}I", *lengths) + data


def _presence(values: Sequence[object]) -> tuple[bytes, list[object]]:
    present = [value for value in values if value is not None]
    if len(present) == len(values):
        return b"\x01" * len(values), present
    return bytes(value is not None for value in values), present


def _nullable_ints(values: Sequence[object]) -> bytes:
    flags, present = _presence(values)
    return flags + _ints(present)


def _nullable_texts(values: Sequence[object]) -> bytes:
    flags, present = _presence(values)
    return flags + _texts(present)


def record_columns(columns: Sequence[Sequence[object]], count: int) -> list[bytes]:
    """The packed columns of count records, given as columns (zip(*rows)):
    9 of them for a kext's records (the last three are then all NULL) or
    all 12.  Text is packed as stored: a NUL in it is the caller's to
    replace first where the back end does (PostgreSQL)."""
    packed = [_ints(column) for column in columns[:7]]
    packed += [_texts(columns[7]), _texts(columns[8])]
    if len(columns) == KEXT_WIDTH:
        nothing = bytes(count)
        return [*packed, nothing, nothing, nothing]
    return [
        *packed,
        _nullable_ints(columns[9]),
        _nullable_ints(columns[10]),
        _nullable_texts(columns[11]),
    ]


def loss_columns(losses: Sequence[Sequence[object]]) -> bytes:
    """Loss rows (LOSS_COLUMNS order, by first_seq), packed as one string."""
    columns = list(zip(*losses, strict=True)) if losses else [()] * len(LOSS_COLUMNS)
    return b"".join(
        (
            _U64.pack(len(losses)),
            _ints(columns[0]),
            _ints(columns[1]),
            _ints(columns[2]),
            _nullable_ints(columns[3]),
            _nullable_ints(columns[4]),
            _texts(columns[5]),
            _ints(columns[6]),
        )
    )


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _U32.pack(len(data)) + data


@dataclass(frozen=True)
class Section:
    """One instance's part of a batch: the seqs lo..hi it accounted for
    (stored, lost or filtered), and the digests of what it stored."""

    uuid: str
    lo: int
    hi: int
    records: int
    losses: int
    digests: tuple[bytes, ...]  # the record columns', then the losses'

    def digest(self) -> bytes:
        return sha256(
            b"".join(
                (
                    _SECTION,
                    _text(self.uuid),
                    _I64.pack(self.lo),
                    _I64.pack(self.hi),
                    _U64.pack(self.records),
                    _U64.pack(self.losses),
                    *self.digests,
                )
            )
        )

    def tags(self) -> str:
        return "".join(digest[:TAG_SIZE].hex() for digest in self.digests)


def section(
    uuid: str,
    lo: int,
    hi: int,
    columns: Sequence[Sequence[object]],
    count: int,
    losses: Sequence[Sequence[object]],
) -> Section:
    digests = [sha256(packed) for packed in record_columns(columns, count)]
    digests.append(sha256(loss_columns(losses)))
    return Section(uuid, lo, hi, count, len(losses), tuple(digests))


def batch_digest(
    position: int, committed_ns: int, kind: int, note: str, sections: Sequence[bytes]
) -> bytes:
    """A chain entry's digest: its position, time, kind and note (a
    checkpoint's), and its sections' digests in the order stored."""
    return sha256(
        b"".join(
            (
                _BATCH,
                _U64.pack(position),
                _I64.pack(committed_ns),
                bytes((kind,)),
                _text(note),
                _U32.pack(len(sections)),
                *sections,
            )
        )
    )


def next_head(previous: bytes, digest: bytes) -> bytes:
    return sha256(_CHAIN + previous + digest)


def seal_mac(
    key: bytes | bytearray, epoch: int, position: int, sealed_ns: int, flags: int, head: bytes
) -> bytes:
    """The seal of the chain head at position, under epoch's key."""
    message = _SEAL + _SEAL_FIELDS.pack(epoch, position, sealed_ns, flags) + head
    return hmac.new(key, message, "sha256").digest()


def evolve(key: bytearray) -> None:
    """key[n] becomes key[n+1] = SHA-256(label, key[n]), in place: the old
    bytes are overwritten, and no immutable copy of them is made here."""
    digest = hashlib.sha256(_EVOLVE)
    digest.update(key)
    key[:] = digest.digest()


def key_at(key: bytes | bytearray, steps: int) -> bytearray:
    """The key steps epochs on (a copy: key itself is left as it is)."""
    evolved = bytearray(key)
    for _ in range(steps):
        evolve(evolved)
    return evolved


def key_id(first_key: bytes | bytearray) -> bytes:
    """What names a chain's verification key without revealing it."""
    digest = hashlib.sha256(_KEY_ID)
    digest.update(first_key)
    return digest.digest()


def runs(seqs: Sequence[int]) -> list[list[int]]:
    """Ascending seqs as [first, last] runs: a batch's are usually one."""
    if not seqs:
        return []
    if seqs[-1] - seqs[0] + 1 == len(seqs):  # ascending and dense: ingest's usual batch
        return [[seqs[0], seqs[-1]]]
    found: list[list[int]] = []
    for seq in seqs:
        if found and found[-1][1] + 1 == seq:
            found[-1][1] = seq
        else:
            found.append([seq, seq])
    return found
