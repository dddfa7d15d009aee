"""The `kextlog` command.  Thin: each command parses its options, calls one
library function and renders the result.

Modules that are slow to import (SQLAlchemy through store's engines,
stats and sql, Alembic through migrate, cffi through wire/ingest/simulator,
Datasette through web) are imported inside the commands that need them, so
`kextlog query` on SQLite never loads SQLAlchemy, Alembic, cffi or
Datasette.  Every error ends as one line on stderr,
`kextlog: error: ...`, and a non-zero exit; never a traceback."""

from __future__ import annotations

import os
import signal
import sys
import threading

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "kextlog":
    # Ctrl-C while it loads: a quiet 130 too (main() then raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, lambda _signal, _frame: os._exit(130))

from collections.abc import Sequence
from contextlib import closing
from typing import NoReturn, cast

import typer

# Typer vendors Click (since 0.26, which pyproject requires).
from typer._click.exceptions import ClickException
from typer._click.exceptions import UsageError as ClickUsageError

from . import cli_options as o
from .cli_db import db_app
from .cli_options import option, window
from .errors import DatabaseError, KextlogError, UsageError
from .query_output import write_entries
from .redact import redact
from .render.formats import RecordFormat, SqlFormat, StatsFormat, StatusFormat
from .render.text import escape
from .terminal import color, hard_time_limit, pager, stop_on_signals
from .web.command import web_command

