"""The options of the `kextlog` commands, declared once (cli.py's signatures
name them), and the parsing every command shares: an option's value
checked with its name in the error (option), --since/--until (window)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from . import __version__
from .errors import UsageError
from .records import INT64_MAX, PID_MAX
from .render.formats import RecordFormat, SqlFormat, StatsFormat, StatusFormat

if TYPE_CHECKING:  # config imports the store's modules: only ingest loads it
    from .config import IngestConfig

T = TypeVar("T")


def option(name: str, parse: Callable[[Any], T], value: object | None) -> T | None:
    """parse(value), with the option's name in front of a UsageError."""
    if value is None:
        return None
    try:
        return parse(value)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None


def window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """--since and --until as UTC nanoseconds; the first may not be later.
    --until covers the whole unit of its last digit, so a displayed time given
    back includes its record (timespec.parse_until)."""
    from .timespec import parse_time, parse_until

    first, last = option("--since", parse_time, since), option("--until", parse_until, until)
    if first is not None and last is not None and first > last:
        raise UsageError(f"--since {since!r} is later than --until {until!r}")
    return first, last


def take_pairs(group: Any, command: str, name: str) -> None:
    """Typer cannot declare a repeatable option of two values (`-p NAME VALUE`,
    as sqlite-utils); Click can: the option is declared as one value per use
    with an identity parser (Parameters), and takes two here."""
    (parameter,) = (p for p in group.commands[command].params if p.name == name)
    parameter.nargs = 2


def ingest_flags(
    sources: list[str] | None,
    database: str | None,
    min_level: str | None,
    batch_records: int | None,
    batch_seconds: float | None,
    retain: str | None,
    max_size: str | None,
    kmsg_path: str | None,
    syslog: bool | None,
    seal_interval: str | None,
) -> IngestConfig:
    """The options of `kextlog ingest`, checked as the configuration file's values are."""
    from . import config
    from .levels import parse_level

    return config.IngestConfig(
        sources=tuple(sources) if sources else None,
        database=option("--db", config.check("database"), database or os.environ.get("KEXTLOG_DB")),
        min_level=option("--min-level", parse_level, min_level),
        batch_records=option("--batch-records", config.check("batch.records"), batch_records),
        batch_seconds=option("--batch-seconds", config.check("batch.seconds"), batch_seconds),
        retain=option("--retain", config.check("retention.retain"), retain),
        max_size=option("--max-size", config.check("retention.max_size"), max_size),
        kmsg_path=option("--kmsg-path", config.check("kmsg.path"), kmsg_path),
        syslog=syslog,
        seal_interval=option("--seal-interval", config.check("seal.interval"), seal_interval),
    )


def _identity(value: T) -> T:
    return value


