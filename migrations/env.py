"""Alembic environment: run by `kextlog db upgrade`, by ingest at start, and by
the `alembic` command (alembic.ini) for developers writing a revision."""

from alembic import context

from kextlog_store.store.engine import write_engine
from kextlog_store.store.location import database_url
from kextlog_store.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def run(connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with write_engine(database_url(config.get_main_option("sqlalchemy.url"))).connect() as conn:
        run(conn)
        conn.commit()
