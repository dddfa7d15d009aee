"""`kextlog web`: the store in a browser, as Console.app shows a Mac's log.

Datasette over the read-only store with kextlog's plugin: the log as the
home page (the filters of `kextlog query`, facets, loss markers, a rate
chart, live records), a record with its neighbours, `kextlog stats`' figures,
canned views and read-only SQL with `kextlog sql`'s limits.  An optional
extra (pip install 'kextlog[web]'): nothing else imports this package.
"""

from .server import DEFAULT_PORT, serve

__all__ = ["DEFAULT_PORT", "serve"]