def finite(value: float) -> float:
    """The callback of a float option: Click's ranges let nan through."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number")
    return value


def _complete_levels(incomplete: str) -> list[str]:
    """Shell completion of --level: the names, and ranges after `A..`."""
    names = ("trace", "debug", "info", "warning", "error")
    first, dots, _ = incomplete.partition("..")
    if dots:
        return [f"{first}..{name}" for name in names if f"{first}..{name}".startswith(incomplete)]
    return [name for name in names if name.startswith(incomplete.lower())]


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"kextlog {__version__}\n")
        raise typer.Exit()


Version = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
]

# --- shared by several commands ---------------------------------------------

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL_OR_PATH",
        show_default=False,
        help="The store: a SQLite file or an SQLAlchemy URL (anything with ://). "
        "Default: $KEXTLOG_DB, else the system store.",
    ),
]
Levels = Annotated[
    str | None,
    typer.Option(
        "--level",
        "-p",
        metavar="LEVEL|A..B",
        help="LEVEL and everything more severe (trace, debug, info, warning, error; "
        "warn, err; or a syslog priority as in journalctl: 0..7, emerg..debug, 3 = err), "
        "or the levels from A to B.",
        autocompletion=_complete_levels,
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        "-S",
        metavar="TIME",
        help="At or after TIME: 30s, 15m, 1h30m, '2h ago', -1h, 2026-11-27, "
        "'2026-11-27 10:00', 2026-11-27T10:00:00.5+01:00, today, yesterday, now, @EPOCH.",
    ),
]
Until = Annotated[
    str | None,
    typer.Option("--until", "-U", metavar="TIME", help="At or before TIME (as --since)."),
]
Utc = Annotated[bool, typer.Option("--utc", help="Show times in UTC, not local time.")]
NoPager = Annotated[
    bool,
    typer.Option(
        "--no-pager",
        help="Never page. (On a terminal, output goes through $KEXTLOG_PAGER, else $PAGER, "
        "else less; set either to '' or cat to never page.)",
    ),
]
MaxSize = Annotated[
    str | None,
    typer.Option(
        "--max-size",
        metavar="SIZE",
        help="Then remove the oldest records until the database fits in SIZE: 2GB, 500M "
        "(powers of 1024).",
    ),
]

# --- query -----------------------------------------------------------------

Pids = Annotated[
    list[int] | None,
    typer.Option(
        "--pid", min=0, max=PID_MAX, metavar="PID", help="Records of this pid (repeatable)."
    ),
]
Processes = Annotated[
    list[str] | None,
    typer.Option(
        "--process",
        metavar="NAME",
        help="Records of this process name: exact, or a glob with * ? [...] (repeatable).",
    ),
]
Grep = Annotated[
    str | None,
    typer.Option(
        "--grep",
        "-g",
        metavar="REGEX",
        help="Messages that match REGEX (RE2's syntax: no backreferences or lookaround); "
        "case-insensitive unless REGEX has an upper-case letter.",
    ),
]
Instance = Annotated[
    str | None,
    typer.Option(
        "--instance",
        metavar="ID|0|-N",
        help="Records of one kext instance: its id or a unique prefix of it; 0 the newest "
        "instance, -1 the one before, ... (as journalctl -b).",
    ),
]
Sources = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        metavar="SOURCE",
        help="Records read from this source, e.g. unix:/run/sim.sock (repeatable).",
    ),
]
Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        metavar="NAME",
        help="Records that ingest on host NAME stored (a shared store; repeatable).",
    ),
]
Lines = Annotated[
    int | None,
    typer.Option(
        "--lines", "-n", min=0, max=INT64_MAX, metavar="N", help="Only the last N records."
    ),
]
Reverse = Annotated[bool, typer.Option("--reverse", "-r", help="Newest first.")]
Follow = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-f",
        help="Then print new records as they are stored, until Ctrl-C. Starts with "
        "the last 10 unless -n, --since or a cursor says otherwise.",
    ),
]
At = Annotated[
    str | None,
    typer.Option("--cursor", metavar="CURSOR", help="Start at the record of CURSOR."),
]
After = Annotated[
    str | None,
    typer.Option("--after-cursor", metavar="CURSOR", help="Start after the record of CURSOR."),
]
ShowCursor = Annotated[
    bool,
    typer.Option(
        "--show-cursor",
        help="After the output, print '-- cursor: CURSOR' of the newest record shown.",
    ),
]
RecordOutput = Annotated[RecordFormat, typer.Option("--output", "-o", help="Output format.")]

# --- sql -------------------------------------------------------------------

# The default of `sql --max-bytes`: the result is held in memory before it
# is printed (a statement that runs out of time prints nothing), and a value
# being printed costs up to about seven times its size (Python's str, csv's
# four bytes a character, the encoded copy): 64 MB keeps the worst at some
# 500 MB beside a running daemon, and is still 10,000 rows of the log
# view's every column twenty times over.  A whole store goes out with
# --max-bytes 0, or `kextlog query -o csv`, which streams.
MAX_BYTES = "64MB"

Statement = Annotated[
    str, typer.Argument(metavar="SQL", help="One SELECT (or read-only PRAGMA); - reads stdin.")
]
Parameters = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME VALUE",
        # A pair per use: cli.main() makes this option take two values.
        parser=_identity,
        help="A value for :NAME in the SQL (repeatable). An integer such as 312 is "
        "passed as a number, anything else as text.",
    ),
]
SqlOutput = Annotated[SqlFormat, typer.Option("--output", "-o", help="Output format.")]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.001,
        max=86_400,
        callback=finite,
        metavar="SECONDS",
        help="Stop a statement that runs longer.",
    ),
]
MaxRows = Annotated[
    int,
    typer.Option(
        "--max-rows",
        min=0,
        max=INT64_MAX,
        metavar="N",
        help="Print at most N rows (0: all); more make the exit status 3.",
    ),
]
MaxBytes = Annotated[
    str,
    typer.Option(
        "--max-bytes",
        metavar="SIZE",
        help="Hold and print at most SIZE (e.g. 64MB, 1GB; 0: no limit) of the result, "
        "and no value longer; more make the exit status 3.",
    ),
]

# --- stats, prune, db check ---------------------------------------------------

Top = Annotated[
    int,
    typer.Option(
        "--top", min=1, max=INT64_MAX, metavar="N", help="The N processes with most records."
    ),
]
Bucket = Annotated[
    str | None,
    typer.Option(
        "--bucket",
        metavar="DURATION",
        help="The chart's bucket, e.g. 1m, 1h, 1d (default: at most 24 buckets).",
    ),
]
StatsOutput = Annotated[StatsFormat, typer.Option("--output", "-o", help="Output format.")]
OlderThan = Annotated[
    str | None,
    typer.Option(
        "--older-than",
        metavar="AGE",
        help="Remove records older than AGE: 30d, 12h, 1w (of --level's levels).",
    ),
]
Quick = Annotated[
    bool,
    typer.Option("--quick", help="SQLite's quick_check: faster, leaves out the indexes."),
]

# --- ingest and status --------------------------------------------------------

IngestSources = Annotated[
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
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Read the settings from FILE (TOML, see docs/configuration.md); default "
        "/etc/kextlog/kextlog.toml when it exists. Options given here win over it; "
        "SIGHUP reads it again.",
    ),
]
CheckConfig = Annotated[
    bool,
    typer.Option(
        "--check-config",
        help="Check the configuration file and the options, print the settings in effect "
        "(as a configuration file) and exit; nothing is opened or created.",
    ),
]
KmsgPath = Annotated[
    str | None,
    typer.Option(
        metavar="PATH", help="Read kmsg records from PATH (a capture, a FIFO) [/dev/kmsg]."
    ),
]
KmsgBootId = Annotated[
    str | None,
    typer.Option(metavar="UUID", help="The boot a kmsg capture comes from (default: this boot's)."),
]
Once = Annotated[
    bool,
    typer.Option("--once", help="Store what the kmsg sources hold now, then exit (as dmesg)."),
]
Retain = Annotated[
    str | None,
    typer.Option(
        metavar="LEVELS=AGE,...",
        help="Remove records older than their level's age while running, e.g. "
        "'trace..debug=1d,info=30d,warning..error=365d' (levels not named are kept).",
    ),
]
KeepUnder = Annotated[
    str | None,
    typer.Option(
        metavar="SIZE",
        help="While running, remove the oldest records to keep the store under SIZE (e.g. 2GB; "
        "0 for no cap). Default: 10% of its file system, at most 4 GiB (SQLite).",
    ),
]
Echo = Annotated[bool, typer.Option("--echo", help="Print each record once it is stored.")]
MinLevel = Annotated[
    str | None,
    typer.Option(
        "--min-level",
        metavar="LEVEL",
        help="Store LEVEL and above; lower records are acknowledged and counted as "
        "filtered [trace].",
    ),
]
BatchRecords = Annotated[
    int | None,
    typer.Option(help="Commit after this many records (1 to 1,000,000)... [10000]"),
]
BatchSeconds = Annotated[
    float | None,
    typer.Option(help="...or this many seconds (0.001 to 60), whichever comes first [0.05]."),
]
Syslog = Annotated[
    bool | None,
    typer.Option(
        "--syslog/--no-syslog",
        help="Send the daemon's own messages to syslog too (facility daemon), as the "
        "service files do.",
    ),
]
IngestHost = Annotated[
    str | None,
    typer.Option(
        "--host",
        metavar="NAME",
        help="The host name the instances are stored under (default: this machine's).",
    ),
]
SealInterval = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="When the store is sealed (kextlog db seal-setup): the time between two seals, "
        "1s to 1d [15m].",
    ),
]
VerifyKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="KEY",
        help="The verification key seal-setup printed ('-': read it from stdin); without it, "
        "only the chain's integrity is checked, not its seals.",
    ),
]
StatusHost = Annotated[
    str | None,
    typer.Option(
        "--host",
        metavar="NAME",
        help="For a shared store (a URL): the daemon that ingest --host NAME runs on this "
        "machine (default: this machine's name).",
    ),
]
StatusOutput = Annotated[StatusFormat, typer.Option("--output", "-o", help="Output format.")]

# --- simulate ----------------------------------------------------------------


class SocketType(str, Enum):
    SEQPACKET = "seqpacket"
    STREAM = "stream"


SocketPath = Annotated[
    Path, typer.Option("--socket", metavar="PATH", help="The Unix socket to serve.")
]
SocketKind = Annotated[
    SocketType,
    typer.Option(
        "--socket-type",
        help="seqpacket stands for a SOCK_DGRAM kernel control, stream for SOCK_STREAM.",
    ),
]
Rate = Annotated[
    int, typer.Option(min=0, max=10**9, help="Records per second; 0 as fast as possible.")
]
Count = Annotated[
    int, typer.Option(min=0, max=INT64_MAX, help="Stop generating after N records (0: never).")
]
Duration = Annotated[
    float,
    typer.Option(
        min=0, max=10**9, callback=finite, help="Stop generating after S seconds (0: never)."
    ),
]
Ring = Annotated[
    int,
    typer.Option(
        min=1, max=2**32 - 1, help="Ring capacity in records (default: 10 s at the default rate)."
    ),
]
RecordFile = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE", help="Write every generated record as a JSON line (query's json format)."
    ),
]
Seed = Annotated[int, typer.Option(min=0, max=INT64_MAX, help="Workload seed.")]
QuietLosses = Annotated[
    bool,
    typer.Option(
        "--quiet-losses",
        help="Do not print to stderr what the kext would give the kernel's printf: records"
        " the ring cannot take, and at the stop those never acknowledged.",
    ),
]
ResumeTimeout = Annotated[
    float,
    typer.Option(
        min=0,
        max=3600,
        callback=finite,
        help="Seconds a client has to RESUME before the stream starts from the oldest"
        " record held (the kext's: 1).",
    ),
]
