"""`kextlog web`: Datasette over the store, read-only, with kextlog's
metadata and its pages (pages.py) as a plugin, served by uvicorn.

Datasette brings the table browser (every table and view of the store,
facets, its JSON and CSV) with its own read-only connections (mode=ro) and
time limits; its ad-hoc SQL is off, so that read-only SQL has one door,
kextlog's sandbox (/sql).  Around it all: the Host header must name this
server (a web page elsewhere cannot reach it through DNS rebinding), every
response says nosniff and no framing, and every JSON response carries the
integers JavaScript would round as strings.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import socket
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from datasette.app import Datasette
from datasette.database import Database
from datasette.plugins import pm

from . import jsontext, library, pages, plugin
from .library import KextlogError, UsageError

HERE = Path(__file__).resolve().parent
DATABASE = "store"  # Datasette's name of the store: its tables are at /store/...

# Datasette's settings: its limits are kextlog sql's (10 s, 10,000 rows);
# no SQL of the browser's own (only kextlog's sandbox, /sql), no download
# of the file, no unbounded CSV stream.
SETTINGS = {
    "default_allow_sql": False,
    "allow_download": False,
    "allow_csv_stream": False,
    "sql_time_limit_ms": int(pages.SQL_SECONDS * 1000),
    "max_returned_rows": pages.SQL_MAX_ROWS,
}

# The store's tables and views, in the README's words.
TABLES = {
    "log": "One row per record, readable: time (ISO 8601 UTC), level, pid, tid, process, "
    "message, seq, instance, source, flags, time_ns, level_number, id; kmsg's priority, "
    "facility and fields.",
    "level_counts": "Records per level, with the first and last time.",
    "process_counts": "Records, pids, errors and warnings per process name.",
    "instance_accounting": "Per instance: every seq from first_seq to high_water is stored, "
    "lost, filtered or pruned; ahead counts records stored beyond high_water.",
    "lost": "One row per loss: instance, source, first_seq, last_seq, count, first_time, "
    "last_time, reason (ring-full, released, gap), recorded, host.",
    "records": "The raw records: id packs the instance and the seq (instance_id << 44 | seq); "
    "times in nanoseconds since the epoch (time_ns, UTC) and since boot (mono_ns); level 1-5.",
    "instances": "One row per kext load (or boot, for kmsg): host, uuid, source, name, boot_id, "
    "first_seq, high_water, filtered.",
    "losses": "The raw losses.",
    "pid_index": "(pid, time_ns, id) of the records, for searches by pid.",
    "levels": "Level numbers and names.",
}


def metadata() -> dict[str, Any]:
    return {
        "title": "kextlog",
        "description": "The store of kextlog: every log record of your kernel extensions.",
        "databases": {
            DATABASE: {
                "tables": {
                    **{name: {"description": about} for name, about in TABLES.items()},
                    "alembic_version": {"hidden": True},
                }
            }
        },
    }


def loopback(host: str) -> bool:
    """Whether every address host names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r}: {exc.strerror}") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in found)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: one the system picks)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a port (0-65535)")
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    server = socket.socket(info[0], socket.SOCK_STREAM)
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(info[4])
        server.listen(128)
    except OSError as exc:
        server.close()
        raise KextlogError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return server


def build(db: str | None, hosts: set[str] | None, timeout: float) -> tuple[Any, pages.Site]:
    """The ASGI application over the store: Datasette with kextlog's
    plugin, behind the guard (hosts: the Host values it answers, None for
    any); timeout: of each page's reads."""
    url = library.open_store(db)
    library.install_time_limits()
    datasette = Datasette(
        files=[],
        settings=SETTINGS,
        metadata=metadata(),
        template_dir=str(HERE / "templates"),
        static_mounts=[("-/kextlog/static", str(HERE / "static"))],
    )
    datasette.add_database(
        Database(datasette, path=library.database_path(url), is_mutable=True), name=DATABASE
    )
    site = pages.Site(url, datasette, f"/{DATABASE}", timeout)
    plugin.SITES[id(datasette)] = site
    if not pm.is_registered(plugin):
        pm.register(plugin, name="kextlog")
        # Its exceptions are kextlog's to show (plugin.handle_exception).
        pm.unregister(name="datasette.handle_exception")
    return guard(datasette.app(), hosts), site


def guard(app: Any, hosts: set[str] | None) -> Any:
    """The ASGI app, answering only requests whose Host is one of hosts
    (None: any), with nosniff, no framing and no referrer on every
    response, and JSON with large integers as strings."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if hosts is not None and host not in hosts:
            body = (
                f"kextlog web answers as {sorted(hosts)[0]} only, not as {host[:100]!r}\n"
            ).encode()
            await send({"type": "http.response.start", "status": 421,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, _Response(send))

    return asgi


_SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _Response:
    """Sends a response on, adding the security headers; a JSON one is
    read whole and sent with its large integers as strings (Datasette's
    JSON has them as numbers)."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.start: dict[str, Any] | None = None
        self.body: list[bytes] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in
                       {name for name, _ in _SECURITY}]  # fmt: skip
            message = {**message, "headers": headers + _SECURITY}
            kind = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
            if kind.split(b";")[0].strip() == b"application/json":
                self.start = message
                return
            await self.send(message)
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(self.body)
        with suppress(ValueError):  # not JSON after all: sent as it is
            body = jsontext.dumps(json.loads(body)).encode()
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def serve(
    db: str | None,
    host: str,
    port: int,
    *,
    allow_remote: bool = False,
    timeout: float = pages.READ_SECONDS,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    """Serve the store at host:port until SIGINT or SIGTERM.  A host that is
    not a loopback address needs allow_remote, and gets a warning: nothing
    here asks who is reading.  timeout: seconds each page's reads may take."""
    if not timeout > 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {timeout:g}")
    local = loopback(host)
    if not local and not allow_remote:
        raise UsageError(
            f"--host {host!r} is not a loopback address: kextlog web has no authentication, "
            "anyone who reaches it reads the whole store; pass --allow-remote to serve it anyway"
        )
    server = listen(host, port)
    port = server.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    hosts = None
    if local:
        hosts = {f"{known}:{port}" for known in ("127.0.0.1", "localhost", "[::1]", name.lower())}
    app, site = build(db, hosts, timeout)
    if not local:
        err.write(
            f"kextlog web: warning: serving on {name}:{port} without authentication: "
            "anyone who can reach it reads the whole store\n"
        )
    out.write(f"kextlog web: {library.database_path(site.url)} at http://{name}:{port}/\n")
    out.flush()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    try:
        _Uvicorn(config, site).run(sockets=[server])
    finally:
        server.close()


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, stopped by SIGINT or SIGTERM as a clean exit
    (status 0, the signal not raised again), its live streams ended at once
    so that the stop does not wait for browsers to close them."""

    def __init__(self, config: uvicorn.Config, site: pages.Site) -> None:
        super().__init__(config)
        self.site = site

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.site.stopping = asyncio.Event()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C
        self.should_exit = True
        if self.site.stopping is not None:
            self.loop.call_soon_threadsafe(self.site.stopping.set)
