"""`kextlog web`, the command: cli.py registers web_command as it is.

It parses the options and starts the server; Datasette (server.py) is
imported only when the command runs, so no other command loads it.  The
command sits here rather than in cli.py, beside the server it starts, and
reaches the rest of kextlog only for the shared options and the error
kextlog reports (the pages reach it through library.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import cli_options as o
from ..errors import KextlogError

DEFAULT_PORT = 8001

Host = Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Listen on ADDRESS.")]
Port = Annotated[
    int,
    typer.Option(
        "--port", min=0, max=65_535, metavar="PORT", help="Listen on PORT (0: any free one)."
    ),
]
AllowRemote = Annotated[
    bool,
    typer.Option(
        "--allow-remote",
        help="Serve on an address that is not loopback. There is no authentication: "
        "anyone who reaches it reads the whole store.",
    ),
]
PageTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.001,
        max=86_400,
        callback=o.finite,  # as kextlog sql's --timeout
        metavar="SECONDS",
        help="Stop a page's reads that run longer (its SQL page: kextlog sql's 10 s).",
    ),
]


def web_command(
    db: o.Db = None,
    host: Host = "127.0.0.1",
    port: Port = DEFAULT_PORT,
    allow_remote: AllowRemote = False,
    timeout: PageTimeout = 30.0,
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
        from .server import serve
    except ModuleNotFoundError as exc:
        if exc.name not in ("datasette", "uvicorn"):
            raise
        raise KextlogError("kextlog web needs the web extra: pip install 'kextlog[web]'") from None
    serve(db, host, port, allow_remote=allow_remote, timeout=timeout)
