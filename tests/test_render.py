"""Output formats: exact text for records and for SQL results."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kextlog_store.errors import DatabaseError
from kextlog_store.levels import Level
from kextlog_store.records import (
    STORED_BYTES,
    Cursor,
    Entry,
    Found,
    Loss,
    Record,
    Records,
    escaped,
    record_id,
)
from kextlog_store.render.entries import (
    RecordFormat,
    loss_short,
    record_cat,
    record_json,
    record_short,
    record_short_iso,
    write_cursor,
    write_records,
)
from kextlog_store.render.figures import prune_lines
from kextlog_store.render.formats import SqlFormat
from kextlog_store.render.rows import table_lines, write_rows
from kextlog_store.render.text import escape, iso_time

UTC = timezone.utc
NS = 1_000_000_000
# 2026-11-27T10:22:36.123456789Z
T = 1_795_774_956_123_456_789
INSTANCE = "0123456789abcdef0123456789abcdef"


def record(**changes: object) -> Record:
    fields: dict[str, object] = {
        "time_ns": T,
        "level": Level.ERROR,
        "pid": 312,
        "tid": 4411,
        "process": "mds_stores",
        "message": "message",
        "seq": 7,
        "instance": INSTANCE,
        "source": "unix:/run/sim.sock",
        "flags": 0,
    }
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def test_short() -> None:
    assert (
        record_short(record(), UTC)
        == "Nov 27 10:22:36.123456 ERROR   mds_stores[312:4411]: message"
    )


@pytest.mark.parametrize(
    ("level", "text"),
    [
        (Level.TRACE, "TRACE   "),
        (Level.DEBUG, "DEBUG   "),
        (Level.INFO, "INFO    "),
        (Level.WARNING, "WARNING "),
        (Level.ERROR, "ERROR   "),
    ],
)
def test_short_pads_the_level_to_seven(level: Level, text: str) -> None:
    assert record_short(record(level=level), UTC) == (
        f"Nov 27 10:22:36.123456 {text}mds_stores[312:4411]: message"
    )


@pytest.mark.parametrize("month", range(1, 13))
def test_short_month_names_do_not_depend_on_the_locale(month: int) -> None:
    moment = datetime(2026, month, 3, 4, 5, 6, 7, tzinfo=UTC)
    time_ns = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    name = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[
        month - 1
    ]
    assert record_short(record(time_ns=time_ns), UTC).startswith(f"{name} 03 04:05:06.000007 ")


def test_short_in_another_zone() -> None:
    zone = timezone(timedelta(hours=-5))
    assert record_short(record(), zone).startswith("Nov 27 05:22:36.123456 ERROR ")


def test_short_in_the_system_zone(system_zone: str) -> None:
    assert record_short(record()).startswith("Nov 27 15:52:36.123456 ERROR ")


def test_short_message_lines() -> None:
    head = "Nov 27 10:22:36.123456 ERROR   mds_stores[312:4411]: "
    assert record_short(record(message="done\n"), UTC) == head + "done"
    assert record_short(record(message="one\ntwo\n"), UTC) == (
        head + "one\n" + " " * len(head) + "two"
    )
    assert record_short(record(message="a\tb"), UTC) == head + "a\tb"
    assert record_short(record(message="bell\x07 esc\x1b[31m"), UTC) == (
        head + "bell\\x07 esc\\x1b[31m"
    )
    assert record_short(record(process="evil\x1b]0;"), UTC).endswith(
        "evil\\x1b]0;[312:4411]: message"
    )


def test_json_keys_values_and_order() -> None:
    line = record_json(record(message='say "hi"\n café ✓', host="mac-1"), utc=True)
    assert line == (
        '{"time": "2026-11-27T10:22:36.123456+00:00", "level": "error", "pid": 312,'
        ' "tid": 4411, "process": "mds_stores", "message": "say \\"hi\\"\\n café ✓",'
        ' "seq": 7, "instance": "0123456789abcdef0123456789abcdef", "host": "mac-1",'
        f' "cursor": "i=0123456789abcdef0123456789abcdef,s=7,t={T}"}}'
    )
    assert list(json.loads(line)) == [
        "time",
        "level",
        "pid",
        "tid",
        "process",
        "message",
        "seq",
        "instance",
        "host",
        "cursor",
    ]
    # The cursor is the one --show-cursor prints and --cursor takes.
    assert Cursor.parse(json.loads(line)["cursor"]) == Cursor(INSTANCE, 7, T)


def test_json_local_time_by_default(system_zone: str) -> None:
    assert json.loads(record_json(record()))["time"] == "2026-11-27T15:52:36.123456+05:30"
    assert json.loads(record_json(record(), utc=True))["time"] == (
        "2026-11-27T10:22:36.123456+00:00"
    )


@pytest.mark.parametrize(
    ("time_ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000+00:00"),
        (999, "1970-01-01T00:00:00.000000+00:00"),
        (1_000, "1970-01-01T00:00:00.000001+00:00"),
        (-1, "1969-12-31T23:59:59.999999+00:00"),
        # a float would round these up to the next second
        (1_795_774_956_999_999_999, "2026-11-27T10:22:36.999999+00:00"),
        (4_102_444_799_999_999_999, "2099-12-31T23:59:59.999999+00:00"),
    ],
)
def test_times_are_truncated_to_microseconds_exactly(time_ns: int, text: str) -> None:
    assert iso_time(time_ns, UTC) == text


@given(st.integers(min_value=-(2**62), max_value=2**63 - 1))
def test_iso_time_matches_integer_arithmetic(time_ns: int) -> None:
    seconds, nanos = divmod(time_ns, NS)
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert iso_time(time_ns, UTC) == (
        expected.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}+00:00"
    )


def generated(count: int) -> Iterator[Record]:
    for seq in range(1, count + 1):
        yield record(seq=seq, time_ns=T + seq * NS, level=Level(1 + seq % 5))


def test_write_records_short_and_json() -> None:
    out = io.StringIO()
    write_records(generated(3), RecordFormat.SHORT, out, utc=True)
    assert out.getvalue().splitlines() == [
        "Nov 27 10:22:37.123456 DEBUG   mds_stores[312:4411]: message",
        "Nov 27 10:22:38.123456 INFO    mds_stores[312:4411]: message",
        "Nov 27 10:22:39.123456 WARNING mds_stores[312:4411]: message",
    ]
    out = io.StringIO()
    write_records(generated(3), RecordFormat.JSON, out, utc=True)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert lines == [record_json(item, utc=True) for item in generated(3)]


def test_write_records_of_nothing() -> None:
    out = io.StringIO()
    write_records(iter(()), RecordFormat.SHORT, out)
    assert out.getvalue() == ""


def loss(**changes: object) -> Loss:
    fields: dict[str, object] = {
        "time_ns": T + 2 * NS,
        "instance": "0690a5df1c2e4b7a9d3f0a1b2c3d4e5f",
        "first_seq": 5001,
        "last_seq": 5120,
        "count": 120,
        "reason": "ring-full",
        "first_time_ns": T + 2 * NS,
        "last_time_ns": T + 3 * NS,
        "recorded_ns": T + 4 * NS,
        "source": "unix:/run/sim.sock",
    }
    fields.update(changes)
    return Loss(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, "-- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --"),
        (
            {"reason": "released", "first_seq": 1, "last_seq": 50, "count": 50},
            "-- 50 records lost (seqs 1..50 of instance 0690a5df, no longer held) --",
        ),
        (
            {"reason": "gap", "first_seq": 7, "last_seq": 8, "count": 2},
            "-- 2 records lost (seqs 7..8 of instance 0690a5df, never sent) --",
        ),
        (
            {"first_seq": 181, "last_seq": 181, "count": 1},
            "-- 1 record lost (seq 181 of instance 0690a5df, ring full) --",
        ),
        (
            {"reason": "reason-7"},
            "-- 120 records lost (seqs 5001..5120 of instance 0690a5df, reason-7) --",
        ),
        (
            {"reason": "odd\x1b[31m\nreason"},
            "-- 120 records lost (seqs 5001..5120 of instance 0690a5df, odd\\x1b[31m\\nreason) --",
        ),
    ],
)
def test_loss_marker(changes: dict[str, object], line: str) -> None:
    assert loss_short(loss(**changes)) == line


def test_loss_markers_do_not_depend_on_the_zone(system_zone: str) -> None:
    assert loss_short(loss()) == (
        "-- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --"
    )


def mixed() -> Iterator[Entry]:
    yield record(seq=1, time_ns=T + NS, level=Level.INFO)
    yield loss(first_seq=2, last_seq=4, count=3, reason="ring-full")
    yield record(seq=5, time_ns=T + 5 * NS, level=Level.WARNING)
    yield loss(first_seq=6, last_seq=6, count=1, reason="gap")


def test_write_records_shows_markers_in_place_in_short() -> None:
    out = io.StringIO()
    write_records(mixed(), RecordFormat.SHORT, out, utc=True)
    assert out.getvalue() == (
        "Nov 27 10:22:37.123456 INFO    mds_stores[312:4411]: message\n"
        "-- 3 records lost (seqs 2..4 of instance 0690a5df, ring full) --\n"
        "Nov 27 10:22:41.123456 WARNING mds_stores[312:4411]: message\n"
        "-- 1 record lost (seq 6 of instance 0690a5df, never sent) --\n"
    )


def test_write_records_json_has_no_markers() -> None:
    out = io.StringIO()
    write_records(mixed(), RecordFormat.JSON, out, utc=True)
    assert out.getvalue().splitlines() == [
        record_json(entry, utc=True) for entry in mixed() if isinstance(entry, Record)
    ]
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 5]
    out = io.StringIO()
    write_records(iter([loss()]), RecordFormat.JSON, out)
    assert out.getvalue() == ""


def test_table() -> None:
    columns = ["level", "count", "note"]
    rows = [("error", 12, None), ("warning", 1234, "two\nlines"), ("x", 5, b"\x01\xff")]
    assert table_lines(columns, rows) == [
        "level    count  note",
        "-------  -----  ----------",
        "error       12",
        "warning   1234  two\\nlines",
        "x            5  x'01ff'",
    ]
    assert table_lines(columns, rows, header=False) == [
        "error      12",
        "warning  1234  two\\nlines",
        "x           5  x'01ff'",
    ]


def test_table_of_no_rows_has_the_header() -> None:
    assert table_lines(["a", "bb"], []) == ["a  bb", "-  --"]


def test_table_mixed_column_is_left_aligned() -> None:
    assert table_lines(["v"], [(1,), ("abc",), (None,), (2.5,)]) == [
        "v",
        "---",
        "1",
        "abc",
        "",
        "2.5",
    ]


def test_write_rows() -> None:
    out = io.StringIO()
    write_rows(["level", "count(*)"], [("error", 3), ("info", 10)], SqlFormat.TABLE, out)
    assert out.getvalue() == "level  count(*)\n-----  --------\nerror         3\ninfo         10\n"
    out = io.StringIO()
    rows = [(1, None, b"\x00", "é", 1.5)]
    write_rows(["a", "a", "blob", "text", "a_2"], rows, SqlFormat.JSON, out)
    assert out.getvalue() == ('{"a": 1, "a_3": null, "blob": "x\'00\'", "text": "é", "a_2": 1.5}\n')


# --- every record format ------------------------------------------------------------


def written(output: RecordFormat, entries: Iterator[Entry], *, color: bool = False) -> str:
    out = io.StringIO()
    write_records(entries, output, out, utc=True, color=color)
    return out.getvalue()


def test_short_iso() -> None:
    assert written(RecordFormat.SHORT_ISO, mixed()) == (
        "2026-11-27T10:22:37.123456+00:00 INFO    mds_stores[312:4411]: message\n"
        "-- 3 records lost (seqs 2..4 of instance 0690a5df, ring full) --\n"
        "2026-11-27T10:22:41.123456+00:00 WARNING mds_stores[312:4411]: message\n"
        "-- 1 record lost (seq 6 of instance 0690a5df, never sent) --\n"
    )
    assert record_short_iso(record(), timezone(timedelta(hours=1))).startswith(
        "2026-11-27T11:22:36.123456+01:00 ERROR "
    )


def test_short_iso_in_the_system_zone(system_zone: str) -> None:
    assert record_short_iso(record()).startswith("2026-11-27T15:52:36.123456+05:30 ERROR ")


def test_cat() -> None:
    assert written(RecordFormat.CAT, mixed()) == (
        "message\n"
        "-- 3 records lost (seqs 2..4 of instance 0690a5df, ring full) --\n"
        "message\n"
        "-- 1 record lost (seq 6 of instance 0690a5df, never sent) --\n"
    )
    assert record_cat(record(message="one\ntwo\n")) == "one\ntwo"
    assert record_cat(record(message="esc\x1b[31m\ttab")) == "esc\\x1b[31m\ttab"


def test_json_pretty() -> None:
    text = written(RecordFormat.JSON_PRETTY, mixed())
    assert text.startswith('{\n  "time": "2026-11-27T10:22:37.123456+00:00",\n  "level": "info",')
    objects = text.split("}\n")
    assert objects[-1] == "" and len(objects) == 3  # two records, no markers
    assert [json.loads(item + "}")["seq"] for item in objects[:-1]] == [1, 5]


HEADER = "time,level,pid,tid,process,message,seq,instance,host,cursor,priority,facility,fields\n"


def test_csv() -> None:
    entries = [record(message='say "hi", then\nleave', seq=9), loss()]
    assert written(RecordFormat.CSV, iter(entries)) == (
        HEADER + '2026-11-27T10:22:36.123456+00:00,error,312,4411,mds_stores,"say ""hi"", then\n'
        f'leave",9,{INSTANCE},,"i={INSTANCE},s=9,t={T}",,,\n'
    )
    assert written(RecordFormat.CSV, iter(())) == HEADER


def test_csv_has_the_fields_json_has() -> None:
    """Every key of a record's JSON object is a column of CSV with the same
    value (JSON's objects as their JSON text); keys a record has not are empty."""
    fields = json.dumps({"SUBSYSTEM": "usb", "DEVICE": "+usb:1-1"})
    kernel = record(priority=3, facility=0, fields=fields, host="mac-1", process="kernel", seq=2)
    entries = [record(host="mac-1"), kernel]
    rows = list(csv.DictReader(io.StringIO(written(RecordFormat.CSV, iter(entries)))))
    objects = [json.loads(line) for line in written(RecordFormat.JSON, iter(entries)).splitlines()]
    assert list(rows[0]) == list(objects[1])  # the kernel's record has every key
    for row, fields_of in zip(rows, objects, strict=True):
        as_text = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in fields_of.items()
        }
        assert row == {key: "" for key in rows[0]} | as_text


