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
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from . import __version__
from .errors import KextlogError, UsageError
from .render import RecordFormat, SqlFormat

try:  # Typer vendors Click since 0.2x
    from typer._click.exceptions import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older Typer with Click installed beside it
    from click.exceptions import ClickException  # type: ignore[no-redef]
    from click.exceptions import UsageError as ClickUsageError  # type: ignore[no-redef]

T = TypeVar("T")

app = typer.Typer(
    name="kextlog",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(
    help="Create or upgrade the store's schema, show its revision.",
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
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            "-p",
            metavar="LEVEL|A..B",
            help="LEVEL and everything more severe (trace, debug, info, warning, error; "
            "warn, err), or a range A..B.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            "-S",
            metavar="TIME",
            help="Records at or after TIME: 30s, 15m, 1h30m, '2h ago', 2026-11-27, "
            "'2026-11-27 10:00', 2026-11-27T10:00:00Z, today, yesterday, @EPOCH.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", "-U", metavar="TIME", help="Records at or before TIME."),
    ] = None,
    pid: Annotated[
        list[int] | None,
        typer.Option("--pid", metavar="PID", help="Records of this pid (repeatable)."),
    ] = None,
    lines: Annotated[
        int | None,
        typer.Option("--lines", "-n", min=0, metavar="N", help="Only the last N records."),
    ] = None,
    output: Annotated[
        RecordFormat, typer.Option("--output", "-o", help="Output format.")
    ] = RecordFormat.SHORT,
    utc: Annotated[bool, typer.Option("--utc", help="Show times in UTC, not local time.")] = False,
) -> None:
    """Show stored records in the order they were logged.

    Where records are missing, the short format shows a marked line in place,
    as journalctl shows "-- missed N kernel messages --":

    \b
      -- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --

    Reasons: ring full (the kext's ring was full, they went to the kernel's
    printf), no longer held (acknowledged to an earlier client and released),
    never sent (seqs skipped by the producer). A marker stands at the time of
    the first missing record; when that is unknown, just before the next
    stored record of its instance, else at the time the loss was recorded.
    It comes before records of the same time. --since/--until apply to
    markers too; --level and --pid never hide them (the lost records could
    have been anything). When -n N leaves older records out, the markers
    before the first record shown go with them; every later marker is shown,
    also after the last record: records are missing at the end of the log.

    -o json prints one record object per line and no markers: read losses
    with kextlog sql -o json "SELECT * FROM lost".

    \b
    Examples:
      kextlog query --level error --since 1h
      kextlog query -p warning..error --pid 312 -n 20 -o json
      kextlog query --since '2026-11-27 10:00' --until '30m ago' --utc
      kextlog query --since 1h | grep '^-- .* lost ('
    """
    from . import query, render, store, timespec
    from .levels import parse_level_range

    record_filter = query.RecordFilter(
        levels=_option("--level", parse_level_range, level),
        since_ns=_option("--since", timespec.parse_time, since),
        until_ns=_option("--until", timespec.parse_time, until),
        pids=tuple(pid or ()),
        lines=lines,
    )
    first, last = record_filter.since_ns, record_filter.until_ns
    if first is not None and last is not None and first > last:
        raise UsageError(f"--since {since!r} is later than --until {until!r}")
    engine = store.read_engine(store.database_url(db))
    try:
        with closing(query.entries(engine, record_filter)) as found:
            render.write_records(found, output, sys.stdout, utc=utc)
    finally:
        engine.dispose()


@app.command("sql")
def sql_command(
    statement: Annotated[
        str, typer.Argument(metavar="SQL", help="One SELECT (or read-only PRAGMA); - reads stdin.")
    ],
    db: DbOption = None,
    output: Annotated[SqlFormat, typer.Option("--output", "-o", help="Output format.")] = (
        SqlFormat.TABLE
    ),
) -> None:
    """Run read-only SQL on the store; it cannot change anything or write any file.

    \b
    Examples:
      kextlog sql "SELECT level, count(*) FROM log GROUP BY level"
      kextlog sql -o json "SELECT * FROM lost"
      echo "PRAGMA table_info(records)" | kextlog sql -
    """
    from . import query, render, store

    if statement == "-":
        statement = sys.stdin.read()
    # Later: -p NAME VALUE parameters, a time limit and a row cap (issue 5).
    result = query.run_sql(store.database_url(db), statement)
    render.write_rows(result.columns, result.rows, output, sys.stdout)


# --- the schema -----------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade_command(db: DbOption = None) -> None:
    """Create the store or bring its schema to the newest revision; print the revision."""
    from . import migrate, store

    url = store.database_url(db)
    migrate.upgrade(url).dispose()
    sys.stdout.write(f"{migrate.current(url) or 'none'}\n")


