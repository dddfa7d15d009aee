"""Forward-secure sealing of the store (docs/sealing.md).

encoding: the canonical encoding of a batch, the chain, the keys (pure).
keys: the sealing key file on the host.
chain: extending the chain at ingest, seals, prune's checkpoints, setup.
verify: `kextlog db verify`'s walk.
"""

DEFAULT_INTERVAL = "15m"  # between two seals
