"""`kextlog web`: the store in a browser, as Console.app shows a Mac's log.

Datasette over the read-only store with kextlog's plugin: the log as the
home page (the filters of `kextlog query`, facets, loss markers, a rate
chart, live records), a record with its neighbours, `kextlog stats`' figures,
canned views and read-only SQL with `kextlog sql`'s limits.  An optional
extra (pip install 'kextlog[web]'): cli.py imports only command.py, which
loads the server (server.py, Datasette) when `kextlog web` runs.
"""
