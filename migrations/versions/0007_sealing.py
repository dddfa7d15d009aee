"""Sealing: a hash chain over every committed batch, and its seals.

seal_chains: one per host whose ingest seals (`kextlog db seal-setup`),
named by the verification key's id.  seal_entries: the chain, an entry per
committed batch (and per prune checkpoint), with the seq ranges it covers
and the running hash.  seals: HMACs of the chain head under evolving epoch
keys.  Nothing changes for a store that never turns sealing on.  The same
tables on SQLite and PostgreSQL: binary columns are BLOB and bytea.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RowId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "seal_chains",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("key_id", sa.LargeBinary, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("host", name="uq_seal_chains_host"),
    )
    op.create_table(
        "seal_entries",
        sa.Column("chain_id", RowId, sa.ForeignKey("seal_chains.id"), primary_key=True),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("committed_ns", sa.BigInteger, nullable=False),
        sa.Column("sections", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("head", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "seals",
        sa.Column("chain_id", RowId, sa.ForeignKey("seal_chains.id"), primary_key=True),
        sa.Column("epoch", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("sealed_ns", sa.BigInteger, nullable=False),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("mac", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("seals")
    op.drop_table("seal_entries")
    op.drop_table("seal_chains")
