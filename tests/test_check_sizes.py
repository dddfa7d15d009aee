"""tools/check_sizes.py: the size proxies of `make lint`, on code made to
break each one, and on kextlog_store/ itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TOOL = [sys.executable, str(ROOT / "tools" / "check_sizes.py")]


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOOL, *map(str, paths)], capture_output=True, text=True, timeout=60)


def statements(count: int, indent: str = "    ") -> str:
    return "".join(f"{indent}x{n} = {n}\n" for n in range(count))


def test_kextlog_store_holds_every_proxy() -> None:
    result = run()
    assert (result.returncode, result.stdout) == (0, "")


def test_each_proxy_is_enforced_at_its_limit(tmp_path: Path) -> None:
    fine = tmp_path / "fine.py"
    fine.write_text(
        'import typer\napp = typer.Typer()\n\n\ndef f():\n    """A docstring is not counted."""\n'
        + statements(79)
        + '\n\nclass C:\n    """Nor here."""\n\n'
        + statements(298)
        + '\n\n@app.command("c")\ndef command():\n    """Its --help."""\n'
        + statements(39)
    )
    result = run(fine)
    assert (result.returncode, result.stdout) == (0, "")
    over = tmp_path / "over.py"
    over.write_text(
        "import typer\napp = typer.Typer()\n\n\ndef f():\n"
        + statements(80)
        + "\n\nclass C:\n"
        + statements(300)
        + '\n\n@app.command("c")\ndef command():\n'
        + statements(40)
        + "\n" * 200
    )
    result = run(over)
    assert result.returncode == 1
    found = {line.split(": ", 1)[1] for line in result.stdout.splitlines()}
    assert found == {
        f"module over.py: {len(over.read_text().splitlines())} lines (limit 600)",
        "function f: 81 lines (limit 80)",
        "class C: 301 lines (limit 300)",
        "command body command: 40 lines (limit 39)",
    }