@db_app.command("current")
def db_current_command(db: DbOption = None) -> None:
    """Print the schema revision of the store ("none" for an empty database)."""
    from . import migrate, store

    sys.stdout.write(f"{migrate.current(store.database_url(db)) or 'none'}\n")


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
        list[str],
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="Where records come from: kctl:NAME (a kext's kernel control, macOS) or "
            "unix:PATH (the simulator, or any producer of the protocol). Repeatable: one "
            "daemon, one writer, several producers.",
        ),
    ],
    db: DbOption = None,
    echo: Annotated[
        bool, typer.Option("--echo", help="Print each record once it is stored.")
    ] = False,
    min_level: Annotated[
        str,
        typer.Option(
            "--min-level",
            metavar="LEVEL",
            help="Store LEVEL and above; lower records are acknowledged and counted as filtered.",
        ),
    ] = "trace",
    batch_records: Annotated[
        int, typer.Option(min=1, help="Commit after this many records...")
    ] = 10_000,
    batch_seconds: Annotated[
        float, typer.Option(min=0.001, help="...or this many seconds, whichever comes first.")
    ] = 0.1,
) -> None:
    """Store what producers send, until SIGINT or SIGTERM (then flush and exit 0).

    Applies schema migrations at start, resumes each producer after what the
    store already holds, and acknowledges records only once committed.

    \b
    Examples:
      sudo kextlog ingest --source kctl:com.github.kextlog.bsd-kext-log
      kextlog ingest --source unix:/tmp/kextlog-sim.sock
      kextlog ingest --source unix:/run/a.sock --source unix:/run/b.sock --min-level info
    """
    from . import ingest, migrate, render, status, store
    from .levels import parse_level
    from .sources import parse_source
    from .wire import LogFrame

    sources = [parse_source(spec) for spec in source]
    options = ingest.IngestOptions(
        sources=sources,
        min_level=_option("--min-level", parse_level, min_level) or parse_level("trace"),
        batch_records=batch_records,
        batch_seconds=batch_seconds,
    )
    live = _LiveLine() if sys.stderr.isatty() and not echo else None
    _log_to_stderr(clear_line=live is not None)
    stop = _stop_on_signals(threading.Event())
    echo_record = None
    if echo:
        local = render.zone(utc=False)

        def echo_record(session: ingest.Session, frame: LogFrame) -> None:
            record = frame.record(session.hello.instance, session.source.spec)
            sys.stdout.write(render.record_short(record, local) + "\n")

    url = store.database_url(db)
    writer = store.Writer(migrate.upgrade(url))
    publisher = status.Publisher(url)

    def publish(snapshot: dict) -> None:
        publisher(snapshot)
        if live is not None:
            live(snapshot)

    daemon = ingest.Ingest(writer, options, stop, echo=echo_record, publish=publish)
    totals = daemon.run()
    if live is not None:
        live.finish()
    logging.getLogger("kextlog.ingest").info(
        "stopped: %d records stored, %d lost, %d filtered",
        totals.stored,
        totals.lost,
        totals.filtered,
    )


@app.command("status")
def status_command(
    db: DbOption = None,
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
    """
    import json

    from . import status, store

    url = store.database_url(db)
    current = status.read_status(url)
    if current is None:
        sys.stdout.write(f"ingest: never ran on this store (no {status.status_path(url)})\n")
        raise typer.Exit(3)
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
        int, typer.Option(min=0, help="Records per second; 0 as fast as possible.")
    ] = 10_000,
    count: Annotated[
        int, typer.Option(min=0, help="Stop generating after N records (0: never).")
    ] = 0,
    duration: Annotated[
        float, typer.Option(min=0, help="Stop generating after S seconds (0: never).")
    ] = 0,
    ring: Annotated[
        int,
        typer.Option(min=1, help="Ring capacity in records (default: 10 s at the default rate)."),
    ] = 100_000,
    record: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write every generated record as a JSON line (query's json format).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Workload seed.")] = 1,
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
        return f"{self.prefix}{record.name.replace('.', ' ')}: {record.getMessage()}"


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


def _log_to_stderr(clear_line: bool = False) -> None:
    """The daemon's own diagnostics go to stderr, never into the store; over
    the live line when there is one (it is redrawn within a second)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DaemonFormatter("\r\033[K" if clear_line else ""))
    root = logging.getLogger("kextlog")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


# --- entry point ----------------------------------------------------------


def _option(name: str, parse: Callable[[str], T], value: str | None) -> T | None:
    """parse(value), with the option's name in front of a UsageError."""
    if value is None:
        return None
    try:
        return parse(value)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"kextlog: error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run the app, turn every error into one line."""
    command = typer.main.get_command(app)
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
            raise
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        _fail(f"{type(cause).__name__}: {cause} (KEXTLOG_DEBUG=1 shows the traceback)", 1)
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
