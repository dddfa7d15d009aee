"""The `kextlog` command.  Thin: each command parses its options, calls one
library function and renders the result.

Modules that are slow to import (SQLAlchemy through store/query, Alembic
through migrate, cffi through wire/ingest/simulator) are imported inside the
commands that need them, so `kextlog query` never loads Alembic or cffi.
Every error ends as one line on stderr, `kextlog: error: ...`, and a
non-zero exit; never a traceback.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast

import typer

# Typer vendors Click (since 0.26, which pyproject requires).
from typer._click.exceptions import ClickException
from typer._click.exceptions import UsageError as ClickUsageError

from . import __version__
from .errors import DatabaseError, KextlogError, SourceError, UsageError
from .redact import redact, redact_all
from .render import RecordFormat, SqlFormat, StatsFormat, escape

if TYPE_CHECKING:  # imported by the commands that need them (see above)
    from .config import IngestConfig
    from .ingest import IngestOptions
    from .sources import Source
    from .store import Writer

T = TypeVar("T")

# The ranges of numbers the options take: SQLite's integers (and
# PostgreSQL's bigint), and a pid (pid_t).
INT64_MAX = 2**63 - 1
PID_MAX = 2**31 - 1

app = typer.Typer(
    name="kextlog",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(
    help="Create or upgrade the store's schema, show its revision, check it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")

# Options shared by several commands.
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL_OR_PATH",
        show_default=False,
        help="The store: a SQLite file or an SQLAlchemy URL (anything with ://). "
        "Default: $KEXTLOG_DB, else the system store.",
    ),
]


def _complete_levels(incomplete: str) -> list[str]:
    """Shell completion of --level: the names, and ranges after `A..`."""
    names = ("trace", "debug", "info", "warning", "error")
    first, dots, _ = incomplete.partition("..")
    if dots:
        return [f"{first}..{name}" for name in names if f"{first}..{name}".startswith(incomplete)]
    return [name for name in names if name.startswith(incomplete.lower())]


LevelOption = Annotated[
    str | None,
    typer.Option(
        "--level",
        "-p",
        metavar="LEVEL|A..B",
        help="LEVEL and everything more severe (trace, debug, info, warning, error; "
        "warn, err), or the levels from A to B.",
        autocompletion=_complete_levels,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        "-S",
        metavar="TIME",
        help="At or after TIME: 30s, 15m, 1h30m, '2h ago', -1h, 2026-11-27, "
        "'2026-11-27 10:00', 2026-11-27T10:00:00.5+01:00, today, yesterday, now, @EPOCH.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", "-U", metavar="TIME", help="At or before TIME (as --since)."),
]
UtcOption = Annotated[bool, typer.Option("--utc", help="Show times in UTC, not local time.")]
NoPagerOption = Annotated[
    bool,
    typer.Option(
        "--no-pager",
        help="Never page. (On a terminal, output goes through $KEXTLOG_PAGER, else $PAGER, "
        "else less; set either to '' or cat to never page.)",
    ),
]


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"kextlog {__version__}\n")
        raise typer.Exit()


@app.callback()
def _kextlog(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Every log record from your macOS kernel extension, in a store you can query."""


# --- reading --------------------------------------------------------------