def test_table_of_records_with_a_marker() -> None:
    marker_row = "2026-11-27T10:22:38.123456+00:00" + " " * 34
    assert written(RecordFormat.TABLE, mixed()).splitlines() == [
        "time                              level    pid   tid  process     message",
        "--------------------------------  -------  ---  ----  ----------  " + "-" * 64,
        "2026-11-27T10:22:37.123456+00:00  info     312  4411  mds_stores  message",
        marker_row + "-- 3 records lost (seqs 2..4 of instance 0690a5df, ring full) --",
        "2026-11-27T10:22:41.123456+00:00  warning  312  4411  mds_stores  message",
        marker_row + "-- 1 record lost (seq 6 of instance 0690a5df, never sent) --",
    ]


RED, YELLOW, DIM, BOLD, RESET = "\x1b[1;31m", "\x1b[1;33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


def test_colour_by_level_and_for_markers() -> None:
    entries = [record(level=level, seq=int(level)) for level in Level] + [loss()]
    lines = written(RecordFormat.SHORT, iter(entries), color=True).splitlines()
    plain = [record_short(entry, UTC) for entry in entries[:-1]] + [loss_short(loss())]
    assert lines == [
        f"{DIM}{plain[0]}{RESET}",
        f"{DIM}{plain[1]}{RESET}",
        plain[2],
        f"{YELLOW}{plain[3]}{RESET}",
        f"{RED}{plain[4]}{RESET}",
        f"{BOLD}{plain[5]}{RESET}",
    ]


