"""`kextlog db verify`'s report as lines of text: per chain, what holds and
where it breaks first."""

from __future__ import annotations

from ..seal.verify import Break, ChainReport, stopped_cleanly
from .text import escape, iso_time, zone

_UTC = zone(utc=True)


def _time(ns: int) -> str:
    return iso_time(ns, _UTC)


def _window(window: tuple[int, int] | None) -> str:
    if window is None:
        return ""
    first, last = window
    return f", time {_time(first)}" + ("" if first == last else f" .. {_time(last)}")


def describe(broken: Break) -> str:
    where = [f"entry {broken.position}" if broken.position is not None else "outside the chain"]
    if broken.instance is not None:
        where.append(f"instance {escape(broken.instance)}")
    if broken.seqs is not None:
        where.append(f"seqs {broken.seqs[0]}..{broken.seqs[1]}")
    return (
        f"BROKEN: {broken.kind}: {', '.join(where)}{_window(broken.window)}: "
        f"{escape(broken.detail)}"
    )


def lines(reports: list[ChainReport]) -> list[str]:
    out: list[str] = []
    for report in reports:
        how = "seals checked with the key" if report.keyed else "no key: seals not checked"
        out.append(f"chain of host {escape(report.host)} ({how})")
        out.append(
            f"  verified: {report.entries:,} entries, {report.records:,} records, "
            f"{report.losses:,} loss rows"
        )
        if report.sealed is not None:
            sealed = report.sealed
            out.append(
                f"  sealed: up to entry {sealed.position} by the seal of epoch {sealed.epoch}, "
                f"{_time(sealed.sealed_ns)}"
            )
        if report.tail_entries:
            first, last = report.tail_window or (0, 0)
            out.append(
                f"  unsealed tail: {report.tail_entries:,} entries, {report.tail_records:,} "
                f"records, committed {_time(first)} .. {_time(last)}"
            )
        for checkpoint in report.checkpoints:
            out.append(
                f"  prune checkpoint {_time(checkpoint['committed_ns'])}: "
                f"{checkpoint.get('count', 0):,} {escape(str(checkpoint.get('pruned')))} removed"
            )
        if report.unverified:
            out.append(
                f"  {report.unverified:,} records left in batches prune took rows from: "
                "not checked record by record"
            )
        if report.broken is not None:
            out.append("  " + describe(report.broken))
        elif stopped_cleanly(report):
            out.append("  ingest stopped cleanly after the last seal")
        else:
            out.append("  OK")
    return out
