"""The figures of the store and of the daemon, in words: `kextlog stats`
(text and JSON), `kextlog prune`, `kextlog db check`, `kextlog status`,
and ingest's live line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, TextIO

from ..levels import Level
from .entries import LOSS_REASON_WORDS
from .formats import StatsFormat, StatusFormat
from .rows import table_lines
from .text import LEVEL_STYLES, Clock, escape, json_text, local_time, paint, zone

if TYPE_CHECKING:  # stats imports SQLAlchemy; rendering its figures does not need it
    from ..stats import Stats
    from ..status import IngestStatus
    from ..store.check import CheckReport
    from ..store.retention import PruneResult


# Bars that read without colour: one glyph per level, the severe ones darkest.
LEVEL_GLYPHS = {
    Level.ERROR: "█",
    Level.WARNING: "▓",
    Level.INFO: "▒",
    Level.DEBUG: "░",
    Level.TRACE: "·",
}
CHART_WIDTH = 40  # glyphs for the fullest bucket


def format_size(size: int) -> str:
    """1536 -> 1.5 KiB (powers of 1024, as prune's --max-size)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_count(value: int, width: int = 0) -> str:
    """A number in stats' tables and lines: thousands separators, right-aligned in width."""
    return f"{value:>{width},}"


def _share(part: int, total: int) -> str:
    return f"{100 * part / (total or 1):.1f}%".rjust(len("100.0%"))


def _count_width(stats: Stats) -> int:
    """One width for the numbers of every stats table: the widest of them,
    or of the numeric columns' headings."""
    numbers = [stats.records, *stats.levels, *(bucket.total for bucket in stats.buckets)]
    numbers += [number for item in stats.processes for number in (item.records, item.pids)]
    numbers += [number for item in stats.losses for number in (item.losses, item.records)]
    numbers += [
        number
        for item in stats.instances
        for number in (item.high_water, item.stored, item.lost, item.filtered, item.pruned)
    ]
    return max(len("high water"), *(len(format_count(number)) for number in numbers))


def _when(time_ns: int | None, tz: tzinfo | None) -> str:
    """2026-11-27 10:22:36 (seconds are enough to say where a range lies)."""
    return "-" if time_ns is None else Clock(tz).iso(time_ns)[:19].replace("T", " ")


def bar(counts: Sequence[int], scale: int, width: int = CHART_WIDTH, color: bool = False) -> str:
    """A bar of width * sum(counts) / scale glyphs (at least one when the
    counts are not all 0), one run per level from ERROR down to TRACE, each
    as long as its share, rounded so that the runs add up to the bar; a
    level with records gets at least one glyph while the bar has room."""
    total = sum(counts)
    if not total or not scale:
        return ""
    length = max(1, round(width * total / scale))
    present = [level for level in sorted(Level, reverse=True) if counts[level - 1]]
    runs, done, seen = [], 0, 0
    for index, level in enumerate(present):
        later = len(present) - index - 1  # levels still to come, a glyph each if room
        seen += counts[level - 1]
        end = min(max(done + 1, round(length * seen / total)), length - later)
        if end <= done:
            continue
        glyphs = LEVEL_GLYPHS[level] * (end - done)
        runs.append(paint(glyphs, LEVEL_STYLES.get(level)) if color else glyphs)
        done = end
    return "".join(runs)


def _bucket_label(start_ns: int, size_ns: int, tz: tzinfo | None) -> str:
    stamp = Clock(tz).iso(start_ns)
    if size_ns % 86_400_000_000_000 == 0:
        return stamp[:10]  # 2026-11-27
    if size_ns % 60_000_000_000 == 0:
        return stamp[5:16].replace("T", " ")  # 11-27 10:20
    return stamp[5:19].replace("T", " ")  # 11-27 10:20:05


def _duration(size_ns: int) -> str:
    for unit, ns in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if size_ns % (ns * 1_000_000_000) == 0:
            return f"{size_ns // (ns * 1_000_000_000)}{unit}"
    return f"{size_ns}ns"


def stats_fields(stats: Stats, tz: tzinfo | None = None) -> dict[str, Any]:
    """The figures of `kextlog stats -o json`, times in ISO 8601."""

    def iso(time_ns: int | None) -> str | None:
        return None if time_ns is None else Clock(tz).iso(time_ns)

    database = stats.database
    return {
        "database": None
        if database is None
        else {
            "path": database.path,
            "file_bytes": database.file_bytes,
            "wal_bytes": database.wal_bytes,
            "page_size": database.page_size,
            "page_count": database.page_count,
            "free_pages": database.free_pages,
        },
        "since": iso(stats.since_ns),
        "until": iso(stats.until_ns),
        "records": stats.records,
        "first": iso(stats.first_ns),
        "last": iso(stats.last_ns),
        "levels": {level.label: stats.levels[level - 1] for level in Level},
        "processes": [
            {"process": item.process, "records": item.records, "pids": item.pids}
            for item in stats.processes
        ],
        "process_names": stats.process_names,
        "bucket_seconds": stats.bucket_ns / 1e9,
        "rate": [
            {
                "start": iso(bucket.start_ns),
                **{level.label: bucket.counts[level - 1] for level in Level},
                "total": bucket.total,
            }
            for bucket in stats.buckets
        ],
        "losses": [
            {"reason": item.reason, "losses": item.losses, "records": item.records}
            for item in stats.losses
        ],
        "instances": [
            {
                "instance": item.instance,
                "source": item.source,
                "name": item.name,
                "boot_id": item.boot_id,
                "producer_version": item.producer_version,
                "first_seen": iso(item.first_seen_ns),
                "last_seen": iso(item.last_seen_ns),
                "high_water": item.high_water,
                "stored": item.stored,
                "lost": item.lost,
                "filtered": item.filtered,
                "pruned": item.pruned,
                "discrepancy": item.discrepancy,
                "ahead": item.ahead,
                "first_record": iso(item.first_record_ns),
                "last_record": iso(item.last_record_ns),
            }
            for item in stats.instances
        ],
    }


def stats_lines(stats: Stats, tz: tzinfo | None = None, *, color: bool = False) -> list[str]:
    """`kextlog stats` as text: sections of aligned tables and a bar chart."""
    return [
        *_summary_lines(stats, tz),
        *_share_lines(stats),
        *_chart_lines(stats, tz, color),
        *_loss_lines(stats),
        *_instance_lines(stats, tz),
    ]


def _summary_lines(stats: Stats, tz: tzinfo | None) -> list[str]:
    lines: list[str] = []
    database = stats.database
    if database is not None:
        used = (database.page_count - database.free_pages) * database.page_size
        lines.append(f"Database  {escape(database.path)}")
        lines.append(
            f"  {format_size(database.file_bytes)} on disk"
            f" ({format_size(database.wal_bytes)} more in the -wal file),"
            f" {format_size(used)} in use, {database.free_pages:,} free pages"
            f" of {database.page_size:,} bytes"
        )
    window = ""
    if stats.since_ns is not None or stats.until_ns is not None:
        window = f", in the window {_when(stats.since_ns, tz)} .. {_when(stats.until_ns, tz)}"
    lines.append(
        f"Records   {stats.records:,}{window}"
        + (
            f", from {_when(stats.first_ns, tz)} to {_when(stats.last_ns, tz)}"
            if stats.records
            else ""
        )
    )
    return lines


def _share_lines(stats: Stats) -> list[str]:
    width = _count_width(stats)
    levels = [
        (
            level.label,
            format_count(stats.levels[level - 1], width),
            _share(stats.levels[level - 1], stats.records),
        )
        for level in sorted(Level, reverse=True)
    ]
    processes = [
        (
            item.process,
            format_count(item.records, width),
            _share(item.records, stats.records),
            format_count(item.pids, width),
        )
        for item in stats.processes
    ]
    records, pids = _heading("records", width), _heading("pids", width)
    return [
        "",
        "By level",
        *_indent(table_lines(("level", records, _heading("share", 6)), levels)),
        "",
        f"By process (the top {len(stats.processes)} of {stats.process_names:,})",
        *_indent(table_lines(("process", records, _heading("share", 6), pids), processes)),
    ]


def _heading(name: str, width: int) -> str:
    """A numeric column's heading, right-aligned over its numbers."""
    return name.rjust(width)


def _chart_lines(stats: Stats, tz: tzinfo | None, color: bool) -> list[str]:
    if not stats.buckets:
        return []
    scale = max(bucket.total for bucket in stats.buckets)
    legend = "  ".join(f"{LEVEL_GLYPHS[level]} {level.label}" for level in sorted(Level)[::-1])
    lines = ["", f"Records per {_duration(stats.bucket_ns)} ({legend})"]
    width = _count_width(stats)
    chart = [
        (_bucket_label(bucket.start_ns, stats.bucket_ns, tz), format_count(bucket.total, width), "")
        for bucket in stats.buckets
    ]
    for line, bucket in zip(
        _indent(table_lines(("start", "records", ""), chart, header=False)),
        stats.buckets,
        strict=True,
    ):
        lines.append(f"{line}  {bar(bucket.counts, scale, color=color)}".rstrip())
    return lines


def _loss_lines(stats: Stats) -> list[str]:
    lost = sum(item.records for item in stats.losses)
    rows = sum(item.losses for item in stats.losses)
    lines = ["", f"Losses    {lost:,} records in {rows:,} losses"]
    if stats.losses:
        width = _count_width(stats)
        by_reason = [
            (
                LOSS_REASON_WORDS.get(item.reason, item.reason),
                format_count(item.losses, width),
                format_count(item.records, width),
            )
            for item in stats.losses
        ]
        headings = ("reason", _heading("losses", width), _heading("records", width))
        lines += _indent(table_lines(headings, by_reason))
    return lines


def _instance_lines(stats: Stats, tz: tzinfo | None) -> list[str]:
    lines = ["", f"Instances {len(stats.instances):,} (every seq up to the high-water mark"]
    lines[-1] += " is stored, lost, filtered or pruned)"
    width = _count_width(stats)
    accounts = [
        (
            item.instance[:8],
            item.source,
            *(
                format_count(number, width)
                for number in (item.high_water, item.stored, item.lost, item.filtered, item.pruned)
            ),
            _when(item.first_record_ns, tz),
            _when(item.last_record_ns, tz),
        )
        for item in stats.instances
    ]
    if accounts:
        numeric = ("high water", "stored", "lost", "filtered", "pruned")
        columns = ("instance", "source", *(_heading(name, width) for name in numeric),
                   "first record", "last record")  # fmt: skip
        lines += _indent(table_lines(columns, accounts))
    for item in stats.instances:
        if item.ahead:
            lines.append(
                f"  instance {item.instance[:8]}: {item.ahead:,} more records stored beyond"
                " its high-water mark, waiting for the seqs before them"
            )
    for item in stats.instances:
        if item.discrepancy:
            lines.append(f"  instance {item.instance[:8]}: {_discrepancy(item.discrepancy)}")
    return lines


def _discrepancy(seqs: int) -> str:
    """An instance's accounting that does not add up, in words."""
    if seqs > 0:
        return (
            f"{seqs:,} seqs up to its high-water mark are neither stored, lost, filtered"
            " nor pruned: rows went without prune (`kextlog db check`)"
        )
    return f"{-seqs:,} seqs are counted twice (`kextlog db check`)"


def _indent(lines: Iterable[str]) -> list[str]:
    return ["  " + line for line in lines]


def write_stats(
    stats: Stats, output: StatsFormat, out: TextIO, *, utc: bool = False, color: bool = False
) -> None:
    """`kextlog stats`: text (tables and a chart) or one JSON object."""
    if output is StatsFormat.JSON:
        out.write(json_text(stats_fields(stats, zone(utc)), indent=2))
        out.write("\n")
        return
    for line in stats_lines(stats, zone(utc), color=color):
        out.write(line)
        out.write("\n")


def live_line(snapshot: dict, rate: float) -> str:
    """Ingest's progress on a terminal, from its state (pipeline.Ingest.snapshot)."""
    connected = sum(source["connected"] for source in snapshot["sources"])
    return (
        f"stored {snapshot['stored']:,} ({rate:,.0f}/s), lost {snapshot['lost']:,}, "
        f"{connected}/{len(snapshot['sources'])} sources connected"
    )


def prune_lines(result: PruneResult) -> list[str]:
    """What `kextlog prune` removed, in words."""
    by_level = ", ".join(
        f"{Level(number).label if number in Level._value2member_map_ else number} {count:,}"
        for number, count in sorted(result.records.items())
    )
    losses = "loss row" if result.losses == 1 else "loss rows"
    lines = [
        f"removed {result.removed:,} records"
        + (f" ({by_level})" if by_level else "")
        + f" and {result.losses:,} {losses}"
    ]
    lines.append(
        f"in use {format_size(result.size_before)} -> {format_size(result.size_after)},"
        f" file {format_size(result.file_before)} -> {format_size(result.file_after)}"
    )
    if result.stopped:
        lines.append("stopped before the end")
    return lines


def prune_overflow(result: PruneResult, max_size_bytes: int) -> str:
    """Why `kextlog prune --max-size` fails when the store still does not fit."""
    return (
        f"{format_size(result.size_after)} still in use, more than --max-size "
        f"{format_size(max_size_bytes)}: no older record is left to remove"
    )


def check_lines(report: CheckReport) -> list[str]:
    """`kextlog db check`'s report in words: a line per check, its problems below it."""
    lines = [f"{report.path}:"]
    for finding in report.findings:
        mark = "skip" if finding.skipped else "ok" if finding.ok else "FAIL"
        note = f" ({finding.note})" if finding.note else ""
        lines.append(f"  {mark:<4}  {finding.check}{note}")
        lines.extend(f"          {problem}" for problem in finding.problems)
    return lines


def check_summary(report: CheckReport) -> str:
    """One line for a report with failures."""
    names = ", ".join(finding.check for finding in report.failed)
    return f"{report.path}: {len(report.failed)} of {len(report.findings)} checks failed ({names})"


def status_lines(status: IngestStatus) -> list[str]:
    """`kextlog status` in words; every text from the state escaped (a
    producer's name is the producer's to choose)."""
    snapshot = status.snapshot

    def text(value: str) -> str:
        return escape(value, newlines=True)

    latency = snapshot["latency_ms"]["recent"]
    lines = [
        f"ingest: {status.state} (pid {snapshot['pid']}), last update "
        f"{local_time(snapshot['updated_ns'])}",
        f"  stored {snapshot['stored']:,} records in {snapshot['commits']:,} commits, "
        f"lost {snapshot['lost']:,}, filtered {snapshot['filtered']:,}",
    ]
    outage = snapshot["store_outage"]
    if outage is not None:
        lines.append(
            f"  store: {text(outage['what'])} since {local_time(outage['since_ns'])}, "
            f"{outage['waiting']:,} records waiting, retrying ({text(outage['error'])})"
        )
    if latency["samples"] and latency["p50"] is not None and latency["p99"] is not None:
        lines.append(
            f"  kernel-to-commit latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms "
            f"over the last second ({latency['samples']:,} samples)"
        )
    for source in snapshot["sources"]:
        lines += _source_lines(source, status.alive, text)
    return lines


def _source_lines(source: dict, alive: bool, text: Callable[[str], str]) -> list[str]:
    connected = "connected" if source["connected"] and alive else "disconnected"
    lines = [f"{text(source['source'])}: {connected}"]
    if source["error"] and not source["connected"]:
        lines.append(f"  last error: {text(source['error'])}")
    skipped = source.get("skipped")  # absent from the files of older daemons
    if skipped and skipped["bytes"]:
        problems = ", ".join(
            f"{count:,} {text(problem)}" for problem, count in skipped["problems"].items()
        )
        lines.append(f"  skipped {skipped['bytes']:,} bytes of malformed input ({problems})")
    if source["instance"] is None:
        return lines
    producer, instance = text(source["producer"] or ""), text(source["instance"])
    lines.append(f"  producer {producer}, instance {instance}")
    lines.append(
        f"  committed seq {source['committed_seq']:,}, lag {source['lag'] or 0:,} records, "
        f"lost {source['lost'] or 0:,} records"
        if source["committed_seq"] is not None
        else "  nothing committed yet"
    )
    ring = source["ring"]
    if ring is not None:
        fill = ring["records"] / ring["capacity"] if ring["capacity"] else 0.0
        lines.append(
            f"  ring {ring['records']:,} of {ring['capacity']:,} records ({fill:.0%}), "
            f"{ring['producer_lost']:,} lost since the kext loaded"
        )
    return lines


def write_status(status: IngestStatus, output: StatusFormat, out: TextIO) -> None:
    """`kextlog status` of a daemon that published its state."""
    if output is StatusFormat.JSON:
        out.write(json.dumps({**status.snapshot, "state": status.state}) + "\n")
    else:
        out.write("\n".join(status_lines(status)) + "\n")


def never_ran(shown: object) -> str:
    """`kextlog status` where no daemon ever published a state (shown: where it would be)."""
    return f"ingest: never ran on this store (no {shown})"


def write_starting(pid: int, output: StatusFormat, out: TextIO) -> None:
    """`kextlog status` of a daemon that holds its lock but published nothing yet."""
    if output is StatusFormat.JSON:
        out.write(json.dumps({"state": "starting", "pid": pid}) + "\n")
    else:
        out.write(f"ingest: starting (pid {pid}), no state published yet\n")
