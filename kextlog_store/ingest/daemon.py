"""`kextlog ingest`: the daemon around the pipeline (pipeline.Ingest).

Its settings are the command line's options, then the configuration file,
then the built-in defaults (config); SIGHUP reads them again and reopens the
store: batching, the minimum level, retention and the database may change,
the sources and syslog need a restart.  The daemon holds each store it
writes (status.Claim: one daemon per store, and the state `kextlog status`
reads, published about once a second) and each producer that serves one
client; on a terminal it keeps a live line on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from sqlalchemy import make_url

from .. import config, logs, paths, status
from ..config import IngestConfig
from ..errors import SourceError, UsageError
from ..kmsg import DEVICE, KmsgSource
from ..records import Record
from ..redact import redact, redact_all
from ..render.entries import record_short
from ..render.figures import format_size, live_line
from ..seal.chain import Sealer
from ..sources import Source, exclusive_key, parse_source
from ..store import migrate
from ..store.engine import sqlite_path
from ..store.location import PRIVATE_UMASK, check_private, database_url
from ..store.retention import RetentionPolicy, parse_size
from ..store.writer import Writer
from .pipeline import Ingest, IngestOptions

log = logging.getLogger("kextlog.ingest")

# What a reload cannot change: the daemon needs a restart for these.
RESTART_SETTINGS = ("sources", "kmsg_path", "syslog", "syslog_socket")


class Daemon:
    """One run of `kextlog ingest`: flags are the command line's settings,
    config_file the configuration file given (None: config.DEFAULT_PATH
    when it exists), host the name its instances are stored under (None:
    this machine's)."""

    def __init__(
        self,
        flags: IngestConfig,
        config_file: Path | None,
        *,
        kmsg_boot_id: str | None = None,
        once: bool = False,
        host: str | None = None,
    ) -> None:
        self._flags, self._config_file, self._host = flags, config_file, host
        self.settings = self._read_settings()
        if not self.settings.sources:
            raise UsageError("no source: give --source, or sources in the configuration file")
        self.sources = [
            parse_source(
                spec,
                kmsg_path=self.settings.kmsg_path or DEVICE,
                kmsg_boot_id=kmsg_boot_id,
                once=once,
            )
            for spec in self.settings.sources
        ]
        for source in self.sources:
            if isinstance(source, KmsgSource):  # a file root is pointed at, read as records
                paths.check_owned(Path(source.path), what="the kmsg source")
        self.url = database_url(self.settings.database)
        self.options = ingest_options(self.settings, self.sources, self.url)
        self._claims: dict[str, status.Claim] = {}  # by URL (see _claim)
        self._live: LiveLine | None = None
        self._ingest: Ingest | None = None

    def _read_settings(self) -> IngestConfig:
        read = config.file_read(self._config_file)
        if read is not None:
            paths.check_owned(read, regular=True, what="the configuration")
        return self._flags.over(config.load(read))

    def settings_file(self) -> str:
        """--check-config: the settings in effect, as a configuration file
        that loads back to the same settings; never a password (as ***).
        The store is checked (check_private), nothing is opened or made."""
        path = sqlite_path(self.url)
        if path is not None:
            check_private(path)
        effective = replace(
            self.settings,
            database=redact(self.url),
            min_level=self.options.min_level,
            syslog=bool(self.settings.syslog),
            syslog_socket=self.settings.syslog_socket or config.DEFAULT_SYSLOG_SOCKET,
            batch_records=self.options.batch_records,
            batch_seconds=self.options.batch_seconds,
            kmsg_path=self.settings.kmsg_path or DEVICE,
        )
        return config.dump(effective, config.file_read(self._config_file))

    def run(self, stop: threading.Event, reload: threading.Event, *, echo: bool) -> None:
        """Stores what the sources send until stop; reload: read the
        settings again and reopen the store.  echo: each record on stdout
        once it is stored (then no live line)."""
        os.umask(PRIVATE_UMASK)  # what ingest writes besides SQLite's files is private too
        self._live = LiveLine() if sys.stderr.isatty() and not echo else None
        stderr = logs.to_stderr(clear_line=self._live is not None)
        if self.settings.syslog:
            logs.to_syslog(self.settings.syslog_socket or config.DEFAULT_SYSLOG_SOCKET, stderr)
        with ExitStack() as held:
            held.callback(lambda: [claim.release() for claim in self._claims.values()])
            self._claim(self.url)
            for source in self.sources:
                key = exclusive_key(source)
                if key is not None:
                    held.callback(status.claim_source(source.spec, key))
            writer = self._open(self.url)
            where = sqlite_path(self.url)
            cap = _cap_words(self.options, self.settings, sqlite=where is not None)
            log.info("storing in %s, %s", where or redact(self.url), cap)
            self._ingest = Ingest(
                writer,
                self.options,
                stop,
                echo=_echo if echo else None,
                publish=self._publish,
                reload=reload,
                reopen=self._reopen,
            )
            totals = self._ingest.run()
        if self._live is not None:
            self._live.finish()
        if self._ingest.failures:
            raise SourceError("; ".join(self._ingest.failures))
        log.info(
            "stopped: %d records stored, %d lost, %d filtered",
            totals.stored,
            totals.lost,
            totals.filtered,
        )

    def _open(self, url: str) -> Writer:
        """The store's writer, on a database at the newest schema (checked:
        store.engine.write_engine), with its sealer when sealed (seal.chain)."""
        writer = Writer(migrate.upgrade(url), host=self._host)
        writer.sealer = Sealer.open(writer.engine, writer.host)
        return writer

    def _claim(self, url: str) -> None:
        """The stores this daemon holds, by URL: the one it writes, and while
        a reload switches, the next; another ingest on one of them, or on
        one of the producers, is refused."""
        key = make_url(url).render_as_string(hide_password=False)  # as its engine renders it
        if key not in self._claims:  # one per store: a second lock would be the first's
            self._claims[key] = status.Claim(url, self._host)

    def _publish(self, snapshot: dict) -> None:
        # Beside the database the daemon writes to now (a reload may move it).
        assert self._ingest is not None
        current = self._ingest.writer.engine.url.render_as_string(hide_password=False)
        self._claims[current].publish(redact_all(snapshot))  # error texts may quote a URL
        if snapshot["running"]:
            # The store it left has its last state (running false), and one
            # a failed reload claimed never had any: let them go.
            for key in [key for key in self._claims if key != current]:
                self._claims.pop(key).release()
        if self._live is not None:
            self._live(snapshot)

    def _reopen(self) -> tuple[Writer, IngestOptions]:
        fresh = self._read_settings()
        url = database_url(fresh.database)
        options = ingest_options(fresh, self.sources, url)
        self._claim(url)
        writer = self._open(url)
        restart = [
            key for key in RESTART_SETTINGS if getattr(fresh, key) != getattr(self.settings, key)
        ]
        if restart:
            log.warning("reload: %s changed: restart ingest to apply", ", ".join(restart))
        log.info(
            "reloaded %s: database %s, batches of %d records or %g s, min level %s, retention %s",
            config.file_read(self._config_file) or "(no configuration file)",
            redact(url),
            options.batch_records,
            options.batch_seconds,
            options.min_level.label,
            "on" if options.retention is not None else "off",
        )
        return writer, options


# As journald's SystemMaxUse=: 10% of the store's file system, at most 4 GiB.
DEFAULT_CAP_SHARE = 10
DEFAULT_CAP_MOST = 4 << 30


def default_max_size(path: Path) -> int:
    """The size cap of a SQLite store at path that no setting names: the
    smaller of a tenth of its file system (where it is, or will be) and 4 GiB."""
    where = path.parent
    while not where.exists():  # the default store's directory, not made yet
        where = where.parent
    info = os.statvfs(where)
    return min(info.f_blocks * info.f_frsize // DEFAULT_CAP_SHARE, DEFAULT_CAP_MOST)


def ingest_options(settings: IngestConfig, sources: list[Source], url: str) -> IngestOptions:
    """The pipeline's options from settings for the store at url; the
    built-in defaults where they say nothing: on SQLite a size cap
    (default_max_size; max_size 0 for none), on PostgreSQL none (its
    files do not shrink: retention.check)."""
    max_size = None if settings.max_size is None else parse_size(settings.max_size)
    path = sqlite_path(url)
    if max_size is None and path is not None:
        max_size = default_max_size(path)
    retention = None
    if settings.retain is not None or max_size:
        ages = RetentionPolicy.parse(settings.retain or "")
        retention = replace(ages, max_size_bytes=max_size or None)
    said = {
        "min_level": settings.min_level,
        "batch_records": settings.batch_records,
        "batch_seconds": settings.batch_seconds,
        "seal_interval_ns": (
            config.seal_interval_ns(settings.seal_interval) if settings.seal_interval else None
        ),
    }
    return IngestOptions(
        sources=sources,
        retention=retention,
        **{name: value for name, value in said.items() if value is not None},
    )


def _cap_words(options: IngestOptions, settings: IngestConfig, *, sqlite: bool) -> str:
    """How big the store may grow, for the log as ingest starts."""
    cap = None if options.retention is None else options.retention.max_size_bytes
    if cap is None:
        return "no size cap" + (" (--max-size SIZE sets one)" if sqlite else "")
    why = "" if settings.max_size else " (the default: 10% of its file system, at most 4 GiB)"
    return f"the oldest records removed above {format_size(cap)}{why}; --max-size 0 for no cap"


def _echo(record: Record) -> None:
    sys.stdout.write(record_short(record) + "\n")  # in the local zone


class LiveLine:
    """Ingest's one-line progress on a terminal (render.figures.live_line), rewritten
    in place."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def __call__(self, snapshot: dict) -> None:
        now, stored = snapshot["updated_ns"] / 1e9, snapshot["stored"]
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (stored - self._last[1]) / (now - self._last[0])
        self._last = (now, stored)
        sys.stderr.write(f"\r\033[K{live_line(snapshot, rate)}")
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
