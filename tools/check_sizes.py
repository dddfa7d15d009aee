"""Size proxies for kextlog_store/ (`make lint`): no function longer than 80
lines, no class longer than 300, no module longer than 600, and every
Typer command body under 40 lines.

    python tools/check_sizes.py [--list] [PATH ...]

A function's or class's length is its lines from `def`/`class` to its last
line, decorators and docstring left out (a command's docstring is its
--help text, not code); a function holds the functions nested in it.  A
module's length is its lines.  A Typer command is a function decorated
with `@<app>.command(...)`; its body is what follows the docstring.  Exit
status 1 and a line per violation (PATH:LINE: what, how long, the limit)
when one is over; --list prints every module, class and function with its
length, longest first, whether over or not.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kextlog_store"
FUNCTION_MAX, CLASS_MAX, MODULE_MAX, COMMAND_BODY_MAX = 80, 300, 600, 39


@dataclass(frozen=True)
class Size:
    path: Path
    line: int
    kind: str  # module, class, function, command body
    name: str
    lines: int
    limit: int

    @property
    def over(self) -> bool:
        return self.lines > self.limit

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        what = f"{self.kind} {self.name}: {self.lines} lines (limit {self.limit})"
        return f"{where}:{self.line}: {what}"


def _docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    first = body[0] if body else None
    if not isinstance(first, ast.Expr) or not isinstance(first.value, ast.Constant):
        return 0
    if not isinstance(first.value.value, str):
        return 0
    return first.end_lineno - first.lineno + 1  # type: ignore[operator]


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1 - _docstring_lines(node)  # type: ignore[attr-defined]


def _is_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated @something.command(...) or @something.command."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "command":
            return True
    return False


def sizes(path: Path) -> Iterator[Size]:
    """The length of the module at path, and of each class and function in it."""
    text = path.read_text(encoding="utf-8")
    yield Size(path, 1, "module", path.name, len(text.splitlines()), MODULE_MAX)
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.ClassDef):
            yield Size(path, node.lineno, "class", node.name, _length(node), CLASS_MAX)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield Size(path, node.lineno, "function", node.name, _length(node), FUNCTION_MAX)
            if _is_command(node):
                first = node.body[1 if _docstring_lines(node) else 0] if node.body[1:] else None
                body = 0 if first is None else node.end_lineno - first.lineno + 1  # type: ignore[operator]
                yield Size(path, node.lineno, "command body", node.name, body, COMMAND_BODY_MAX)


def modules(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[PACKAGE])
    parser.add_argument("--list", action="store_true", help="every length, longest first")
    args = parser.parse_args(argv)
    every = [size for path in modules(args.paths) for size in sizes(path)]
    if args.list:
        for size in sorted(every, key=lambda size: (size.kind, -size.lines)):
            print(f"{'OVER ' if size.over else '     '}{size}")
    over = [size for size in every if size.over]
    if not args.list:
        for size in over:
            print(size)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