def test_colour_each_line_of_a_long_message() -> None:
    text = written(RecordFormat.CAT, iter([record(message="one\ntwo")]), color=True)
    assert text == f"{RED}one{RESET}\n{RED}two{RESET}\n"


def test_colour_in_a_table_after_the_padding() -> None:
    lines = written(RecordFormat.TABLE, iter([record(), record(level=Level.INFO)]), color=True)
    head, rule, error, info = lines.splitlines()
    assert "\x1b" not in head + rule + info
    assert error.startswith(RED) and error.endswith(RESET) and len(error) - 11 == len(info)


def test_no_colour_in_machine_formats() -> None:
    for output in (RecordFormat.JSON, RecordFormat.JSON_PRETTY, RecordFormat.CSV):
        assert "\x1b" not in written(output, mixed(), color=True)


def test_write_cursor() -> None:
    out = io.StringIO()
    write_cursor(Cursor.of(record()), out)
    assert out.getvalue() == f"-- cursor: i={INSTANCE},s=7,t={T}\n"


def test_write_rows_in_every_format() -> None:
    columns, rows = ["n", "text"], [(1, "a,b"), (2, None)]
    expected = {
        SqlFormat.TABLE: "n  text\n-  ----\n1  a,b\n2\n",
        SqlFormat.JSON: '{"n": 1, "text": "a,b"}\n{"n": 2, "text": null}\n',
        SqlFormat.JSON_PRETTY: '{\n  "n": 1,\n  "text": "a,b"\n}\n'
        '{\n  "n": 2,\n  "text": null\n}\n',
        SqlFormat.CSV: 'n,text\n1,"a,b"\n2,\n',
    }
    for output, text in expected.items():
        out = io.StringIO()
        write_rows(columns, rows, output, out)
        assert out.getvalue() == text, output