@app.command("query")
def query_command(
    db: DbOption = None,
    level: LevelOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    pid: Annotated[
        list[int] | None,
        typer.Option(
            "--pid", min=0, max=PID_MAX, metavar="PID", help="Records of this pid (repeatable)."
        ),
    ] = None,
    process: Annotated[
        list[str] | None,
        typer.Option(
            "--process",
            metavar="NAME",
            help="Records of this process name: exact, or a glob with * ? [...] (repeatable).",
        ),
    ] = None,
    grep: Annotated[
        str | None,
        typer.Option(
            "--grep",
            "-g",
            metavar="REGEX",
            help="Messages that match REGEX (RE2's syntax: no backreferences or lookaround); "
            "case-insensitive unless REGEX has an upper-case letter.",
        ),
    ] = None,
    instance: Annotated[
        str | None,
        typer.Option(
            "--instance",
            metavar="ID|0|-N",
            help="Records of one kext instance: its id or a unique prefix of it; 0 the newest "
            "instance, -1 the one before, ... (as journalctl -b).",
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="Records read from this source, e.g. unix:/run/sim.sock (repeatable).",
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            metavar="NAME",
            help="Records that ingest on host NAME stored (a shared store; repeatable).",
        ),
    ] = None,
    lines: Annotated[
        int | None,
        typer.Option(
            "--lines", "-n", min=0, max=INT64_MAX, metavar="N", help="Only the last N records."
        ),
    ] = None,
    reverse: Annotated[bool, typer.Option("--reverse", "-r", help="Newest first.")] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Then print new records as they are stored, until Ctrl-C. Starts with "
            "the last 10 unless -n, --since or a cursor says otherwise.",
        ),
    ] = False,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="Start at the record of CURSOR."),
    ] = None,
    after_cursor: Annotated[
        str | None,
        typer.Option("--after-cursor", metavar="CURSOR", help="Start after the record of CURSOR."),
    ] = None,
    show_cursor: Annotated[
        bool,
        typer.Option(
            "--show-cursor",
            help="After the output, print '-- cursor: CURSOR' of the newest record shown.",
        ),
    ] = False,
    output: Annotated[
        RecordFormat, typer.Option("--output", "-o", help="Output format.")
    ] = RecordFormat.SHORT,
    utc: UtcOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """Show stored records in the order they were logged, as journalctl does.

    Filters combine: a record is shown when it matches every one given (and
    any value of a repeated option).

    Where records are missing, the text formats (short, short-iso, cat,
    table) show a marked line in place, as journalctl shows "-- missed N
    kernel messages --":

    \b
      -- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --

    Reasons: ring full (the kext's ring was full, they went to the kernel's
    printf), no longer held (acknowledged to an earlier client and released),
    never sent (seqs skipped by the producer). A marker stands at the time of
    the first missing record; when that is unknown, just before the next
    stored record of its instance, else at the time the loss was recorded.
    It comes before records of the same time. --since/--until, --instance,
    --source and cursors apply to markers too; --level, --pid, --process and
    --grep never hide them (the lost records could have been anything). When
    -n N leaves older records out, the markers before the first record shown
    go with them; every later marker is shown, also after the last record:
    records are missing at the end of the log.

    -o json, json-pretty and csv print records only, no markers: read losses
    with kextlog sql -o json "SELECT * FROM lost".

    A cursor (--show-cursor) names a record for good, also once it is pruned:
    --after-cursor with the cursor of the last run shows what came since.

    \b
    Examples:
      kextlog query --level error --since 1h
      kextlog query -p warning..error --pid 312 -n 20 -o json
      kextlog query --since '2026-11-27 10:00' --until '30m ago' --utc
      kextlog query --process 'mds*' -g 'denied|refused' -o short-iso
      kextlog query --instance -1 -r -n 50
      kextlog query -f -p err
      kextlog query --after-cursor "$(cat last.cursor)" --show-cursor
      kextlog query --since 1h | grep '^-- .* lost ('
    """
    from . import query, render, store
    from .levels import parse_level_range
    from .records import Cursor

    if follow and output is RecordFormat.TABLE:
        raise UsageError("-o table aligns its columns over all the rows: it cannot --follow")
    since_ns, until_ns = _window(since, until)
    record_filter = query.RecordFilter(
        levels=_option("--level", parse_level_range, level),
        since_ns=since_ns,
        until_ns=until_ns,
        pids=tuple(pid or ()),
        processes=tuple(process or ()),
        grep=grep,
        instance=instance,
        sources=tuple(source or ()),
        hosts=tuple(host or ()),
        cursor=_option("--cursor", Cursor.parse, cursor),
        after_cursor=_option("--after-cursor", Cursor.parse, after_cursor),
        lines=lines,
        reverse=reverse,
    )
    color = _color()
    engine = store.read_engine(store.database_url(db))
    try:
        found = (query.follow if follow else query.entries)(engine, record_filter)
        shown = query.CursorKeeper(found, newest_first=reverse)
        if follow:  # each record as soon as it is read, also into a pipe
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        with closing(found), _pager(enabled=not (no_pager or follow)):
            try:
                render.write_records(
                    shown, output, sys.stdout, utc=utc, color=color, terminal=sys.stdout.isatty()
                )
            except KeyboardInterrupt:
                if not follow:
                    raise  # Ctrl-C is how one ends --follow: exit 0 then
            newest = shown.cursor or record_filter.after_cursor or record_filter.cursor
            if show_cursor and newest is not None:
                render.write_cursor(newest, sys.stdout)
    finally:
        engine.dispose()


# Exit status of `kextlog sql` when --max-rows or --max-bytes cut the result short.
EXIT_TRUNCATED = 3
# The default of `sql --max-bytes`: the result is held in memory before it
# is printed (a statement that runs out of time prints nothing), and a value
# being printed costs up to about seven times its size (Python's str, csv's
# four bytes a character, the encoded copy): 64 MB keeps the worst at some
# 500 MB beside a running daemon, and is still 10,000 rows of the log
# view's every column twenty times over.  A whole store goes out with
# --max-bytes 0, or `kextlog query -o csv`, which streams.
MAX_BYTES = "64MB"


def _identity(value: T) -> T:
    return value


