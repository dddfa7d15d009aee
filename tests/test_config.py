"""The configuration file: the example loads, every key is documented, the
command line wins over the file and the file over the defaults, and every
bad file is one line that names the file and the key, and exit status 2."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kextlog_store import config
from kextlog_store.config import IngestConfig
from kextlog_store.errors import UsageError
from kextlog_store.levels import Level
from tests.conftest import ROOT
from tests.processes import kextlog

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXAMPLE = ROOT / "service" / "kextlog.toml"
DOCS = ROOT / "docs" / "configuration.md"


def test_the_example_file_loads() -> None:
    assert config.load(EXAMPLE) == IngestConfig(
        sources=("kmsg",),
        min_level=Level.TRACE,
        syslog=True,
        batch_records=10_000,
        batch_seconds=0.05,
        retain="trace..debug=7d,info=30d,warning..error=365d",
        max_size="2GB",
    )


def test_the_docs_show_the_example_file_and_every_key() -> None:
    docs = DOCS.read_text()
    assert f"```toml\n{EXAMPLE.read_text()}```" in docs
    documented = re.findall(r"^\| `([\w.]+)` \|", docs, flags=re.MULTILINE)
    assert documented == list(config.KEYS)


def test_tables_and_dotted_keys_are_the_same(tmp_path: Path) -> None:
    tables = tmp_path / "tables.toml"
    tables.write_text('[batch]\nrecords = 5\nseconds = 1\n[kmsg]\npath = "/x"\n')
    dotted = tmp_path / "dotted.toml"
    dotted.write_text('batch.records = 5\nbatch.seconds = 1\nkmsg = { path = "/x" }\n')
    expected = IngestConfig(batch_records=5, batch_seconds=1.0, kmsg_path="/x")
    assert config.load(tables) == config.load(dotted) == expected


def test_the_default_file_is_read_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "kextlog.toml"
    monkeypatch.setattr(config, "DEFAULT_PATH", default)
    assert config.load(None) == IngestConfig()
    default.write_text('min_level = "warn"\n')
    assert config.load(None) == IngestConfig(min_level=Level.WARNING)
    with pytest.raises(UsageError, match=r"cannot read the configuration .*missing\.toml"):
        config.load(tmp_path / "missing.toml")  # a file named is never optional


def test_over_takes_what_is_said() -> None:
    file = IngestConfig(sources=("kmsg",), batch_records=5, min_level=Level.INFO)
    flags = IngestConfig(min_level=Level.ERROR, batch_seconds=2.0)
    assert flags.over(file) == IngestConfig(
        sources=("kmsg",), batch_records=5, batch_seconds=2.0, min_level=Level.ERROR
    )


def effective(*args: str, **env: str) -> dict:
    """What `kextlog ingest --check-config ARGS` prints, parsed."""
    result = kextlog("ingest", "--check-config", *args, **env)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def test_the_command_line_wins_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    file, db = tmp_path / "kextlog.toml", tmp_path / "k.db"
    file.write_text(
        'sources = ["unix:/run/a.sock", "unix:/run/b.sock"]\nmin_level = "info"\n'
        f'database = "{tmp_path / "file.db"}"\n[batch]\nrecords = 500\n'
        '[retention]\nretain = "trace=1d"\n'
    )
    from_file = effective("--config", str(file))
    assert from_file["sources"] == ["unix:/run/a.sock", "unix:/run/b.sock"]
    assert from_file["database"] == f"sqlite:///{tmp_path / 'file.db'}"
    assert from_file["min_level"] == "info"
    assert from_file["batch"] == {"records": 500, "seconds": 0.05}  # seconds: the default
    assert from_file["retention"] == {"retain": "trace=1d"}
    assert from_file["syslog"] is False

    flags = effective(
        "--config", str(file), "--source", "unix:/run/c.sock", "--db", str(db),
        "--min-level", "error", "--batch-seconds", "0.5", "--max-size", "1GB", "--syslog",
    )  # fmt: skip
    assert flags["sources"] == ["unix:/run/c.sock"]  # the option replaces the whole list
    assert flags["database"] == f"sqlite:///{db}"
    assert flags["min_level"] == "error"
    assert flags["batch"] == {"records": 500, "seconds": 0.5}
    assert flags["retention"] == {"retain": "trace=1d", "max_size": "1GB"}
    assert flags["syslog"] is True
    # KEXTLOG_DB comes between --db and the file.
    assert effective("--config", str(file), KEXTLOG_DB=str(db))["database"] == f"sqlite:///{db}"
    # Checking created nothing.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kextlog.toml"]


def test_what_check_config_prints_is_a_configuration_file(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    printed = kextlog("ingest", "--check-config", "--config", str(EXAMPLE), "--db", str(db))
    assert printed.returncode == 0, printed.stderr
    again = tmp_path / "again.toml"
    again.write_text(printed.stdout)
    assert config.load(again) == config.load(EXAMPLE).over(
        IngestConfig(
            database=f"sqlite:///{db}",
            syslog_socket=config.DEFAULT_SYSLOG_SOCKET,
            kmsg_path="/dev/kmsg",
        )
    )


def test_check_config_prints_toml_that_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    """Whatever the values hold: quotes, backslashes, control characters,
    C1, non-ASCII; the password is the one thing that does not come back."""
    odd = 'a "quoted" \\ back\tslash\x1b[31m\x9b\u202e é ✓ 😀'
    file = tmp_path / "kextlog.toml"
    file.write_text(
        "\n".join(
            [
                f'sources = [{json.dumps("unix:/run/" + odd, ensure_ascii=False)}, "kmsg"]',
                'database = "postgresql://kextlog:s3cret@db.example.com:5433/kextlog"',
                f"syslog_socket = {json.dumps('/run/' + odd, ensure_ascii=False)}",
                'min_level = "warn"',
                "syslog = true",
                "[batch]\nrecords = 1000000\nseconds = 0.001",
                '[retention]\nretain = "trace..debug=1.5d,info=30d"\nmax_size = "1.5GB"',
                f"[kmsg]\npath = {json.dumps('/tmp/' + odd, ensure_ascii=False)}",
            ]
        )
        + "\n"
    )
    printed = kextlog("ingest", "--check-config", "--config", str(file))
    assert printed.returncode == 0, printed.stderr
    assert "s3cret" not in printed.stdout + printed.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", printed.stdout)
    again = tmp_path / "again.toml"
    again.write_text(printed.stdout)
    tomllib.loads(printed.stdout)
    loaded = config.load(again)
    assert loaded.database == "postgresql+psycopg://kextlog:***@db.example.com:5433/kextlog"
    assert replace(loaded, database=None) == replace(config.load(file), database=None)
    # And printed again, the same file: nothing drifts.
    reprinted = kextlog("ingest", "--check-config", "--config", str(again)).stdout
    assert reprinted.split("\n", 1)[1] == printed.stdout.split("\n", 1)[1]  # but the comment


BAD_FILES = [
    ('sources = ["kmsg"]\nverbose = true\n', "line 2: verbose: unknown key"),
    (
        'sources = ["kmsg"]\n[batch]\nrecords = "ten"\n',
        "line 3: batch.records: expected an integer",
    ),
    (
        "[batch]\nrecords = 0\n",
        "line 2: batch.records: expected an integer from 1 to 1,000,000, not 0",
    ),
    ("[batch]\nrecords = 99999999999999999999\n", "line 2: batch.records: expected an integer"),
    (
        "[batch]\nseconds = inf\n",
        "line 2: batch.seconds: expected a number of seconds from 0.001 to 60, not inf",
    ),
    ("[batch]\nseconds = -inf\n", "line 2: batch.seconds: expected a number of seconds"),
    ("[batch]\nseconds = nan\n", "line 2: batch.seconds: expected a number of seconds"),
    ("batch.seconds = 1e300\n", "line 1: batch.seconds: expected a number of seconds"),
    (
        'database = "/var/lib/kextlog/k\\u0000.db"\n',
        "line 1: database: a NUL character is not allowed",
    ),
    (
        'database = "foo://kextlog:s3cret@db/x"\n',
        "line 1: database: unknown database URL scheme 'foo'",
    ),
    (
        'database = "postgresql://kextlog:s3cret@[::1"\n',
        "line 1: database: invalid database URL 'postgresql://kextlog:***@[::1'",
    ),
    ('database = "sqlite://"\n', "line 1: database: sqlite://: kextlog needs a database file"),
    ('[kmsg]\npath = "/dev/kmsg\\u0000"\n', "line 2: kmsg.path: a NUL character is not allowed"),
    ('sources = ["unix:/run/a\\u0000.sock"]\n', "line 1: sources: a NUL character is not allowed"),
    (
        'syslog_socket = "/dev/log\\u0000"\n',
        "line 1: syslog_socket: a NUL character is not allowed",
    ),
    ("[batch]\nrecords = true\n", "batch.records: expected an integer"),
    ("[batch]\nseconds = 0\n", "batch.seconds: expected a number of seconds"),
    ("[batch]\nsize = 3\n", "line 2: batch.size: unknown key"),
    ("batch = 3\n", "line 1: batch: expected a table"),
    ('min_level = "loud"\n', "line 1: min_level: unknown level 'loud'"),
    ('sources = "kmsg"\n', "sources: expected a list of sources"),
    ("sources = []\n", "sources: expected a list of sources"),
    ('sources = ["tcp:localhost"]\n', "sources: unknown source 'tcp:localhost'"),
    ('syslog = "yes"\n', "syslog: expected true or false"),
    ('[retention]\nretain = "info=forever"\n', "line 2: retention.retain: invalid duration"),
    ('[retention]\nmax_size = "big"\n', "retention.max_size: invalid size 'big'"),
    ('database = ""\n', "database: expected a non-empty string"),
    ("sources = [\n", "not valid TOML: "),
    ('min_level = "info"\nmin_level = "error"\n', "(at line 2, column"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    file = tmp_path / "kextlog.toml"
    file.write_text(text)
    result = kextlog(
        "ingest", "--config", str(file), "--source", "kmsg", "--db", str(tmp_path / "k.db")
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"kextlog: error: {file}")
    assert message in line
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kextlog.toml"]


def test_without_a_source_anywhere(tmp_path: Path) -> None:
    file = tmp_path / "kextlog.toml"
    file.write_text('min_level = "info"\n')
    result = kextlog("ingest", "--config", str(file), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert result.stderr == (
        "kextlog: error: no source: give --source, or sources in the configuration file\n"
    )


def test_a_missing_configuration_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.toml"
    result = kextlog(
        "ingest", "--config", str(missing), "--source", "kmsg", "--db", str(tmp_path / "k.db"),
        "--check-config",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"kextlog: error: cannot read the configuration {missing}: No such file or directory\n"
    )
