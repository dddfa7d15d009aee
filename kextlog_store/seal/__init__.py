"""Forward-secure sealing of the store (docs/sealing.md).

encoding: the canonical encoding of a batch, the chain, the keys (pure).
keys: the sealing key file on the host.
_columns (C): the record columns packed, from ingest's rows or a SQLite store.
chain: extending the chain at ingest, seals, prune's checkpoints, setup.
verify, report: `kextlog db verify`'s walk, and its report.
"""