def _finite(value: float) -> float:
    """The callback of a float option: Click's ranges let nan through."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number")
    return value


@app.command("sql")
def sql_command(
    statement: Annotated[
        str, typer.Argument(metavar="SQL", help="One SELECT (or read-only PRAGMA); - reads stdin.")
    ],
    db: DbOption = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME VALUE",
            # A pair per use: main() makes this option take two values.
            parser=_identity,
            help="A value for :NAME in the SQL (repeatable). An integer such as 312 is "
            "passed as a number, anything else as text.",
        ),
    ] = None,
    output: Annotated[SqlFormat, typer.Option("--output", "-o", help="Output format.")] = (
        SqlFormat.TABLE
    ),
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.001,
            max=86_400,
            callback=_finite,
            metavar="SECONDS",
            help="Stop a statement that runs longer.",
        ),
    ] = 10.0,
    max_rows: Annotated[
        int,
        typer.Option(
            "--max-rows",
            min=0,
            max=INT64_MAX,
            metavar="N",
            help="Print at most N rows (0: all); more make the exit status 3.",
        ),
    ] = 10_000,
    max_bytes: Annotated[
        str,
        typer.Option(
            "--max-bytes",
            metavar="SIZE",
            help="Hold and print at most SIZE (e.g. 64MB, 1GB; 0: no limit) of the result, "
            "and no value longer; more make the exit status 3.",
        ),
    ] = MAX_BYTES,
    no_pager: NoPagerOption = False,
) -> None:
    """Run read-only SQL on the store; it cannot change anything or write any file.

    The views `log` (a record per row, readable) and `lost` (a loss per row)
    make most questions one line; README lists every table and view, and
    REGEXP works (RE2's syntax: no backreferences or lookaround).

    Limits: a statement that runs longer than --timeout stops with an error
    and prints nothing (exit 1). One that returns more than --max-rows rows,
    or more than --max-bytes, prints the rows that fit, says "stopped after N
    rows" on stderr and exits with status 3, so that a script never takes a
    cut result for the whole. A value longer than --max-bytes, or a
    statement that needs more memory than twice that, stops with an error.

    \b
    Examples:
      kextlog sql "SELECT level, count(*) FROM log GROUP BY level"
      kextlog sql -o json "SELECT * FROM lost"
      kextlog sql -p pid 312 -p since 2026-11-27 \\
        "SELECT time, message FROM log WHERE pid = :pid AND time >= :since"
      kextlog sql -o csv --max-rows 0 --max-bytes 0 "SELECT * FROM log" > everything.csv
      echo "PRAGMA table_info(records)" | kextlog sql -
    """
    from . import query, render, store
    from .retention import parse_size

    if statement == "-":
        statement = sys.stdin.read()
    size = _option("--max-bytes", parse_size, max_bytes)
    # Each value is a (NAME, VALUE) pair (see _take_pairs); always by name,
    # so that a :NAME without -p says which one is missing.
    parameters = query.sql_parameters(cast("list[tuple[str, str]]", param or []))
    url = store.database_url(db)
    with _hard_time_limit(timeout, lambda: str(query.time_limit_error(timeout))):
        result = query.run_sql(
            url, statement, parameters, time_limit=timeout, max_rows=max_rows, max_bytes=size
        )
    with _pager(enabled=not no_pager):
        written = render.write_rows(
            result.columns,
            result.rows,
            output,
            sys.stdout,
            terminal=sys.stdout.isatty(),
            max_bytes=size or None,
        )
    truncated = result.truncated or ("--max-bytes" if written < len(result.rows) else None)
    if truncated is not None:
        sys.stdout.flush()
        if truncated == "--max-rows":
            sys.stderr.write(
                f"kextlog: stopped after {written:,} rows: raise --max-rows (0 for all)\n"
            )
        else:
            sys.stderr.write(
                f"kextlog: stopped after {written:,} rows, at --max-bytes {max_bytes}: "
                "raise --max-bytes (0 for no limit)\n"
            )
        raise typer.Exit(EXIT_TRUNCATED)


# How long a statement may run past its time limit before the process ends:
# the time limit stops a statement between SQLite's instructions, never
# inside one call of a function (REGEXP with a huge pattern, instr() or
# replace() over megabytes), nor PostgreSQL's client waiting for a server
# that does not answer.
HARD_LIMIT_GRACE = 1.0


@contextmanager
def _hard_time_limit(seconds: float, message: Callable[[], str]) -> Iterator[None]:
    """Ends the process with message (exit 1) if what runs inside takes
    HARD_LIMIT_GRACE longer than seconds; kextlog sql only reads, so
    nothing is left half done."""

    def expire() -> None:
        sys.stderr.write(f"kextlog: error: {message()}\n")
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(seconds + HARD_LIMIT_GRACE, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@app.command("stats")
def stats_command(
    db: DbOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    top: Annotated[
        int,
        typer.Option(
            "--top", min=1, max=INT64_MAX, metavar="N", help="The N processes with most records."
        ),
    ] = 10,
    bucket: Annotated[
        str | None,
        typer.Option(
            "--bucket",
            metavar="DURATION",
            help="The chart's bucket, e.g. 1m, 1h, 1d (default: at most 24 buckets).",
        ),
    ] = None,
    output: Annotated[
        StatsFormat, typer.Option("--output", "-o", help="Output format.")
    ] = StatsFormat.TEXT,
    utc: UtcOption = False,
) -> None:
    """Show what the store holds: records per level and per process, the rate
    over time as a chart (records per bucket, by level), the losses by
    reason, every kext instance with its accounting (each seq up to its
    high-water mark is stored, lost, filtered or pruned), the database's size
    and the range of dates. --since/--until narrow records, chart and losses;
    instances are always counted whole.

    \b
    Examples:
      kextlog stats
      kextlog stats --since today --bucket 1h
      kextlog stats -S 1h --top 3 -o json
    """
    from . import render, stats, store, timespec

    since_ns, until_ns = _window(since, until)
    result = stats.collect(
        store.database_url(db),
        since_ns=since_ns,
        until_ns=until_ns,
        top=top,
        bucket_ns=_option("--bucket", timespec.parse_duration, bucket),
        utc=utc,
    )
    render.write_stats(result, output, sys.stdout, utc=utc, color=_color())


@app.command("web")
def web_command(
    db: DbOption = None,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Listen on ADDRESS.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="Listen on PORT (0: any free one).")
    ] = 8001,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Serve on an address that is not loopback. There is no authentication: "
            "anyone who reaches it reads the whole store.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.001,
            metavar="SECONDS",
            help="Stop a page's reads that run longer (its SQL page: kextlog sql's 10 s).",
        ),
    ] = 30.0,
) -> None:
    """Browse the store in a web browser, as Console.app: the log with the
    filters of `kextlog query`, facets, loss markers and live records; each
    record with its neighbours; the rate chart, stats, canned views,
    read-only SQL and every table (Datasette). Needs the web extra:
    pip install 'kextlog[web]'. Ctrl-C stops it.

    \b
    Examples:
      kextlog web
      kextlog web --db /tmp/kextlog.db --port 8080
    """
    try:
        from . import web
    except ModuleNotFoundError as exc:
        if exc.name not in ("datasette", "uvicorn"):
            raise
        raise KextlogError("kextlog web needs the web extra: pip install 'kextlog[web]'") from None
    web.serve(db, host, port, allow_remote=allow_remote, timeout=timeout)


# --- retention ------------------------------------------------------------


@app.command("prune")
def prune_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Remove records older than AGE: 30d, 12h, 1w (of --level's levels).",
        ),
    ] = None,
    level: LevelOption = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="Then remove the oldest records until the database fits in SIZE: 2GB, 500M "
            "(powers of 1024).",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Remove old records while ingest keeps running, and give the space back.

    It deletes in small transactions (ingest commits between them), then
    returns the freed pages to the file system (SQLite's incremental
    vacuum). A loss row goes too once no stored record of its instance is
    older than it and every level was pruned past its time; a loss among
    records that are kept always stays. Instances stay, high-water marks
    never move: `kextlog stats` counts removed seqs as pruned.

    With --max-size, the size is the pages in use, which is what the file
    shrinks to (not counting the -wal file); if even removing every record
    cannot get there, the exit status is 1.

    \b
    Examples:
      kextlog prune --older-than 30d
      kextlog prune --older-than 1d --level trace..debug
      kextlog prune --max-size 2GB
      kextlog prune --older-than 90d --max-size 500MB
    """
    from . import render, retention, store, timespec
    from .levels import parse_level_range

    if level is not None and older_than is None:
        raise UsageError("--level says which records --older-than removes: give --older-than")
    if older_than is None and max_size is None:
        raise UsageError("nothing to prune: give --older-than, --max-size or both")
    policy = retention.RetentionPolicy.older_than(
        _option("--older-than", timespec.parse_duration, older_than),
        _option("--level", parse_level_range, level),
        _option("--max-size", retention.parse_size, max_size),
    )
    url = store.database_url(db)
    store.read_engine(url).dispose()  # a missing store is an error, never created
    engine = store.write_engine(url)
    try:
        result = retention.apply(engine, policy)
    finally:
        engine.dispose()
    sys.stdout.write("\n".join(render.prune_lines(result)) + "\n")
    if result.fits is False:
        assert policy.max_size_bytes is not None
        raise DatabaseError(
            f"{render.format_size(result.size_after)} still in use, more than --max-size "
            f"{render.format_size(policy.max_size_bytes)}: no older record is left to remove"
        )


# --- output to a terminal ---------------------------------------------------


def _color() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org) or TERM is dumb."""
    return (
        sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


@contextmanager
def _pager(*, enabled: bool) -> Iterator[None]:
    """Page stdout on a terminal, as journalctl does: $KEXTLOG_PAGER, else
    $PAGER, else less with LESS=FRSXMK (quit when it fits one screen, keep
    colours, chop long lines, no screen clearing, Ctrl-C quits) unless LESS
    is set.  '' or cat means no pager.  When the reader quits the pager
    early, the rest of the output is dropped quietly."""
    command = os.environ.get("KEXTLOG_PAGER", os.environ.get("PAGER", "less"))
    words = shlex.split(command)
    if not enabled or not sys.stdout.isatty() or words in ([], ["cat"]):
        yield
        return
    environment = {"LESS": "FRSXMK", "LESSCHARSET": "utf-8", **os.environ}
    sys.stdout.flush()
    try:
        pager = subprocess.Popen(words, stdin=subprocess.PIPE, env=environment)
    except OSError:  # no such pager: write to the terminal itself
        yield
        return
    assert pager.stdin is not None
    terminal = os.dup(sys.stdout.fileno())
    os.dup2(pager.stdin.fileno(), sys.stdout.fileno())
    pager.stdin.close()
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:  # the reader quit the pager: drop what is left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        with suppress(BrokenPipeError):
            sys.stdout.flush()
    finally:
        os.dup2(terminal, sys.stdout.fileno())
        os.close(terminal)
        # The pager owns the terminal until it ends: Ctrl-C is for it (less -K).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            pager.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


# --- the schema -----------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade_command(db: DbOption = None) -> None:
    """Create the store or bring its schema to the newest revision; print the revision.

    \b
    Examples:
      kextlog db upgrade
      kextlog db upgrade --db /var/lib/kextlog/kextlog.db
    """
    from . import migrate, store

    url = store.database_url(db)
    migrate.upgrade(url).dispose()
    sys.stdout.write(f"{migrate.current(url) or 'none'}\n")


@db_app.command("current")
def db_current_command(db: DbOption = None) -> None:
    """Print the schema revision of the store ("none" for an empty database).

    \b
    Examples:
      kextlog db current
      KEXTLOG_DB=/tmp/test.db kextlog db current
    """
    from . import migrate, store

    sys.stdout.write(f"{migrate.current(store.database_url(db)) or 'none'}\n")


@db_app.command("check")
def db_check_command(
    db: DbOption = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="SQLite's quick_check: faster, leaves out the indexes."),
    ] = False,
) -> None:
    """Check the store, read-only: SQLite's integrity_check (or quick_check)
    and foreign keys, then kextlog's own accounting: the schema revision is
    known, each instance's high-water mark covers its stored records, no loss
    overlaps a stored record or another loss, and each instance's seqs add
    up (stored, lost, filtered, pruned). Exits 0 when all is well, 1 when not.

    \b
    Examples:
      kextlog db check
      kextlog db check --quick --db /var/lib/kextlog/kextlog.db
    """
    from . import check, store

    report = check.check(store.database_url(db), quick=quick)
    sys.stdout.write("\n".join(check.report_lines(report)) + "\n")
    if report.failed:
        raise DatabaseError(check.summary(report))


# --- producing ------------------------------------------------------------


class StatusFormat(str, Enum):
    TEXT = "text"
    JSON = "json"


class SocketType(str, Enum):
    SEQPACKET = "seqpacket"
    STREAM = "stream"


@app.command("ingest")
def ingest_command(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="Where records come from: kctl:NAME (a kext's kernel control, macOS), "
            "dev:PATH (/dev/kextlog of the Linux module), "
            "unix:PATH (the simulator, or any producer of the protocol) or kmsg (the Linux "
            "kernel's own log). Repeatable: one daemon, one writer, several producers. "
            "Default: the configuration file's sources.",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Read the settings from FILE (TOML, see docs/configuration.md); default "
            "/etc/kextlog/kextlog.toml when it exists. Options given here win over it; "
            "SIGHUP reads it again.",
        ),
    ] = None,
    check_config: Annotated[
        bool,
        typer.Option(
            "--check-config",
            help="Check the configuration file and the options, print the settings in effect "
            "(as a configuration file) and exit; nothing is opened or created.",
        ),
    ] = False,
    kmsg_path: Annotated[
        str | None,
        typer.Option(
            metavar="PATH", help="Read kmsg records from PATH (a capture, a FIFO) [/dev/kmsg]."
        ),
    ] = None,
    kmsg_boot_id: Annotated[
        str | None,
        typer.Option(
            metavar="UUID",
            help="The boot a kmsg capture comes from (default: this boot's).",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Store what the kmsg sources hold now, then exit (as dmesg)."),
    ] = False,
    retain: Annotated[
        str | None,
        typer.Option(
            metavar="LEVELS=AGE,...",
            help="Remove records older than their level's age while running, e.g. "
            "'trace..debug=1d,info=30d,warning..error=365d' (levels not named are kept).",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE",
            help="While running, remove the oldest records to keep the store under SIZE "
            "(e.g. 2GB).",
        ),
    ] = None,
    db: DbOption = None,
    echo: Annotated[
        bool, typer.Option("--echo", help="Print each record once it is stored.")
    ] = False,
    min_level: Annotated[
        str | None,
        typer.Option(
            "--min-level",
            metavar="LEVEL",
            help="Store LEVEL and above; lower records are acknowledged and counted as "
            "filtered [trace].",
        ),
    ] = None,
    batch_records: Annotated[
        int | None,
        typer.Option(help="Commit after this many records (1 to 1,000,000)... [10000]"),
    ] = None,
    batch_seconds: Annotated[
        float | None,
        typer.Option(help="...or this many seconds (0.001 to 60), whichever comes first [0.05]."),
    ] = None,
    syslog: Annotated[
        bool | None,
        typer.Option(
            "--syslog/--no-syslog",
            help="Send the daemon's own messages to syslog too (facility daemon), as the "
            "service files do.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="NAME",
            help="The host name the instances are stored under (default: this machine's).",
        ),
    ] = None,
) -> None:
    """Store what producers send, until SIGINT or SIGTERM (then flush and exit 0).

    Applies schema migrations at start, resumes each producer after what the
    store already holds, and acknowledges records only once committed.

    Settings come from the options, then the configuration file, then the
    defaults. SIGHUP commits what is held, reads the configuration again and
    reopens the database (batching, --min-level, retention and the database
    may change; sources and syslog need a restart). The store is created
    private: directory 0750, files 0640, group adm (admin on macOS); a
    database path that other users could change is refused.

    \b
    Examples:
      sudo kextlog ingest --source kctl:com.github.kextlog.bsd-kext-log
      kextlog ingest --source unix:/tmp/kextlog-sim.sock
      kextlog ingest --source unix:/run/a.sock --source unix:/run/b.sock --min-level info
      sudo kextlog ingest --source kmsg --once
      kextlog ingest --source kmsg --retain 'trace..debug=1d,info=30d' --max-size 2GB
      sudo kextlog ingest --config /etc/kextlog/kextlog.toml --check-config
    """
    # First: a stop asked for while ingest starts is a clean stop too.
    stop = _stop_on_signals(threading.Event())
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda _signal, _frame: reload.set())

    from . import config, ingest, render, status, store
    from .kmsg import DEVICE, KmsgSource
    from .levels import parse_level
    from .sources import exclusive_key, parse_source
    from .wire import LogFrame

    # The options, checked as the configuration file's values are.
    flags = config.IngestConfig(
        sources=tuple(source) if source else None,
        database=_option("--db", config.check("database"), db or os.environ.get("KEXTLOG_DB")),
        min_level=_option("--min-level", parse_level, min_level),
        batch_records=_option("--batch-records", config.check("batch.records"), batch_records),
        batch_seconds=_option("--batch-seconds", config.check("batch.seconds"), batch_seconds),
        retain=_option("--retain", config.check("retention.retain"), retain),
        max_size=_option("--max-size", config.check("retention.max_size"), max_size),
        kmsg_path=_option("--kmsg-path", config.check("kmsg.path"), kmsg_path),
        syslog=syslog,
    )

    def settings() -> config.IngestConfig:
        read = config.file_read(config_file)
        if read is not None:
            _check_owned(read, "the configuration", regular=True)
        return flags.over(config.load(read))

    started = settings()
    if not started.sources:
        raise UsageError("no source: give --source, or sources in the configuration file")
    sources = [
        parse_source(
            spec, kmsg_path=started.kmsg_path or DEVICE, kmsg_boot_id=kmsg_boot_id, once=once
        )
        for spec in started.sources
    ]
    for source in sources:
        if isinstance(source, KmsgSource):  # a file root is pointed at, read as records
            _check_owned(Path(source.path), "the kmsg source")
    options = _ingest_options(started, sources)
    url = store.database_url(started.database)
    if check_config:
        _check_store(url)
        sys.stdout.write(_settings_file(started, options, url, config_file))
        return
    os.umask(store.PRIVATE_UMASK)  # what ingest writes besides SQLite's files is private too
    live = _LiveLine() if sys.stderr.isatty() and not echo else None
    stderr = _log_to_stderr(clear_line=live is not None)
    if started.syslog:
        _log_to_syslog(started.syslog_socket or config.DEFAULT_SYSLOG_SOCKET, stderr)
    log = logging.getLogger("kextlog.ingest")
    echo_record = None
    if echo:
        local = render.zone(utc=False)

        def echo_record(session: ingest.Session, frame: LogFrame) -> None:
            record = frame.record(session.hello.instance, session.source.spec)
            sys.stdout.write(render.record_short(record, local) + "\n")

    # The stores this daemon holds (status.Claim), by URL: the one it
    # writes, and while a reload switches, the next.  Another ingest on
    # one of them, or on one of the producers, is refused.
    claims: dict[str, status.Claim] = {}

    def claim(url: str) -> None:
        key = _url_key(url)
        if key not in claims:  # one per store: a second lock would be the first's
            claims[key] = status.Claim(url, host)

    def publish(snapshot: dict) -> None:
        # Beside the database the daemon writes to now (a reload may move it).
        current = daemon.writer.engine.url.render_as_string(hide_password=False)
        claims[current].publish(redact_all(snapshot))  # error texts may quote a URL
        if snapshot["running"]:
            # The store it left has its last state (running false), and one
            # a failed reload claimed never had any: let them go.
            for key in [key for key in claims if key != current]:
                claims.pop(key).release()
        if live is not None:
            live(snapshot)

    def reopen() -> tuple[store.Writer, ingest.IngestOptions]:
        fresh = settings()
        fresh_options = _ingest_options(fresh, sources)
        fresh_url = store.database_url(fresh.database)
        claim(fresh_url)
        writer = _open_store(fresh_url, host)
        restart = [
            key
            for key in ("sources", "kmsg_path", "syslog", "syslog_socket")
            if getattr(fresh, key) != getattr(started, key)
        ]
        if restart:
            log.warning("reload: %s changed: restart ingest to apply", ", ".join(restart))
        log.info(
            "reloaded %s: database %s, batches of %d records or %g s, min level %s, retention %s",
            config.file_read(config_file) or "(no configuration file)",
            redact(fresh_url),
            fresh_options.batch_records,
            fresh_options.batch_seconds,
            fresh_options.min_level.label,
            "on" if fresh_options.retention is not None else "off",
        )
        return writer, fresh_options

    with ExitStack() as held:
        held.callback(lambda: [each.release() for each in claims.values()])
        claim(url)
        for source in sources:
            key = exclusive_key(source)
            if key is not None:
                held.callback(status.claim_source(source.spec, key))
        daemon = ingest.Ingest(
            _open_store(url, host),
            options,
            stop,
            echo=echo_record,
            publish=publish,
            reload=reload,
            reopen=reopen,
        )
        totals = daemon.run()
    if live is not None:
        live.finish()
    if daemon.failures:
        raise SourceError("; ".join(daemon.failures))
    log.info(
        "stopped: %d records stored, %d lost, %d filtered",
        totals.stored,
        totals.lost,
        totals.filtered,
    )


def _ingest_options(settings: IngestConfig, sources: list[Source]) -> IngestOptions:
    """IngestOptions from settings (config.IngestConfig); the built-in
    defaults where they say nothing."""
    from .ingest import IngestOptions
    from .retention import RetentionPolicy

    retention = None
    if settings.retain is not None or settings.max_size is not None:
        retention = RetentionPolicy.parse(settings.retain or "", settings.max_size)
    said = {
        "min_level": settings.min_level,
        "batch_records": settings.batch_records,
        "batch_seconds": settings.batch_seconds,
    }
    return IngestOptions(
        sources=sources,
        retention=retention,
        **{name: value for name, value in said.items() if value is not None},
    )


def _check_store(url: str) -> None:
    """Refuses a database that others could change (store.check_private)."""
    from . import store

    path = store.sqlite_path(url)
    if path is not None:
        store.check_private(path)


def _url_key(url: str) -> str:
    """A store's URL as its engine renders it (ingest's claims are by it)."""
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=False)


def _check_owned(path: Path, what: str, *, regular: bool = False) -> None:
    """Refuses what ingest reads when another user could change it (paths.check_owned)."""
    from . import paths

    try:
        paths.check_owned(path, regular=regular)
    except paths.UnsafePath as error:
        raise paths.UnsafePath(f"refusing {what} {path}: {error}") from None


def _open_store(url: str, host: str | None) -> Writer:
    """The store's writer, on a database at the newest schema (checked:
    store.write_engine); its instances under host (None: this machine's
    name)."""
    from . import migrate, store

    return store.Writer(migrate.upgrade(url), host=host)


def _settings_file(
    settings: IngestConfig, options: IngestOptions, url: str, config_file: Path | None
) -> str:
    """--check-config: the settings in effect, as a configuration file that
    loads back to the same settings; never a password (as ***)."""
    from . import config
    from .kmsg import DEVICE

    value = config.toml_value
    read = escape(str(config.file_read(config_file) or "no configuration file"), newlines=True)
    lines = [
        f"# kextlog ingest: the settings in effect ({read}, then the options, then the defaults)",
        f"sources = {value(list(settings.sources or ()))}",
        f"database = {value(redact(url))}",
        f"min_level = {value(options.min_level.label)}",
        f"syslog = {value(bool(settings.syslog))}",
        f"syslog_socket = {value(settings.syslog_socket or config.DEFAULT_SYSLOG_SOCKET)}",
        "",
        "[batch]",
        f"records = {value(options.batch_records)}",
        f"seconds = {value(options.batch_seconds)}",
        "",
        "[kmsg]",
        f"path = {value(settings.kmsg_path or DEVICE)}",
    ]
    retention = {"retain": settings.retain, "max_size": settings.max_size}
    if any(retention.values()):
        lines += ["", "[retention]"]
        lines += [f"{key} = {value(item)}" for key, item in retention.items() if item]
    return "\n".join(lines) + "\n"


@app.command("status")
def status_command(
    db: DbOption = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="NAME",
            help="For a shared store (a URL): the daemon that ingest --host NAME runs on this "
            "machine (default: this machine's name).",
        ),
    ] = None,
    output: Annotated[
        StatusFormat, typer.Option("--output", "-o", help="Output format.")
    ] = StatusFormat.TEXT,
) -> None:
    """Show the ingest daemon's live state: per source, connected or not, the
    instance, the last committed seq, the lag, the kext's ring fill and losses.

    Exits 0 while ingest runs, 3 when it does not (as systemctl status).

    \b
    Examples:
      kextlog status
      kextlog status -o json
      kextlog status --db postgresql://kextlog@db.example.com/kextlog --host build-1
    """
    import json

    from . import status, store

    url = store.database_url(db)
    current = status.read_status(url, host)
    if current is None:
        pid = status.starting(url, host)
        if pid is None:
            shown = status.status_path(url, host)
            sys.stdout.write(f"ingest: never ran on this store (no {shown})\n")
            raise typer.Exit(3)
        if output is StatusFormat.JSON:
            sys.stdout.write(json.dumps({"state": "starting", "pid": pid}) + "\n")
        else:
            sys.stdout.write(f"ingest: starting (pid {pid}), no state published yet\n")
        return
    if output is StatusFormat.JSON:
        sys.stdout.write(json.dumps({**current.snapshot, "state": current.state}) + "\n")
    else:
        sys.stdout.write("\n".join(status.describe(current)) + "\n")
    if not current.alive:
        raise typer.Exit(3)


@app.command("simulate")
def simulate_command(
    socket_path: Annotated[
        Path, typer.Option("--socket", metavar="PATH", help="The Unix socket to serve.")
    ],
    socket_type: Annotated[
        SocketType,
        typer.Option(
            "--socket-type",
            help="seqpacket stands for a SOCK_DGRAM kernel control, stream for SOCK_STREAM.",
        ),
    ] = SocketType.SEQPACKET,
    rate: Annotated[
        int,
        typer.Option(min=0, max=10**9, help="Records per second; 0 as fast as possible."),
    ] = 10_000,
    count: Annotated[
        int,
        typer.Option(min=0, max=INT64_MAX, help="Stop generating after N records (0: never)."),
    ] = 0,
    duration: Annotated[
        float,
        typer.Option(
            min=0,
            max=10**9,
            callback=_finite,
            help="Stop generating after S seconds (0: never).",
        ),
    ] = 0,
    ring: Annotated[
        int,
        typer.Option(
            min=1,
            max=2**32 - 1,
            help="Ring capacity in records (default: 10 s at the default rate).",
        ),
    ] = 100_000,
    record: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write every generated record as a JSON line (query's json format).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="Workload seed.")] = 1,
    quiet_losses: Annotated[
        bool,
        typer.Option(
            "--quiet-losses",
            help="Do not print records the ring cannot take (the kernel printf stand-in).",
        ),
    ] = False,
) -> None:
    """Stand in for the loaded kext: serve its protocol with records from a
    KAuth-like workload, through the kext's own C core.

    After --count or --duration it keeps serving until every record is
    acknowledged (or SIGINT/SIGTERM), then prints its counters as one JSON line.

    \b
    Examples:
      kextlog simulate --socket /tmp/kextlog-sim.sock
      kextlog simulate --socket /tmp/s.sock --count 100000 --rate 0 --record sent.jsonl
    """
    import json

    from .simulator import SimulateOptions, simulate

    options = SimulateOptions(
        socket_path=str(socket_path),
        stream=socket_type is SocketType.STREAM,
        rate=rate,
        count=count,
        duration=duration,
        ring=ring,
        record=record,
        seed=seed,
        quiet_losses=quiet_losses,
    )
    _log_to_stderr()
    counters = simulate(options, _stop_on_signals(threading.Event()))
    sys.stdout.write(json.dumps(counters) + "\n")


def _stop_on_signals(stop: threading.Event) -> threading.Event:
    """SIGINT and SIGTERM ask for a clean stop instead of killing."""

    def request_stop(_signal: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


class _DaemonFormatter(logging.Formatter):
    """`kextlog ingest: message`, like the command that says it."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prefix}{record.name.replace('.', ' ')}: {_logged(record)}"