app = typer.Typer(
    name="kextlog",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(db_app, name="db")
app.command("web")(web_command)  # beside its server: kextlog_store/web


@app.callback()
def _kextlog(version: o.Version = False) -> None:
    """Every log record from your macOS kernel extension, in a store you can query."""


# --- reading --------------------------------------------------------------


@app.command("query")
def query_command(
    db: o.Db = None,
    level: o.Levels = None,
    since: o.Since = None,
    until: o.Until = None,
    pid: o.Pids = None,
    process: o.Processes = None,
    grep: o.Grep = None,
    instance: o.Instance = None,
    source: o.Sources = None,
    host: o.Hosts = None,
    lines: o.Lines = None,
    reverse: o.Reverse = False,
    follow: o.Follow = False,
    cursor: o.At = None,
    after_cursor: o.After = None,
    show_cursor: o.ShowCursor = False,
    output: o.RecordOutput = RecordFormat.SHORT,
    utc: o.Utc = False,
    no_pager: o.NoPager = False,
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
    from . import query
    from .follow import follow as follow_log
    from .levels import parse_level_range
    from .records import Cursor
    from .store.engine import reader
    from .store.location import database_url

    if follow and output is RecordFormat.TABLE:
        raise UsageError("-o table aligns its columns over all the rows: it cannot --follow")
    since_ns, until_ns = window(since, until)
    record_filter = query.RecordFilter(
        levels=option("--level", parse_level_range, level),
        since_ns=since_ns,
        until_ns=until_ns,
        pids=tuple(pid or ()),
        processes=tuple(process or ()),
        grep=grep,
        instance=instance,
        sources=tuple(source or ()),
        hosts=tuple(host or ()),
        cursor=option("--cursor", Cursor.parse, cursor),
        after_cursor=option("--after-cursor", Cursor.parse, after_cursor),
        lines=lines,
        reverse=reverse,
    )
    store = reader(database_url(db))
    try:
        found = (follow_log if follow else query.found)(store, record_filter)
        with closing(found):
            write_entries(found, record_filter, output, utc, follow, show_cursor, no_pager)
    finally:
        store.dispose()


# Exit status of `kextlog sql` when --max-rows or --max-bytes cut the result short.
EXIT_TRUNCATED = 3


@app.command("sql")
def sql_command(
    statement: o.Statement,
    db: o.Db = None,
    param: o.Parameters = None,
    output: o.SqlOutput = SqlFormat.TABLE,
    timeout: o.Timeout = 10.0,
    max_rows: o.MaxRows = 10_000,
    max_bytes: o.MaxBytes = o.MAX_BYTES,
    no_pager: o.NoPager = False,
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
    from . import sql
    from .render.rows import truncation_note, write_rows
    from .store.location import database_url
    from .store.retention import parse_size

    if statement == "-":
        statement = sys.stdin.read()
    size = option("--max-bytes", parse_size, max_bytes)
    # Each value is a (NAME, VALUE) pair (see take_pairs); always by name,
    # so that a :NAME without -p says which one is missing.
    parameters = sql.sql_parameters(cast("list[tuple[str, str]]", param or []))
    url = database_url(db)
    with hard_time_limit(timeout, lambda: str(sql.time_limit_error(timeout))):
        result = sql.run_sql(
            url, statement, parameters, time_limit=timeout, max_rows=max_rows, max_bytes=size
        )
    with pager(enabled=not no_pager):
        written = write_rows(
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
        sys.stderr.write(truncation_note(written, truncated, max_bytes) + "\n")
        raise typer.Exit(EXIT_TRUNCATED)


@app.command("stats")
def stats_command(
    db: o.Db = None,
    since: o.Since = None,
    until: o.Until = None,
    top: o.Top = 10,
    bucket: o.Bucket = None,
    output: o.StatsOutput = StatsFormat.TEXT,
    utc: o.Utc = False,
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
    from . import stats, timespec
    from .render.figures import write_stats
    from .store.location import database_url

    since_ns, until_ns = window(since, until)
    result = stats.collect(
        database_url(db),
        since_ns=since_ns,
        until_ns=until_ns,
        top=top,
        bucket_ns=option("--bucket", timespec.parse_duration, bucket),
        utc=utc,
    )
    write_stats(result, output, sys.stdout, utc=utc, color=color())


# --- retention ------------------------------------------------------------


@app.command("prune")
def prune_command(
    older_than: o.OlderThan = None,
    level: o.Levels = None,
    max_size: o.MaxSize = None,
    db: o.Db = None,
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
    from . import timespec
    from .levels import parse_level_range
    from .render.figures import prune_lines, prune_overflow
    from .store import retention
    from .store.location import database_url

    if level is not None and older_than is None:
        raise UsageError("--level says which records --older-than removes: give --older-than")
    if older_than is None and max_size is None:
        raise UsageError("nothing to prune: give --older-than, --max-size or both")
    policy = retention.RetentionPolicy.older_than(
        option("--older-than", timespec.parse_duration, older_than),
        option("--level", parse_level_range, level),
        option("--max-size", retention.parse_size, max_size),
    )
    result = retention.prune(database_url(db), policy)
    sys.stdout.write("\n".join(prune_lines(result)) + "\n")
    if result.fits is False:
        assert policy.max_size_bytes is not None
        raise DatabaseError(prune_overflow(result, policy.max_size_bytes))


# --- producing ------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    source: o.IngestSources = None,
    config_file: o.ConfigFile = None,
    check_config: o.CheckConfig = False,
    kmsg_path: o.KmsgPath = None,
    kmsg_boot_id: o.KmsgBootId = None,
    once: o.Once = False,
    retain: o.Retain = None,
    max_size: o.KeepUnder = None,
    db: o.Db = None,
    echo: o.Echo = False,
    min_level: o.MinLevel = None,
    batch_records: o.BatchRecords = None,
    batch_seconds: o.BatchSeconds = None,
    syslog: o.Syslog = None,
    host: o.IngestHost = None,
    seal_interval: o.SealInterval = None,
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
    stop = stop_on_signals(threading.Event())
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda _signal, _frame: reload.set())

    from .ingest.daemon import Daemon

    flags = o.ingest_flags(
        source,
        db,
        min_level,
        batch_records,
        batch_seconds,
        retain,
        max_size,
        kmsg_path,
        syslog,
        seal_interval,
    )
    daemon = Daemon(flags, config_file, kmsg_boot_id=kmsg_boot_id, once=once, host=host)
    if check_config:
        sys.stdout.write(daemon.settings_file())
        return
    daemon.run(stop, reload, echo=echo)


@app.command("status")
def status_command(
    db: o.Db = None, host: o.StatusHost = None, output: o.StatusOutput = StatusFormat.TEXT
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
    from . import status
    from .render.figures import never_ran, write_starting, write_status
    from .store.location import database_url

    url = database_url(db)
    current = status.read_status(url, host)
    if current is None:
        pid = status.starting(url, host)
        if pid is None:
            sys.stdout.write(never_ran(status.status_path(url, host)) + "\n")
            raise typer.Exit(3)
        write_starting(pid, output, sys.stdout)
        return
    write_status(current, output, sys.stdout)
    if not current.alive:
        raise typer.Exit(3)


@app.command("simulate")
def simulate_command(
    socket_path: o.SocketPath,
    socket_type: o.SocketKind = o.SocketType.SEQPACKET,
    rate: o.Rate = 10_000,
    count: o.Count = 0,
    duration: o.Duration = 0,
    ring: o.Ring = 100_000,
    record: o.RecordFile = None,
    seed: o.Seed = 1,
    quiet_losses: o.QuietLosses = False,
    resume_timeout: o.ResumeTimeout = 1.0,
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

    from . import logs
    from .simulator import SimulateOptions, simulate

    options = SimulateOptions(
        socket_path=str(socket_path),
        stream=socket_type is o.SocketType.STREAM,
        rate=rate,
        count=count,
        duration=duration,
        ring=ring,
        record=record,
        seed=seed,
        quiet_losses=quiet_losses,
        resume_timeout=resume_timeout,
    )
    logs.to_stderr()
    counters = simulate(options, stop_on_signals(threading.Event()))
    sys.stdout.write(json.dumps(counters) + "\n")


# --- entry point ----------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    line = escape(redact(" ".join(message.split())), newlines=True)
    sys.stderr.write(f"kextlog: error: {line}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run the app, turn every error into one line."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        command = typer.main.get_command(app)
        o.take_pairs(command, "sql", "param")
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
