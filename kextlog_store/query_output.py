"""How `kextlog query` writes what it found: through the pager, or as it
comes with --follow; "-- No entries --" and the cursor, as journalctl."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .render.entries import RecordFormat, write_cursor, write_records
from .terminal import color, pager

if TYPE_CHECKING:  # the read path (query, the store's readers): only query loads it
    from .query import RecordFilter
    from .records import Found


def write_entries(
    found: Iterator[Found],
    record_filter: RecordFilter,
    output: RecordFormat,
    utc: bool,
    follow: bool,
    show_cursor: bool,
    no_pager: bool,
) -> None:
    """What `kextlog query` found, on stdout: through the pager, or with
    --follow each record as soon as it is read (also into a pipe) until
    Ctrl-C (exit 130); then the cursor of the newest record shown, if asked
    for.  On a terminal "-- No entries --" when none is, as journalctl."""
    from .query import CursorKeeper

    shown = CursorKeeper(found, newest_first=record_filter.reverse)
    terminal, colored = sys.stdout.isatty(), color()  # before the pager takes stdout
    if follow:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    stopped = False
    with pager(enabled=not (no_pager or follow)):
        try:
            write_records(shown, output, sys.stdout, utc=utc, color=colored, terminal=terminal)
        except KeyboardInterrupt:
            if not follow:
                raise
            stopped = True  # Ctrl-C ends --follow: where it got to, then exit 130
        if terminal and shown.cursor is None and not stopped:
            sys.stdout.write("-- No entries --\n")
        newest = shown.cursor or record_filter.after_cursor or record_filter.cursor
        if show_cursor and newest is not None:
            write_cursor(newest, sys.stdout)
    if stopped:
        raise KeyboardInterrupt
