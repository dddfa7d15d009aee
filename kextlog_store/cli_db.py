"""`kextlog db ...`: the store's schema (upgrade, current), its check, and
sealing (seal-setup, verify).  As in cli.py, each command parses its
options, calls one library function and renders the result; slow imports
stay inside the commands."""

from __future__ import annotations

import sys

import typer

from . import cli_options as o
from .errors import DatabaseError

db_app = typer.Typer(
    help="Create or upgrade the store's schema, show its revision, check it; seal it, verify it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@db_app.command("upgrade")
def db_upgrade_command(db: o.Db = None) -> None:
    """Create the store or bring its schema to the newest revision; print the revision.

    \b
    Examples:
      kextlog db upgrade
      kextlog db upgrade --db /var/lib/kextlog/kextlog.db
    """
    from .store import migrate
    from .store.location import database_url

    url = database_url(db)
    migrate.upgrade(url).dispose()
    sys.stdout.write(f"{migrate.current(url) or 'none'}\n")


@db_app.command("current")
def db_current_command(db: o.Db = None) -> None:
    """Print the schema revision of the store ("none" for an empty database).

    \b
    Examples:
      kextlog db current
      KEXTLOG_DB=/tmp/test.db kextlog db current
    """
    from .store import migrate
    from .store.location import database_url

    sys.stdout.write(f"{migrate.current(database_url(db)) or 'none'}\n")


@db_app.command("check")
def db_check_command(db: o.Db = None, quick: o.Quick = False) -> None:
    """Check the store, read-only: SQLite's integrity_check (or quick_check)
    and foreign keys, then kextlog's own accounting: the schema revision is
    known, each instance's high-water mark covers its stored records, no loss
    overlaps a stored record or another loss, and each instance's seqs add
    up (stored, lost, filtered, pruned). Exits 0 when all is well, 1 when not.

    \b
    Examples:
      kextlog db check
      kextlog db check --quick --db /var/lib/kextlog/kextlog.db
    """
    from .render.figures import check_lines, check_summary
    from .store import check
    from .store.location import database_url

    report = check.check(database_url(db), quick=quick)
    sys.stdout.write("\n".join(check_lines(report)) + "\n")
    if report.failed:
        raise DatabaseError(check_summary(report))


@db_app.command("seal-setup")
def db_seal_setup_command(db: o.Db = None, host: o.IngestHost = None) -> None:
    """Turn sealing on (docs/sealing.md): a hash chain over every batch ingest
    commits, sealed every interval with a key that evolves one way. Covers
    what is stored now; prints the verification key once, on stdout: keep it
    off this host. Stop ingest first; it seals from its next start.

    \b
    Examples:
      sudo kextlog db seal-setup > /media/offline/kextlog-verification-key
      kextlog db seal-setup --db /var/lib/kextlog/kextlog.db
    """
    from .seal import chain
    from .store.location import database_url

    key, name, path = chain.turn_on(database_url(db), host)
    sys.stderr.write(
        f"kextlog: sealing is on for host {name}; the sealing key is {path}.\n"
        "kextlog: the verification key follows, shown this once: keep it OFF this host "
        "(whoever has it can check the seals, and the host must not).\n"
    )
    sys.stdout.write(key.hex() + "\n")
    key[:] = bytes(len(key))


@db_app.command("verify")
def db_verify_command(db: o.Db = None, key: o.VerifyKey = None) -> None:
    """Verify the sealed store, read-only (best on a copy, off the host): every
    batch against its chain entry, every seal with the key. Reports the first
    place it breaks and exits 1; exits 0 with the sealed range and the
    unsealed tail when all holds.

    \b
    Examples:
      kextlog db verify --db /mnt/copy/kextlog.db --key - < /media/offline/key
      kextlog db verify --db /mnt/copy/kextlog.db
    """
    from .render.seal import lines
    from .seal import verify
    from .store.location import database_url

    given = sys.stdin.readline() if key == "-" else key
    reports = verify.verify_store(database_url(db), given)
    sys.stdout.write("".join(line + "\n" for line in lines(reports)))
    if not reports:
        raise DatabaseError("the store is not sealed (kextlog db seal-setup turns sealing on)")
    if any(each.broken for each in reports):
        raise DatabaseError("verification failed")