def _logged(record: logging.LogRecord) -> str:
    """A diagnostic as it may be written: one line, no password, nothing
    that drives a terminal (it may quote a producer's text)."""
    return escape(redact(record.getMessage()), newlines=True)


class _LiveLine:
    """Ingest's one-line progress on a terminal, rewritten in place."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def __call__(self, snapshot: dict) -> None:
        now, stored = snapshot["updated_ns"] / 1e9, snapshot["stored"]
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (stored - self._last[1]) / (now - self._last[0])
        self._last = (now, stored)
        connected = sum(source["connected"] for source in snapshot["sources"])
        line = (
            f"stored {stored:,} ({rate:,.0f}/s), lost {snapshot['lost']:,}, "
            f"{connected}/{len(snapshot['sources'])} sources connected"
        )
        sys.stderr.write(f"\r\033[K{line}")
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")


def _log_to_stderr(clear_line: bool = False) -> logging.Handler:
    """The daemon's own diagnostics go to stderr, never into the store; over
    the live line when there is one (it is redrawn within a second)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DaemonFormatter("\r\033[K" if clear_line else ""))
    root = logging.getLogger("kextlog")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


class _SyslogFormatter(logging.Formatter):
    """`kextlog[PID]: ingest: message`, the usual syslog tag."""

    def format(self, record: logging.LogRecord) -> str:
        return f"kextlog[{record.process}]: {record.name.removeprefix('kextlog.')}: " + (
            _logged(record)
        )


