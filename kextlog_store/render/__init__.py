"""The one place that turns data into text, for every output format:
text.py the pieces every format uses (escaping for a terminal, JSON text,
colour, times); entries.py the records and loss markers of `kextlog query`
(and ingest's --echo); rows.py the rows of `kextlog sql` (and the
machine formats of records); figures.py the store's and the daemon's
figures: `kextlog stats`, `prune`, `db check`, `status` and ingest's live
line.

Times are computed from integer nanoseconds without floating point:
microseconds are truncated, never rounded.  Colour (by level, as
journalctl) is only ever added when the caller says so: the CLI decides
whether the output is a terminal.
"""
