"""The configuration file: the example loads, every key is documented, the
command line wins over the file and the file over the defaults, and every
bad file is one line that names the file and the key, and exit status 2."""

from __future__ import annotations

import re
import sys
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


BAD_FILES = [
    ('sources = ["kmsg"]\nverbose = true\n', "line 2: verbose: unknown key"),
    (
        'sources = ["kmsg"]\n[batch]\nrecords = "ten"\n',
        "line 3: batch.records: expected an integer",
    ),
    ("[batch]\nrecords = 0\n", "line 2: batch.records: expected an integer of 1 or more, not 0"),
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
    assert "Traceback" not in result.stderr
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
