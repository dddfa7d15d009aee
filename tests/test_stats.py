"""`kextlog stats`: every figure checked against the data the fixtures stored."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, update

from kextlog_store.levels import Level
from kextlog_store.records import Record
from kextlog_store.render.figures import bar, format_count, format_size, stats_lines
from kextlog_store.stats import BUCKET_SIZES, Stats, choose_bucket, collect
from kextlog_store.store import schema
from kextlog_store.store.engine import sqlite_path, write_engine
from kextlog_store.store.writer import Writer
from kextlog_store.wire import TIME_MAX
from tests.conftest import NS, Instance, Kextlog, PopulatedStore, insert_records

MINUTE, HOUR, DAY = 60 * NS, 3600 * NS, 86400 * NS
BOTH_BACKENDS = True


def level_counts(records: list[Record]) -> tuple[int, ...]:
    counts = Counter(record.level for record in records)
    return tuple(counts[level] for level in Level)


def check_buckets(stats: Stats, records: list[Record]) -> None:
    """Consecutive buckets of the stats' size that hold exactly the records."""
    size = stats.bucket_ns
    starts = [bucket.start_ns for bucket in stats.buckets]
    assert starts == [starts[0] + i * size for i in range(len(starts))]
    for bucket in stats.buckets:
        inside = [r for r in records if bucket.start_ns <= r.time_ns < bucket.start_ns + size]
        assert bucket.counts == level_counts(inside)
    assert sum(bucket.total for bucket in stats.buckets) == len(records)


def test_the_figures_of_the_whole_store(lossy: PopulatedStore) -> None:
    stats = collect(lossy.url)
    records = list(lossy.records)
    assert stats.records == len(records) == 279
    assert stats.levels == level_counts(records)
    assert (stats.first_ns, stats.last_ns) == (records[0].time_ns, records[-1].time_ns)
    by_process = Counter(record.process for record in records)
    pids = {name: len({r.pid for r in records if r.process == name}) for name in by_process}
    assert [(p.process, p.records, p.pids) for p in stats.processes] == sorted(
        ((name, count, pids[name]) for name, count in by_process.items()),
        key=lambda item: (-item[1], item[0]),
    )
    assert stats.process_names == 6
    # Three hours in at most 24 buckets: 10 minutes each, local time.
    assert stats.bucket_ns == 10 * MINUTE
    check_buckets(stats, records)
    reasons: dict[str, list[int]] = {}
    for loss in lossy.losses:
        reasons.setdefault(loss.reason, []).append(loss.count)
    assert [(x.reason, x.losses, x.records) for x in stats.losses] == sorted(
        (reason, len(counts), sum(counts)) for reason, counts in reasons.items()
    )


def test_instances_account_for_every_seq(lossy: PopulatedStore) -> None:
    first, second = collect(lossy.url).instances
    assert (first.instance, first.source) == (lossy.instance(1).uuid, "unix:/run/sim-a.sock")
    # Instance 1: seqs 1..181; 169 stored, 9 lost (1..3, 50..52, 150..151, 181),
    # 4..6 pruned.  Instance 2: seqs 1..125; 110 stored, 15 lost.
    assert (first.high_water, first.stored, first.lost, first.filtered, first.pruned) == (
        181,
        169,
        9,
        0,
        3,
    )
    assert (second.high_water, second.stored, second.lost, second.pruned) == (125, 110, 15, 0)
    for account, instance_id in ((first, 1), (second, 2)):
        mine = [r for r in lossy.records if r.instance == lossy.instance(instance_id).uuid]
        assert account.stored == len(mine)
        assert account.first_record_ns == min(mine, key=lambda r: r.seq).time_ns
        assert account.last_record_ns == max(mine, key=lambda r: r.seq).time_ns
        assert account.ahead == 0
        assert account.name == "com.example.kextlog.sim"


def test_records_beyond_the_high_water_mark_are_ahead(lossy: PopulatedStore) -> None:
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(
            update(schema.instances).where(schema.instances.c.id == 1).values(high_water=170)
        )
    engine.dispose()
    first = collect(lossy.url).instances[0]
    # Seqs 171..180 are stored past the mark (a gap ingest waits for, here
    # made up); 181 is a loss past it.
    assert (first.high_water, first.stored, first.ahead, first.lost) == (170, 159, 10, 9)
    assert first.pruned == 3  # as counted, whatever the mark
    assert first.discrepancy == -1  # the loss of 181 is counted, past the mark