def test_prune_lines() -> None:
    from kextlog_store.store.retention import PruneResult

    result = PruneResult({1: 1200, 2: 34}, 1, 3 << 20, 1 << 20, 4 << 20, 1 << 20, True)
    assert prune_lines(result) == [
        "removed 1,234 records (trace 1,200, debug 34) and 1 loss row",
        "in use 3.0 MiB -> 1.0 MiB, file 4.0 MiB -> 1.0 MiB",
    ]
    assert prune_lines(PruneResult(stopped=True)) == [
        "removed 0 records and 0 loss rows",
        "in use 0 B -> 0 B, file 0 B -> 0 B",
        "stopped before the end",
    ]


# --- terminal safety: hostile text in every format ------------------------------

# What must never reach a terminal raw: C0 controls but tab and newline, DEL,
# C1 controls (U+009B is the 8-bit CSI), and the bidirectional overrides and
# isolates that reorder what is shown.
UNSAFE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
HOSTILE = [
    "esc \x1b[31mred\x1b[0m",
    "csi \x9b31m 8-bit \x9bm, nel \x85 osc \x9d0;title\x9c",
    "cr\rover, bell\x07, del\x7f, nul-escaped \ufffd",
    'quote " comma , newline\nline two\r\nthree',
    "bidi \u202eevil\u202c \u2066iso\u2069",
]
# Text of any kind, leaning on the characters that matter here.
hostile_text = st.text(
    st.one_of(
        st.sampled_from("\x1b\x9b\x85\r\n\t\x7f\x00\u202e\u2066\",;' "),
        st.characters(max_codepoint=0x250, exclude_categories=("Cs",)),
    ),
    max_size=40,
)