def _log_to_syslog(address: str, stderr: logging.Handler) -> None:
    """The daemon's diagnostics to syslog too, facility daemon.  Where stderr
    is the journal already (systemd sets JOURNAL_STREAM to its device and
    inode), to syslog instead, or journald would have each twice.  With no
    syslog at address, one warning, and stderr alone."""
    import socket
    from logging.handlers import SysLogHandler

    class Syslog(SysLogHandler):
        def handleError(self, record: logging.LogRecord) -> None:
            """A syslog that went away (it reconnects at the next message)
            costs that message, never a traceback on stderr."""

    try:
        _check_owned(Path(address), "the syslog socket")
    except KextlogError as error:
        logging.getLogger("kextlog.ingest").warning("%s: messages go to stderr only", error)
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(address)
    except OSError as error:
        logging.getLogger("kextlog.ingest").warning(
            "no syslog at %s (%s): messages go to stderr only", address, error.strerror
        )
        return
    finally:
        probe.close()
    handler = Syslog(address, facility=SysLogHandler.LOG_DAEMON)
    handler.setFormatter(_SyslogFormatter())
    root = logging.getLogger("kextlog")
    root.addHandler(handler)
    with suppress(OSError, ValueError):
        info = os.fstat(sys.stderr.fileno())
        if os.environ.get("JOURNAL_STREAM") == f"{info.st_dev}:{info.st_ino}":
            root.removeHandler(stderr)