def test_rows_gone_without_prune_are_a_discrepancy(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    """A record and a loss row deleted behind kextlog's back are not pruned.
    The loss row shows missing in stats, its JSON and the view
    instance_accounting; the record in the view, which counts records (stats
    counts an instance's records by its counters, which still hold it: `db
    check` compares them with the records)."""
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(
            delete(schema.records).where(schema.records.c.id == schema.record_id(1, 8))
        )
        connection.execute(
            delete(schema.losses).where(
                schema.losses.c.instance_id == 2, schema.losses.c.first_seq == 110
            )
        )
    engine.dispose()
    first, second = collect(lossy.url).instances
    assert (first.stored, first.lost, first.pruned, first.discrepancy) == (169, 9, 3, 0)
    assert (second.stored, second.lost, second.pruned, second.discrepancy) == (110, 13, 0, 2)
    sql = kextlog(
        "sql", "-o", "json", "SELECT instance, pruned, discrepancy FROM instance_accounting"
    )
    assert [json.loads(line) for line in sql.stdout.splitlines()] == [
        {"instance": lossy.instance(1).uuid, "pruned": 3, "discrepancy": 1},
        {"instance": lossy.instance(2).uuid, "pruned": 0, "discrepancy": 2},
    ]
    got = json.loads(kextlog("stats", "-o", "json").stdout)["instances"]
    assert [(i["pruned"], i["discrepancy"]) for i in got] == [(3, 0), (0, 2)]
    text = kextlog("stats").stdout.splitlines()
    assert [line for line in text if "neither stored" in line] == [
        f"  instance {lossy.instance(2).uuid[:8]}: 2 seqs up to its high-water mark are"
        " neither stored, lost, filtered nor pruned: rows went without prune (`kextlog db check`)"
    ]
    if lossy.path is not None:  # db check reads SQLite stores
        check = kextlog("db", "check")
        assert check.returncode == 1 and "FAIL  counters" in check.stdout


def test_the_whole_stores_processes_add_up_the_counters(lossy: PopulatedStore) -> None:
    """The table per process of the whole store adds up pid_counts (a record
    deleted behind kextlog's back is still in them); a window counts its
    records."""
    gone = lossy.record(1, 8)
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(
            delete(schema.records).where(schema.records.c.id == schema.record_id(1, 8))
        )
    engine.dispose()

    def by_process(stats: Stats) -> dict[str, int]:
        return {item.process: item.records for item in stats.processes}

    whole = collect(lossy.url, top=100)
    window = collect(lossy.url, since_ns=lossy.records[0].time_ns, top=100)
    expected = Counter(record.process for record in lossy.records)
    assert by_process(whole) == expected
    assert by_process(window) == expected - Counter([gone.process])
    assert whole.process_names == window.process_names == len(expected)


def test_a_window(lossy: PopulatedStore) -> None:
    since, until = lossy.now_ns - 60 * MINUTE, lossy.now_ns - 5 * MINUTE
    stats = collect(lossy.url, since_ns=since, until_ns=until, top=2, bucket_ns=5 * MINUTE)
    records = lossy.select(since_ns=since, until_ns=until)
    assert (stats.since_ns, stats.until_ns) == (since, until)
    assert stats.records == len(records) and stats.levels == level_counts(records)
    assert len(stats.processes) == 2
    check_buckets(stats, records)
    assert stats.buckets[0].start_ns <= since < stats.buckets[0].start_ns + 5 * MINUTE
    assert stats.buckets[-1].start_ns <= until < stats.buckets[-1].start_ns + 5 * MINUTE
    placed = [loss for loss in lossy.losses if since <= loss.time_ns <= until]
    assert sum(x.records for x in stats.losses) == sum(loss.count for loss in placed) == 4
    assert len(stats.instances) == 2  # the accounting is never windowed


def test_an_empty_store(store_url: str) -> None:
    stats = collect(store_url)
    assert (stats.records, stats.levels, stats.buckets, stats.losses) == (0, (0,) * 5, (), ())
    assert stats.first_ns is None and stats.instances == ()
    assert "Records   0" in stats_lines(stats)


@pytest.mark.sqlite_only
def test_the_database_size(lossy: PopulatedStore) -> None:
    database = collect(lossy.url).database
    assert database is not None
    with sqlite3.connect(f"file:{lossy.path}?mode=ro", uri=True) as connection:
        pragmas = [connection.execute(f"PRAGMA {name}").fetchone()[0] for name in
                   ("page_size", "page_count", "freelist_count")]  # fmt: skip
    connection.close()
    assert [database.page_size, database.page_count, database.free_pages] == pragmas
    assert database.file_bytes == os.path.getsize(lossy.path)
    assert database.path == str(lossy.path)


def test_buckets_start_on_local_hours(lossy: PopulatedStore, system_zone: str) -> None:
    stats = collect(lossy.url, bucket_ns=HOUR)
    kolkata = timezone(timedelta(hours=5, minutes=30))
    for bucket in stats.buckets:
        start = datetime.fromtimestamp(bucket.start_ns / NS, kolkata)
        assert (start.minute, start.second) == (0, 0)
    utc = collect(lossy.url, bucket_ns=HOUR, utc=True)
    assert all(bucket.start_ns % HOUR == 0 for bucket in utc.buckets)


@pytest.mark.parametrize(
    ("span", "size"),
    [(0, NS), (20 * NS, NS), (23 * NS, 2 * NS), (3 * HOUR, 10 * MINUTE), (5 * DAY, 6 * HOUR)],
)
def test_choose_bucket(span: int, size: int) -> None:
    assert choose_bucket(span) == size
    assert size in BUCKET_SIZES


def test_choose_bucket_beyond_the_list() -> None:
    span = 100 * 365 * DAY
    assert choose_bucket(span) % DAY == 0
    assert span // choose_bucket(span) + 2 <= 24


# --- the command -----------------------------------------------------------------


def test_stats_json(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("stats", "-o", "json", "--top", "3")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    records = list(lossy.records)
    assert got["records"] == len(records)
    assert got["levels"] == {
        level.label: count for level, count in zip(Level, level_counts(records), strict=True)
    }
    assert [item["process"] for item in got["processes"]] == [
        name for name, _ in sorted(Counter(r.process for r in records).items(),
                                   key=lambda item: (-item[1], item[0]))[:3]
    ]  # fmt: skip
    assert sum(bucket["total"] for bucket in got["rate"]) == len(records)
    assert got["bucket_seconds"] == 600
    assert [(i["stored"], i["lost"], i["filtered"], i["pruned"]) for i in got["instances"]] == [
        (169, 9, 0, 3),
        (110, 15, 0, 0),
    ]
    assert got["first"].endswith("+00:00")
    if lossy.path is not None:
        assert got["database"]["path"] == str(lossy.path)
    else:  # PostgreSQL: the database as a URL, without the driver (or a password)
        assert got["database"]["path"].startswith("postgresql://postgres@/test_")
        assert got["database"]["file_bytes"] > 0


def test_stats_text(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("stats", "--top", "2", "-S", "1h", "--bucket", "15m")
    assert result.returncode == 0, result.stderr
    text = result.stdout.splitlines()
    records = lossy.select(since_ns=lossy.now_ns - HOUR)
    counts = dict(zip(Level, level_counts(records), strict=True))
    width = len("high water")  # the widest heading of a numeric column: every table's
    at = text.index("By level")
    assert text[at + 1] == f"  level    {'records':>{width}}   share"
    for line, level in zip(text[at + 3 : at + 8], sorted(Level, reverse=True), strict=True):
        share = f"{100 * counts[level] / len(records):.1f}%"
        assert line == f"  {level.label:7}  {counts[level]:>{width},}  {share:>6}"
    # The same column of numbers in the chart, the losses and the instances.
    chart = next(i for i, line in enumerate(text) if line.startswith("Records per 15m")) + 1
    assert text[chart][2:].split("  ", 1)[1][:width].strip().isdigit()
    assert len(text[chart][2:].split("  ", 1)[1][:width]) == width
    assert "By process (the top 2 of 6)" in text
    assert any(line.startswith("Records per 15m (█ error  ▓ warning  ▒ info") for line in text)
    lost = [loss for loss in lossy.losses if loss.time_ns >= lossy.now_ns - HOUR]
    assert f"Losses    {sum(x.count for x in lost)} records in {len(lost)} losses" in text
    assert (
        "Instances 2 (every seq up to the high-water mark is stored, lost, filtered or pruned)"
        in text
    )
    (first,) = [line for line in text if line.startswith(f"  {lossy.instance(1).uuid[:8]}")]
    assert first.split()[1:7] == ["unix:/run/sim-a.sock", "181", "169", "9", "0", "3"]


def test_stats_chart_rows(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    text = kextlog("stats", "--bucket", "1h").stdout.splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("Records per 1h")) + 1
    stats = collect(lossy.url, bucket_ns=HOUR)
    scale = max(bucket.total for bucket in stats.buckets)
    rows = text[start : start + len(stats.buckets)]
    for row, bucket in zip(rows, stats.buckets, strict=True):
        assert row.endswith(f"{bucket.total}  {bar(bucket.counts, scale)}".rstrip())
    assert text[start + len(stats.buckets)] == ""


@pytest.mark.sqlite_only
def test_stats_on_a_missing_database(kextlog: Kextlog, db_path: object) -> None:
    result = kextlog("stats")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("kextlog: error: no kextlog database at ")


@pytest.mark.sqlite_only
def test_stats_on_a_foreign_database(kextlog: Kextlog, db_path: object) -> None:
    sqlite3.connect(str(db_path)).execute("CREATE TABLE t (x)").connection.close()
    result = kextlog("stats")
    assert result.returncode == 1
    assert result.stderr.startswith("kextlog: error: not a kextlog database")


# --- the bars ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "scale", "text"),
    [
        ((0, 0, 0, 0, 0), 10, ""),
        ((0, 0, 0, 0, 10), 10, "█" * 40),
        ((10, 10, 10, 10, 0), 40, "▓" * 10 + "▒" * 10 + "░" * 10 + "·" * 10),
        ((0, 0, 5, 0, 0), 10, "▒" * 20),
        ((1, 0, 0, 0, 999), 1000, "█" * 39 + "·"),  # a level with records shows
        ((0, 0, 1, 0, 0), 1000, "▒"),  # a bucket with records shows
    ],
)
def test_bar(counts: tuple[int, ...], scale: int, text: str) -> None:
    assert bar(counts, scale) == text


def test_bar_in_colour() -> None:
    assert bar((0, 1, 0, 1, 2), 4, width=4, color=True) == (
        "\x1b[1;31m██\x1b[0m\x1b[1;33m▓\x1b[0m\x1b[2m░\x1b[0m"
    )


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 << 20, "5.0 MiB"),
        (3 << 40, "3072.0 GiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_format_count() -> None:
    assert format_count(1234567) == "1,234,567"
    assert format_count(999, 6) == "   999"
    assert format_count(1234567, 6) == "1,234,567"  # never cut


def test_store_url_of_another_back_end_has_no_size() -> None:
    assert sqlite_path("postgresql://h/db") is None


def test_stats_window_errors(kextlog: Kextlog, populated: PopulatedStore) -> None:
    for args, message in [
        (["-S", "1h", "-U", "2h"], "--since '1h' is later than --until '2h'"),
        (["--until", "soonish"], "--until: invalid time 'soonish'"),
        (["--bucket", "today"], "--bucket: invalid duration 'today'"),
        (["--bucket", "0s"], "--bucket: 0s is no bucket: give a duration above 0, e.g. 1h"),
        (["--bucket", "0m"], "--bucket: 0s is no bucket: give a duration above 0, e.g. 1h"),
    ]:
        result = kextlog("stats", *args)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith(f"kextlog: error: {message}")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "Pacific/Kiritimati", "America/Los_Angeles"])