def terminal_text(output: RecordFormat, entries: list[Entry]) -> str:
    out = io.StringIO()
    write_records(iter(entries), output, out, utc=True, terminal=True)
    return out.getvalue()


@given(message=hostile_text, process=hostile_text)
def test_no_text_format_writes_a_control_character(message: str, process: str) -> None:
    entries: list[Entry] = [
        record(message=message, process=process),
        loss(reason=message, instance=process + INSTANCE),
    ]
    for output in RecordFormat:
        text = terminal_text(output, entries)
        assert not re.search(UNSAFE, text), (output, text)


def batch(records: list[Record]) -> Records:
    """Records as the read path fetches them: rows of its columns
    (Record.of_columns' order), each instance a row of its own."""
    instances: dict[int, tuple[str, str, str]] = {}
    rows = []
    for each in records:
        instance_row = len(instances) + 1
        instances[instance_row] = (each.instance, each.source, each.host)
        rows.append((
            each.time_ns, int(each.level), each.pid, each.tid, each.process, each.message,
            record_id(instance_row, each.seq), each.flags, each.priority, each.facility,
            each.fields,
        ))  # fmt: skip
    return Records(rows, instances)


@st.composite
def stored_records(draw: st.DrawFn) -> Record:
    """Any record a store can hold: hostile text, any time and level, a
    message of bytes that are not text, the kernel's own log's fields."""
    fields: dict[str, object] = {
        "time_ns": draw(st.integers(-(2**63), 2**63 - 1) | st.integers(T, T + 3 * NS)),
        "level": draw(st.sampled_from(Level)),
        "pid": draw(st.integers(0, 2**31 - 1)),
        "tid": draw(st.integers(0, 2**63 - 1)),
        "process": draw(hostile_text | st.just("kernel_task")),
        "host": draw(hostile_text | st.just("mac-mini")),
    }
    raw = draw(st.none() | st.binary(max_size=12))
    if raw is None:
        fields["message"] = draw(hostile_text | st.just("plain message"))
    else:
        fields["message"], fields["flags"] = escaped(raw), STORED_BYTES
    if draw(st.booleans()):
        fields["priority"], fields["facility"] = draw(st.integers(0, 7)), draw(st.integers(0, 23))
        fields["fields"] = json.dumps({"SUBSYSTEM": draw(hostile_text)})
    return record(**fields)