# --- entry point ----------------------------------------------------------


def _window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """--since and --until as UTC nanoseconds; the first may not be later."""
    from .timespec import parse_time

    first, last = _option("--since", parse_time, since), _option("--until", parse_time, until)
    if first is not None and last is not None and first > last:
        raise UsageError(f"--since {since!r} is later than --until {until!r}")
    return first, last


def _option(name: str, parse: Callable[[Any], T], value: object | None) -> T | None:
    """parse(value), with the option's name in front of a UsageError."""
    if value is None:
        return None
    try:
        return parse(value)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    line = escape(redact(" ".join(message.split())), newlines=True)
    sys.stderr.write(f"kextlog: error: {line}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _take_pairs(group: Any, command: str, option: str) -> None:
    """Typer cannot declare a repeatable option of two values (`-p NAME VALUE`,
    as sqlite-utils); Click can: the option is declared as one value per use
    with an identity parser, and takes two here."""
    (parameter,) = (p for p in group.commands[command].params if p.name == option)
    parameter.nargs = 2


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run the app, turn every error into one line."""
    command = typer.main.get_command(app)
    _take_pairs(command, "sql", "param")
    try:
        code = command.main(args=argv, prog_name="kextlog", standalone_mode=False)
        sys.stdout.flush()
    except KextlogError as exc:
        _fail(str(exc), exc.exit_code)
    except ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `kextlog` or `kextlog db` alone
            sys.stderr.write(exc.format_message() + "\n")
            raise SystemExit(2) from None
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        raise SystemExit(130) from None
    except BrokenPipeError:
        # The reader went away (`kextlog query | head`): stop quietly, with
        # Click's exit status for this case.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    except Exception as exc:  # a failure no layer below typed (disk, permissions, a bug)
        if os.environ.get("KEXTLOG_DEBUG"):
            import traceback

            sys.stdout.flush()
            sys.stderr.write(redact("".join(traceback.format_exception(exc))))
            raise SystemExit(1) from None
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        if type(cause).__module__.startswith("psycopg"):  # the server refused, or is not there
            _fail(f"PostgreSQL: {cause}", 1)
        _fail(f"{type(cause).__name__}: {cause} (KEXTLOG_DEBUG=1 shows the traceback)", 1)
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