def test_records_at_the_time_bounds_in_any_zone(
    store_url: str, kextlog: Kextlog, zone: str
) -> None:
    # The earliest and latest times a producer may send (kextlog_wire.h):
    # bucket arithmetic with the zone's offset must not overflow 64 bits.
    instance = Instance(1, "ab" * 16, "unix:/s", 2, 0)
    times = (0, TIME_MAX)
    insert_records(
        store_url,
        [instance],
        [
            Record(time_ns, Level.INFO, 1, 1, "p", "m", seq, instance.uuid)
            for seq, time_ns in enumerate(times, 1)
        ],
    )
    shown = kextlog("stats", "-o", "json", env={"TZ": zone})
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert stats["records"] == 2 and sum(bucket["total"] for bucket in stats["rate"]) == 2


def test_figures_agree_while_ingest_commits(store_url: str) -> None:
    """stats reads one snapshot: while a writer commits batch after batch,
    the records per level, per bucket and per instance add up alike."""
    writer = Writer(write_engine(store_url), host="test-host")
    state = writer.register(
        "ab" * 16, first_seq=1, source="unix:/s", name="sim", boot_id="b",
        producer_version="1", now_ns=0,
    )  # fmt: skip
    stop = threading.Event()

    def commit_batches() -> None:
        now_ns = time.time_ns()
        while not stop.is_set():
            first = state.high_water + 1
            rows = [
                (seq, now_ns + seq * 1_000_000, 0, 1 + seq % 5, 0, 7, 7, "p", "m")
                for seq in range(first, first + 50)
            ]
            state.high_water = rows[-1][0]
            writer.commit({state.id: rows}, [], [state], now_ns)

    committer = threading.Thread(target=commit_batches)
    committer.start()
    try:
        for _ in range(30):
            stats = collect(store_url)
            (instance,) = stats.instances
            assert stats.records == sum(bucket.total for bucket in stats.buckets)
            assert stats.records == instance.stored + instance.ahead
            assert stats.records == sum(item.records for item in stats.processes)
            assert instance.discrepancy == 0
    finally:
        stop.set()
        committer.join(timeout=60)
        writer.engine.dispose()
    assert state.high_water > 0