@settings(max_examples=300)
@given(
    st.lists(stored_records(), max_size=8),
    st.sampled_from(RecordFormat),
    st.booleans(),
    st.booleans(),
)
def test_a_batch_is_written_as_its_records_one_by_one(
    records: list[Record], output: RecordFormat, utc: bool, color: bool
) -> None:
    """The read path hands records over in batches (Records), which the
    line formats and json write in one go: the text is the records' own,
    whatever they hold, between markers too."""
    one_by_one: list[Entry] = [*records[:3], loss(), *records[3:]]
    batches: list[Found] = [
        batch(records[:3]),
        loss(),
        batch(records[3:]),
    ]
    expected, got = io.StringIO(), io.StringIO()
    write_records(iter(one_by_one), output, expected, utc=utc, color=color)
    write_records(iter(batches), output, got, utc=utc, color=color)
    assert got.getvalue() == expected.getvalue()


@pytest.mark.parametrize("output", list(RecordFormat))
def test_a_batch_with_a_level_no_level_has_is_a_database_error(output: RecordFormat) -> None:
    rows = batch([record()])
    rows.rows[0] = (rows.rows[0][0], 9, *rows.rows[0][2:])  # type: ignore[index]
    with pytest.raises(DatabaseError, match="unknown level 9"):
        write_records(iter([rows]), output, io.StringIO())


@pytest.mark.parametrize("message", HOSTILE)
def test_every_format_escapes_c1_and_bidi(message: str) -> None:
    for output in RecordFormat:
        text = terminal_text(output, [record(message=message, process="p\x9b1m")])
        assert not re.search(UNSAFE, text), (output, text)
    assert record_cat(record(message="csi\x9b2J")) == "csi\\u009b2J"
    assert record_cat(record(message="rlo\u202e")) == "rlo\\u202e"


def read_escapes(shown: str, *, newlines: bool = False) -> str:
    """What a reader makes of escaped text: \\\\ a backslash, \\xHH a byte
    (below 0x80 its character; above, a byte that is not text, as
    surrogateescape keeps it), \\uHHHH a character, with newlines \\n a
    newline; any other backslash is itself."""
    out, at = [], 0
    while at < len(shown):
        if shown.startswith("\\\\", at):
            out.append("\\")
            at += 2
        elif newlines and shown.startswith("\\n", at):
            out.append("\n")
            at += 2
        elif re.match(r"\\x[0-9a-f]{2}", shown[at:]):
            code = int(shown[at + 2 : at + 4], 16)
            out.append(chr(code if code < 0x80 else 0xDC00 + code))
            at += 4
        elif re.match(r"\\u[0-9a-f]{4}", shown[at:]):
            out.append(chr(int(shown[at + 2 : at + 6], 16)))
            at += 6
        else:
            out.append(shown[at])
            at += 1
    return "".join(out)


@settings(max_examples=500)
@given(
    st.text(
        st.one_of(
            st.sampled_from("\\xu0123456789abcdef\x1b\x9b\x00\n\u202e\udcff\udc9b\udc80"),
            st.characters(max_codepoint=0x250, exclude_categories=("Cs",)),
        ),
        max_size=40,
    )
)
def test_every_escape_shown_means_one_character(text: str) -> None:
    """A literal backslash that would read as an escape is doubled, a C1
    control is not taken for a byte that is not text: what is shown reads
    back as the text (with a byte that is not text as surrogateescape has it)."""
    assert read_escapes(escape(text)) == text
    assert read_escapes(escape(text, newlines=True), newlines=True) == text
    assert record_cat(record(message="a \\x41 \\\x1b")) == "a \\\\x41 \\\\\\x1b"


@given(hostile_text)
def test_json_escapes_yet_keeps_every_message(message: str) -> None:
    for output in (RecordFormat.JSON, RecordFormat.JSON_PRETTY):
        for terminal in (False, True):
            out = io.StringIO()
            write_records(iter([record(message=message)]), output, out, terminal=terminal)
            assert not re.search(UNSAFE, out.getvalue())
            assert json.loads(out.getvalue())["message"] == message
    assert not re.search(UNSAFE, record_json(record(message=message)))


@given(st.lists(hostile_text, min_size=1, max_size=4))
def test_csv_round_trips_every_message(messages: list[str]) -> None:
    out = io.StringIO()
    entries = [
        record(message=message, process=message, seq=n) for n, message in enumerate(messages)
    ]
    write_records(iter(entries), RecordFormat.CSV, out)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert [(row[4], row[5]) for row in rows[1:]] == [(m, m) for m in messages]
    columns = ["a", "b"]
    out = io.StringIO()
    write_rows(columns, [(m, m.encode()) for m in messages], SqlFormat.CSV, out)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert [row[0] for row in rows[1:]] == messages


def test_csv_on_a_terminal_is_escaped() -> None:
    text = terminal_text(RecordFormat.CSV, [record(message=m) for m in HOSTILE])
    assert not re.search(UNSAFE, text)
    assert "esc \\x1b[31mred" in text
    out = io.StringIO()
    write_rows(["c\x9b"], [("\x1b]0;x\x07",)], SqlFormat.CSV, out, terminal=True)
    assert out.getvalue() == "c\\u009b\n\\x1b]0;x\\x07\n"


@given(hostile_text, hostile_text)
def test_sql_results_are_escaped_in_every_format_on_a_terminal(name: str, value: str) -> None:
    for output in SqlFormat:
        out = io.StringIO()
        write_rows([name, "n"], [(value, 1), (None, 2)], output, out, terminal=True)
        assert not re.search(UNSAFE, out.getvalue()), output
